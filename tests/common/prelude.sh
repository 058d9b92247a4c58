# Sourced at the top of every sandbox script, running as the sandbox's root (host uid 100000)
# in fresh user, mount and pid namespaces. Defines helpers; `sandbox_setup` makes the sandbox.
set -eu

# Fresh proc for the new pid namespace, tmpfs over every directory a test writes to (the host's
# /run and /tmp stay untouched), then a private binfmt_misc instance: the first binfmt_misc
# mount in a user namespace is a new, empty instance that dies with the namespace.
sandbox_setup() {
    sandbox_dirs
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    sandbox_qemu
}

# The private directories alone (no binfmt_misc instance yet).
sandbox_dirs() {
    sandbox_run
    sandbox_tmp
}

# Fresh /proc and /run: a script that must copy inputs out of a host /tmp directory does it
# between this and sandbox_tmp.
sandbox_run() {
    mount -t proc proc /proc
    mount -t tmpfs -o mode=0755 tmpfs /run
}

# Private /tmp, /dev/shm and /var/lib.
sandbox_tmp() {
    # A checkout under /tmp would vanish under the fresh /tmp: bind the paths the tests use
    # ($SANDBOX_KEEP: the checkout, the built binary, the fixtures) back where they were.
    mkdir /run/.host-tmp
    mount --bind /tmp /run/.host-tmp
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    _ifs=$IFS IFS=:
    for _p in ${SANDBOX_KEEP:-}; do
        case "$_p" in
        /tmp/*)
            mkdir -p "$_p"
            mount --bind "/run/.host-tmp/${_p#/tmp/}" "$_p"
            ;;
        esac
    done
    IFS=$_ifs
    umount -l /run/.host-tmp
    rmdir /run/.host-tmp
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    # binfmtd's default cache, /var/lib/binfmtd, holds the copy of every interpreter it registers.
    mount -t tmpfs -o mode=0755 tmpfs /var/lib
}

# The tests' interpreters: copies on a tmpfs the sandbox root owns, so a test may change or
# break them without touching the host's files.
sandbox_qemu() {
    mkdir -p "$QEMU_DIR"
    mount -t tmpfs -o mode=0755 tmpfs "$QEMU_DIR"
    for t in $QEMU_TARGETS; do
        cp "/usr/bin/qemu-$t-static" "$QEMU_DIR/qemu-$t-static"
    done
}

# mkrootfs DIR BUSYBOX [QEMU]: a root filesystem holding only BUSYBOX and its applet links.
# The applet list comes from running BUSYBOX through QEMU directly (no binfmt_misc needed).
mkrootfs() {
    _dir=$1 _bb=$2 _qemu=${3:-}
    mkdir -p "$_dir/bin" "$_dir/proc" "$_dir/dev" "$_dir/tmp" "$_dir/sys" "$_dir/etc"
    cp "$_bb" "$_dir/bin/busybox"
    for _a in $($_qemu "$_dir/bin/busybox" --list); do
        [ -e "$_dir/bin/$_a" ] || ln -s busybox "$_dir/bin/$_a"
    done
}

# The entry names in the instance, one per line, sorted (register and status excluded).
entries() {
    ls /proc/sys/fs/binfmt_misc | grep -vx -e register -e status | sort || true
}

# section NAME: start a named block of output (split apart by common::sections).
section() {
    echo "=== $1"
}

# code CMD...: run CMD, then print "exit=N" whatever N is (set -e stays on for the rest).
code() {
    _rc=0
    "$@" || _rc=$?
    echo "exit=$_rc"
}

# wait_for CMD...: poll CMD every 20 ms until it succeeds, for up to $WAIT_SECS seconds
# (default 10); on a timeout print what was awaited and the agent's log, and fail.
wait_for() {
    _n=0
    until "$@"; do
        _n=$((_n + 1))
        if [ $_n -gt $((${WAIT_SECS:-10} * 50)) ]; then
            echo "timed out waiting for: $*"
            cat /tmp/agent.log 2>/dev/null || true
            return 1
        fi
        sleep 0.02
    done
}
