#!/usr/bin/env bash
# The DaemonSet under a real kubelet (the sandboxed node of tests/k8s/cluster.sh up DIR --node):
#
#   bash benches/node.sh [SECONDS]        (as root; default 60 s of steady-state sampling)
#
# Prints, from one run: the time from `kubectl apply -k tests/k8s/node-overlay` to the node's
# binfmtd.io/arm64 label (and to the pod's Ready, for comparison), then the agent's RSS and CPU
# over SECONDS of steady state next to the kubelet's and containerd's on the same node in the
# same window, as ratios. The image is target/x86_64-unknown-linux-musl/release/binfmtd (built
# here) packed by packaging/oci.sh. Needs what tests/k8s_node.rs needs (tests/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

cargo build --release --locked --target x86_64-unknown-linux-musl >/dev/null 2>&1
work=$(mktemp -d)
chmod 0711 "$work"   # the node's root (an unprivileged host uid) reaches its files below
dir=$work/cluster
cleanup() { bash tests/k8s/cluster.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/dist"
cp "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/binfmtd" "$work/dist/binfmtd-$version-x86_64-linux-musl"
VERSION=$version bash packaging/oci.sh "$work/dist" x86_64
bash tests/k8s/cluster.sh up "$dir" --node >/dev/null
kubectl=$(cat "$dir/bin")/kubectl
k() { "$kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
for _ in $(seq 1 360); do   # the kubelet registers the Node, then reports it Ready
    [ "$(k get node binfmtd-node -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
    sleep 0.5
done
k wait --for=condition=Ready node/binfmtd-node --timeout=1s >/dev/null
bash tests/k8s/node.sh import "$dir" "$work/dist/binfmtd-$version-oci.tar" localhost/binfmtd:dev

now() { date +%s.%N; }
calc() { awk "BEGIN { print ($1) }"; }  # floating-point arithmetic without bc
t0=$(now)
k apply -k tests/k8s/node-overlay >/dev/null
until [ "$(k get node binfmtd-node -o jsonpath='{.metadata.labels.binfmtd\.io/arm64}')" = emulated ]; do
    sleep 0.1
    [ "$(calc "$(now) - $t0 > 300")" = 0 ] || { echo "no label after 300 s" >&2; exit 1; }
done
t_label=$(now)
k -n binfmtd rollout status daemonset/binfmtd --timeout=300s >/dev/null
t_ready=$(now)

# Host pids of the node's processes, found by executable in the node's pid namespace.
node1=$(awk '{print $1}' "/proc/$(cat "$dir/node/sandbox.pid")/task/$(cat "$dir/node/sandbox.pid")/children")
ns=$(readlink "/proc/$node1/ns/pid")
pid_of() { # EXE-SUFFIX
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ns" ] || continue
        case $(readlink "$p/exe" 2>/dev/null) in */"$1") echo "${p#/proc/}"; return ;; esac
    done
}
agent=$(pid_of binfmtd) kubelet=$(pid_of kubelet) containerd=$(pid_of containerd)
if [ -z "$agent" ] || [ -z "$kubelet" ] || [ -z "$containerd" ]; then
    echo "node processes not found (agent '$agent', kubelet '$kubelet', containerd '$containerd')" >&2
    exit 1
fi
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; } # KiB
hz=$(getconf CLK_TCK)
declare -A c0 peak
for p in agent kubelet containerd; do c0[$p]=$(ticks "${!p}"); peak[$p]=0; done
for _ in $(seq 1 "$secs"); do
    for p in agent kubelet containerd; do
        r=$(rss "${!p}")
        [ "$r" -gt "${peak[$p]}" ] && peak[$p]=$r
    done
    sleep 1
done
cpu() { calc "($(ticks "${!1}") - ${c0[$1]}) * 1000 / $hz / $secs"; }  # ms CPU per s
printf 'kubectl apply -k -> node label binfmtd.io/arm64=emulated   %6.2f s\n' "$(calc "$t_label - $t0")"
printf 'kubectl apply -k -> rollout complete (pod Ready)          %6.2f s\n' "$(calc "$t_ready - $t0")"
echo "steady state over $secs s (peak RSS; CPU in ms per s of wall time):"
for p in agent kubelet containerd; do
    printf '  %-10s  RSS %7d KiB  CPU %7.2f ms/s' "$p" "${peak[$p]}" "$(cpu "$p")"
    [ "$p" = agent ] || printf '   agent/%s: RSS %.2fx  CPU %.2fx' "$p" \
        "$(calc "${peak[agent]} / ${peak[$p]}")" \
        "$(calc "$(cpu agent) / ($(cpu "$p") + 0.0001)")"
    echo
done
