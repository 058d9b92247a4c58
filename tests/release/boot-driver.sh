#!/bin/sh
# Runs inside a booted systemd container (tests/release/systemd_boot.rs) as its kernel-command-line.service:
# install.sh twice from the release bound at /srv/release, recording what systemd made of it in /srv/results.
out=/srv/results
record() { # NAME
    systemctl is-enabled binfmtd.service >"$out/$1.enabled" 2>&1
    systemctl show -p ActiveState -p InvocationID -p ExecMainStartTimestampMonotonic -p ExecMainCode \
        -p ExecMainStatus binfmtd.service >"$out/$1.show"
}
# Host files appear owned by "nobody" in this user namespace and binfmtd rightly refuses such an
# interpreter: give it a copy owned by the container's root.
mkdir -p /opt/qemu
cp /usr/bin/qemu-aarch64-static /opt/qemu/
for run in first second; do
    sh /srv/release/v*/install.sh --base-url file:///srv/release --prefix /opt/binfmtd --arches arm64 \
        -- --interpreter-dir /opt/qemu >"$out/$run.log" 2>&1
    echo $? >"$out/$run.rc"
    record "$run"
done
# What the unit left behind: its entry in this container's binfmt_misc instance (naming binfmtd's copy of
# /opt/qemu's file in its cache, never /opt/qemu itself), and a foreign program that runs through it.
cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64 >"$out/entry" 2>/dev/null
/srv/release/arm64/busybox echo foreign program ran >"$out/foreign" 2>&1
journalctl -u binfmtd.service --no-pager >"$out/journal" 2>&1
echo finished >"$out/finished"
