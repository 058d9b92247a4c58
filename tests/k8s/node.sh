#!/usr/bin/env bash
# A Kubernetes node that is a sandbox, never this machine: containerd (CRI) and the kubelet run in
# fresh user, mount, pid, network, cgroup, uts and ipc namespaces whose root is the unprivileged
# host uid 100000, with a private binfmt_misc instance. cluster.sh runs it (`up DIR --node`); by
# hand:
#
#   tests/k8s/node.sh up DIR           start the node of the cluster in DIR (after cluster.sh up)
#   tests/k8s/node.sh import DIR TAR NAME  import an OCI archive into the node's containerd
#                                          (namespace k8s.io) as image NAME
#   tests/k8s/node.sh exec DIR CMD...  run CMD inside the node (all its namespaces)
#   tests/k8s/node.sh down DIR         stop the node (its namespaces die with its pid 1)
#
# Inside the node (see node-init.sh): pid 1 is the sandbox's own init, so a pod that enters
# /proc/1/ns/mnt enters the node's mount namespace; binfmt_misc there is the private instance.
# The API server listens on the host's loopback, which another network namespace cannot reach:
# a socat on the host serves it on a unix socket in DIR/node, and a socat in the node listens on
# 10.0.0.1:443, the `kubernetes` Service's ClusterIP, assigned to the node's loopback. The kubelet
# and every pod (through the CNI bridge, whose gateway is the node) reach the API server there,
# which is what KUBERNETES_SERVICE_HOST/PORT name: no kube-proxy is needed for that one Service.
# Cgroups: a subtree of the caller's own cgroup in each v1 hierarchy, owned by host uid 100000,
# becomes the node's cgroup namespace root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/k8s/lib.sh
. "$here/lib.sh"
die() { echo "node.sh: $*" >&2; exit 1; }
usage() { die "usage: node.sh up DIR | import DIR TAR NAME | exec DIR CMD... | down DIR"; }

NODE=binfmtd-node
HOST_ID=100000   # the node's root; 65534 ids from there

# The v1 hierarchies mounted here: "MOUNTPOINT OPTIONS" per line (OPTIONS without rw/relatime).
hierarchies() {
    awk '$3 == "cgroup" {
        n = split($4, o, ","); s = ""
        for (i = 1; i <= n; i++) if (o[i] !~ /^(rw|ro|relatime|nosuid|nodev|noexec)$/) s = s (s == "" ? "" : ",") o[i]
        print $2, s
    }' /proc/self/mounts
}

# The caller's own cgroup in the hierarchy holding OPTIONS' controllers (from /proc/self/cgroup).
own_cgroup() { # OPTIONS
    local want=$1 id ctrls path
    while IFS=: read -r id ctrls path; do
        [ "$id" = 0 ] && continue
        [ "$ctrls" = "$want" ] && { echo "$path"; return; }
    done </proc/self/cgroup
    echo /
}

# Create the node's cgroup in every v1 hierarchy, owned by the node's root; print the dirs.
make_cgroups() { # NAME
    local name=$1 mnt opts cg
    while read -r mnt opts; do
        cg=$mnt$(own_cgroup "$opts")
        cg=${cg%/}/$name
        mkdir -p "$cg"
        if [ -f "$cg/cpuset.cpus" ]; then   # an empty cpuset admits no task
            cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
            cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
        fi
        chown -R "$HOST_ID:$HOST_ID" "$cg"
        echo "$cg"
    done < <(hierarchies)
}

# Remove the node's cgroups, deepest first (the kernel refuses non-empty ones).
remove_cgroups() { # DIR
    local f=$1/node/cgroups cg
    [ -f "$f" ] || return 0
    while read -r cg; do
        if [ -d "$cg" ]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done <"$f"
}

node_pid() { # DIR: the host pid of the node's pid 1
    local dir=$1 outer
    outer=$(cat "$dir/node/sandbox.pid" 2>/dev/null) || die "no node in $dir. Hint: cluster.sh up $dir --node"
    # unshare --fork: the only child of the unshare process is the node's pid 1.
    awk '{print $1}' "/proc/$outer/task/$outer/children" 2>/dev/null
}

