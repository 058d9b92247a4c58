#!/bin/sh
# Runs inside a booted systemd container (tests/release/systemd_boot.rs) as its kernel-command-line.service:
# install.sh twice from the release bound at /srv/release, recording what systemd made of it in /srv/results;
# then the unit's contract: READY before units ordered after it start, and stopping it leaves the entries.
out=/srv/results
bm=/proc/sys/fs/binfmt_misc
record() { # NAME
    systemctl is-enabled binfmtd.service >"$out/$1.enabled" 2>&1
    systemctl show -p ActiveState -p SubState -p StatusText -p InvocationID -p ExecMainStartTimestampMonotonic \
        -p ExecMainCode -p ExecMainStatus -p Type binfmtd.service >"$out/$1.show"
}
entries() {
    for e in "$bm"/*; do
        case "${e##*/}" in register | status) ;; *) echo "${e##*/}" ;; esac
    done
}
# Host files appear owned by "nobody" in this user namespace and binfmtd rightly refuses such an
# interpreter: give it copies owned by the container's root. qemu-i386 is there so that `--arch all`
# WOULD register i386 if the unit's seccomp filter made the native i386 probe fail.
mkdir -p /opt/qemu
for q in aarch64 i386; do cp "/usr/bin/qemu-$q-static" /opt/qemu/; done
arches=arm64
[ "$(uname -m)" = x86_64 ] && arches=all
for run in first second; do
    sh /srv/release/v*/install.sh --base-url file:///srv/release --prefix /opt/binfmtd --arches "$arches" \
        -- --interpreter-dir /opt/qemu >"$out/$run.log" 2>&1
    echo $? >"$out/$run.rc"
    record "$run"
done
entries >"$out/entries"
# What the unit left behind: its entry in this container's binfmt_misc instance (naming binfmtd's copy of
# /opt/qemu's file in its cache, never /opt/qemu itself), and a foreign program that runs through it.
cat "$bm/binfmtd-aarch64" >"$out/entry" 2>/dev/null
/srv/release/arm64/busybox echo foreign program ran >"$out/foreign" 2>&1
# Stopping the unit leaves every entry.
systemctl stop binfmtd.service
record stopped
entries >"$out/entries-after-stop"
# A unit ordered after binfmtd.service runs a foreign program: with every entry flushed first, it can
# only succeed if starting it started binfmtd and waited for its READY=1.
echo -1 >"$bm/status"
cat >/etc/systemd/system/foreign-after.service <<'UNIT'
[Unit]
Requires=binfmtd.service
After=binfmtd.service
[Service]
Type=oneshot
ExecStart=/srv/release/arm64/busybox echo foreign unit ran
StandardOutput=file:/srv/results/foreign-unit
UNIT
systemctl daemon-reload
systemctl start foreign-after.service
echo $? >"$out/foreign-unit.rc"
record ordered
journalctl -u binfmtd.service --no-pager >"$out/journal" 2>&1
echo finished >"$out/finished"
