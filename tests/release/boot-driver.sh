#!/bin/sh
# Runs inside a booted systemd container (tests/release/systemd_boot.rs) as its kernel-command-line.service:
# install.sh twice from the release bound at /srv/release, recording what systemd made of it in /srv/results.
out=/srv/results
record() { # NAME
    systemctl is-enabled binfmtd.service >"$out/$1.enabled" 2>&1
    systemctl show -p ActiveState -p InvocationID -p ExecMainStartTimestampMonotonic binfmtd.service >"$out/$1.show"
}
for run in first second; do
    sh /srv/release/v*/install.sh --base-url file:///srv/release --prefix /opt/binfmtd --arches arm64 \
        >"$out/$run.log" 2>&1
    echo $? >"$out/$run.rc"
    record "$run"
done
journalctl -u binfmtd.service --no-pager >"$out/journal" 2>&1
echo finished >"$out/finished"