in_node() { # DIR CMD...: as the node's root, in all its namespaces
    local dir=$1 pid
    shift
    pid=$(node_pid "$dir")
    [ -n "$pid" ] || die "the node of $dir is not running (log: $dir/node/init.log)"
    nsenter --target "$pid" --user --mount --pid --net --uts --ipc --cgroup --root --wd=/ -- "$@"
}

up() { # DIR
    local dir=$1 bin nd port
    dir=$(cd "$dir" && pwd)
    [ -f "$dir/apiserver.port" ] || die "$dir holds no cluster. Hint: cluster.sh up $dir --controllers first"
    [ -e "$dir/node/sandbox.pid" ] && die "$dir already has a node. Hint: node.sh down $dir"
    bin=$(cat "$dir/bin")
    port=$(cat "$dir/apiserver.port")
    [ -x "$bin/kubelet" ] || die "no kubelet in $bin. Hint: run tests/k8s/build.sh"
    for c in containerd ctr runc socat nsenter setpriv unshare ip umoci jq gcc; do
        command -v "$c" >/dev/null || die "$c is not installed. Hint: run tests/deps.sh"
    done
    [ -x /usr/lib/cni/bridge ] || die "no CNI plugins in /usr/lib/cni. Hint: apt-get install containernetworking-plugins"
    nd=$dir/node
    mkdir -p "$nd"
    # The node's root (host uid 100000) must reach DIR/node, not read DIR (the CA key is there).
    chmod 0711 "$dir"
    local d=$dir
    while d=$(dirname "$d") && [ "$d" != / ]; do
        [ $(( 0$(stat -c %a "$d") & 01 )) -ne 0 ] ||
            die "$d (mode $(stat -c %a "$d")) keeps other users out, so the node's root (host uid $HOST_ID) cannot reach $dir/node. Hint: put DIR under a directory others may search, e.g. /tmp"
    done
    # The kubelet's identity: system:node:NAME in system:nodes, as the Node authorizer expects.
    local kc
    kc=$(bash "$here/cluster.sh" user "$dir" "system:node:$NODE" system:nodes)
    sed "s|server: https://127.0.0.1:$port|server: https://10.0.0.1:443|" "$kc" >"$nd/kubelet.kubeconfig"
    cp "$dir/pki/ca.crt" "$nd/ca.crt"
    cp "$here/node-init.sh" "$nd/init.sh"
    # The pause image: a static program that sleeps until told to stop.
    gcc -static -Os -o "$nd/pause" -x c - <<'C'
#include <signal.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGINT, stop); signal(SIGTERM, stop); for (;;) pause(); }
C
    local arch
    case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
    bash "$here/node-image.sh" "$nd/pause.tar" 3.10 "$arch" "$nd/pause:/pause" -- /pause
    chown -R "$HOST_ID:$HOST_ID" "$nd"

    # The API server, served on a unix socket the node's socat connects to.
    rm -f "$nd/api.sock"
    start "$nd" api-forward socat "UNIX-LISTEN:$nd/api.sock,fork,mode=0600,user=$HOST_ID" "TCP:127.0.0.1:$port"
    for _ in $(seq 1 50); do [ -S "$nd/api.sock" ] && break; sleep 0.1; done

    make_cgroups "binfmtd-node-$(basename "$dir")" >"$nd/cgroups"
    mkfifo -m 0600 "$nd/gate" && chown "$HOST_ID:$HOST_ID" "$nd/gate"
    # The outer process joins the node's cgroups, drops to uid 100000 and unshares; its child,
    # pid 1 of the node, waits for the uid/gid maps (written below by real root) and runs init.
    # shellcheck disable=SC2016  # for the inner shells
    start "$nd" sandbox bash -c '
        nd=$1 bin=$2
        while read -r cg; do echo $$ >"$cg/cgroup.procs"; done <"$nd/cgroups"
        exec setpriv --reuid='"$HOST_ID"' --regid='"$HOST_ID"' --clear-groups \
            unshare --user --mount --pid --net --uts --ipc --cgroup --fork --kill-child -- \
            bash -c "read -r go <\"\$1/gate\" && [ \"\$go\" = go ] || exit 125; exec bash \"\$1/init.sh\" \"\$1\" \"\$2\"" init "$nd" "$bin"
        ' _ "$nd" "$bin"
    local outer ours
    outer=$(cat "$nd/sandbox.pid")
    ours=$(readlink /proc/self/ns/user)
    local theirs=""
    for _ in $(seq 1 200); do
        theirs=$(readlink "/proc/$outer/ns/user" 2>/dev/null) ||
            { cat "$nd/sandbox.log" >&2; die "the node's first process exited before its user namespace existed (log above)"; }
        [ "$theirs" != "$ours" ] && break
        sleep 0.05
    done
    [ "$theirs" != "$ours" ] ||
        { cat "$nd/sandbox.log" >&2; die "the node's user namespace was not created within 10 s (log above)"; }
    echo "0 $HOST_ID 65534" >"/proc/$outer/uid_map"
    echo "0 $HOST_ID 65534" >"/proc/$outer/gid_map"
    echo go >"$nd/gate"

    # containerd, then the kubelet: init.sh writes a marker when both run.
    for _ in $(seq 1 600); do
        [ -f "$nd/running" ] && break
        kill -0 "$outer" 2>/dev/null || { tail -n 40 "$nd/sandbox.log" >&2; die "the node exited during start-up (log: $nd/sandbox.log)"; }
        sleep 0.1
    done
    [ -f "$nd/running" ] || { tail -n 40 "$nd/sandbox.log" >&2; die "the node did not start within 60 s (log: $nd/sandbox.log)"; }
    import "$dir" "$nd/pause.tar" localhost/pause:3.10
    echo "$NODE" >"$nd/name"
    echo "node:       $NODE (pid 1 = host pid $(node_pid "$dir"))"
    echo "node logs:  $nd/{sandbox,containerd,kubelet}.log"
}

