#!/bin/sh
# Runs inside a booted systemd container (tests/release/systemd_boot.rs) as its kernel-command-line.service:
# install.sh twice from the release bound at /srv/release, recording what systemd made of it in /srv/results.
out=/srv/results
record() { # NAME
    systemctl is-enabled binfmtd.service >"$out/$1.enabled" 2>&1
    systemctl show -p ActiveState -p InvocationID -p ExecMainStartTimestampMonotonic -p ExecMainCode \
        -p ExecMainStatus binfmtd.service >"$out/$1.show"
}
for run in first second; do
    sh /srv/release/v*/install.sh --base-url file:///srv/release --prefix /opt/binfmtd --arches arm64 \
        >"$out/$run.log" 2>&1
    echo $? >"$out/$run.rc"
    record "$run"
done
# The unit's sandbox (seccomp filter, NoNewPrivileges, DevicePolicy, ...) is inherited by the qemu-user
# processes that prove an arch; run one there, with only ExecStart replaced.
mkdir -p /etc/systemd/system/binfmtd.service.d
cat >/etc/systemd/system/binfmtd.service.d/probe.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=/usr/bin/qemu-aarch64-static /srv/release/arm64/busybox echo probe ran in the binfmtd sandbox
UNIT
systemctl daemon-reload
systemctl restart binfmtd.service
echo $? >"$out/probe.rc"
journalctl -u binfmtd.service --no-pager >"$out/journal" 2>&1
echo finished >"$out/finished"