# Import archive TAR (an OCI layout) as NAME: containerd names it after the tag in the archive's
# index.json, so import under NAME's repository and retag when the tags differ.
import() { # DIR TAR NAME
    local dir=$1 tar=$2 name=$3 tag
    tag=$(tar -xOf "$tar" ./index.json 2>/dev/null || tar -xOf "$tar" index.json)
    tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' <<<"$tag")
    [ -n "$tag" ] || die "$tar: index.json names no tag (org.opencontainers.image.ref.name)"
    in_node "$dir" ctr -a /run/containerd/containerd.sock -n k8s.io images import --all-platforms \
        --base-name "${name%:*}" - <"$tar" >/dev/null ||
        die "importing $tar into the node's containerd failed (log: $dir/node/containerd.log)"
    [ "${name%:*}:$tag" = "$name" ] ||
        in_node "$dir" ctr -a /run/containerd/containerd.sock -n k8s.io images tag --force "${name%:*}:$tag" "$name" >/dev/null
}

down() { # DIR
    local dir=$1 nd=$1/node n pid
    [ -d "$nd" ] || return 0
    # SIGKILL to the node's pid 1 ends every process of its pid namespace. (unshare's
    # --kill-child cannot be relied on: the parent-death signal is cleared when pid 1 execs
    # with the capabilities it gets once its uid map exists.)
    pid=$(node_pid "$dir" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -q init.sh "/proc/$pid/cmdline" 2>/dev/null; then
        kill -9 "$pid"
    fi
    for n in sandbox api-forward; do
        [ -f "$nd/$n.pid" ] || continue
        pid=$(cat "$nd/$n.pid")
        # Only while the pid still runs what up started (unshare, socat).
        case $(readlink "/proc/$pid/exe" 2>/dev/null || true) in
            */unshare | */socat)
                stop_pid "$pid" ;;
        esac
        rm -f "$nd/$n.pid"
    done
    # The node's processes die with its pid namespace; the cgroups are empty moments later.
    for _ in $(seq 1 50); do
        remove_cgroups "$dir"
        [ -n "$(while read -r cg; do [ -d "$cg" ] && echo "$cg"; done <"$nd/cgroups" 2>/dev/null)" ] || break
        sleep 0.1
    done
    echo "stopped the node in $dir"
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case $cmd in
    up) [ $# -eq 0 ] || usage; up "$dir" ;;
    down) [ $# -eq 0 ] || usage; down "$dir" ;;
    import) [ $# -eq 2 ] || usage; import "$dir" "$@" ;;
    exec) [ $# -ge 1 ] || usage; in_node "$dir" "$@" ;;
    *) usage ;;
esac
