#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for tests and for people: etcd and kube-apiserver
# (plus kube-controller-manager and kube-scheduler with --controllers), built by build.sh; with
# --node also a node (kubelet + containerd) that is a sandbox, never this machine (node.sh).
#
#   tests/k8s/cluster.sh up DIR [--controllers] [--node] [--until-exit PID]
#   tests/k8s/cluster.sh user DIR NAME [GROUP]   a client-certificate kubeconfig: prints its path
#   tests/k8s/cluster.sh down DIR
#
# up writes DIR/kubeconfig (cluster-admin), starts the processes, waits until /readyz is ok and
# prints the paths. Every port is a free one on 127.0.0.1; nothing needs the internet once the
# components are built. down stops, by the pids up recorded, exactly the processes up started.
# --until-exit PID: when process PID exits, stop the cluster and remove DIR (a test binary has no
# teardown hook).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/k8s/lib.sh
. "$here/lib.sh"
die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { die "usage: cluster.sh up DIR [--controllers] [--node] [--until-exit PID] | user DIR NAME [GROUP] | down DIR"; }


# A client certificate signed by the cluster CA, and a kubeconfig that uses it.
client_kubeconfig() { # DIR NAME GROUP FILE
    local dir=$1 name=$2 group=$3 file=$4 base
    base=$dir/pki/client-$(printf '%s' "$name" | tr -c 'A-Za-z0-9.-' _)
    local subj="/CN=$name"
    [ -n "$group" ] && subj+="/O=$group"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
        -keyout "$base.key" -out "$base.csr" 2>/dev/null
    openssl x509 -req -in "$base.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -days 30 \
        -extfile <(echo "extendedKeyUsage=clientAuth") -out "$base.crt" 2>/dev/null
    # Embedded, so the kubeconfig works wherever it is copied (e.g. into a sandbox).
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$(cat "$dir/apiserver.port")
    certificate-authority-data: $(base64 -w0 <"$dir/pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$base.crt")
    client-key-data: $(base64 -w0 <"$base.key")
contexts:
- name: local
  context: {cluster: local, user: $name}
current-context: local
EOF
    chmod 0644 "$file"
}

pki() { # DIR
    local p=$1/pki
    mkdir -p "$p"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=binfmtd-test-ca -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
        -keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
    # 10.0.0.1 is the `kubernetes` Service's ClusterIP in --service-cluster-ip-range.
    openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -days 30 -out "$p/apiserver.crt" \
        -extfile <(printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
            "extendedKeyUsage=serverAuth") 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$p/sa.key" 2>/dev/null
    openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub"
    chmod 0644 "$p/ca.crt"
}

# Ready when the API server's /readyz says ok; a process that died fails at once, with its log.
wait_ready() { # DIR KUBECTL
    local dir=$1 kubectl=$2 n
    for _ in $(seq 1 300); do
        "$kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1 && return 0
        for n in etcd kube-apiserver; do
            kill -0 "$(cat "$dir/$n.pid")" 2>/dev/null ||
                { tail -n 30 "$dir/$n.log" >&2; die "$n exited during start-up (log: $dir/$n.log)"; }
        done
        sleep 0.2
    done
    tail -n 30 "$dir/kube-apiserver.log" >&2
    die "kube-apiserver not ready after 60 s (log: $dir/kube-apiserver.log)"
}

# Audit: who did what to which object (no bodies). tests use it to count requests per node.
audit_policy() {
    cat <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
EOF
}

up() { # DIR [--controllers] [--node] [--until-exit PID]
    local dir=$1 controllers=0 node=0 watch=""
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --controllers) controllers=1 ;;
            # A node needs the DaemonSet controller, the scheduler and the root-CA publisher.
            --node) controllers=1 node=1 ;;
            --until-exit) watch=${2:?--until-exit needs a pid}; shift ;;
            *) usage ;;
        esac
        shift
    done
    [ -e "$dir/etcd.pid" ] && die "$dir already holds a cluster (etcd.pid). Hint: cluster.sh down $dir first."
    local bin
    bin=${BINFMTD_K8S_BIN:-$(bash "$here/build.sh")}
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
    echo "$bin" >"$dir/bin"
    pki "$dir"
    audit_policy >"$dir/audit-policy.yaml"
    local etcd_port peer_port api_port
    etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
    echo "$api_port" >"$dir/apiserver.port"
    start "$dir" etcd "$bin/etcd" --name=default --data-dir="$dir/etcd-data" --unsafe-no-fsync \
        --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-cluster="default=http://127.0.0.1:$peer_port" --listen-metrics-urls="" --log-level=warn
    start "$dir" kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
        --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
        --client-ca-file="$dir/pki/ca.crt" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
        --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" \
        --audit-log-format=json --audit-log-maxsize=100
    client_kubeconfig "$dir" binfmtd-test-admin system:masters "$dir/kubeconfig"
    wait_ready "$dir" "$bin/kubectl"
    if [ "$controllers" = 1 ]; then
        client_kubeconfig "$dir" system:kube-controller-manager "" "$dir/controller-manager.kubeconfig"
        client_kubeconfig "$dir" system:kube-scheduler "" "$dir/scheduler.kubeconfig"
        start "$dir" kube-controller-manager "$bin/kube-controller-manager" \
            --kubeconfig="$dir/controller-manager.kubeconfig" --secure-port=0 --leader-elect=false \
            --use-service-account-credentials=true --root-ca-file="$dir/pki/ca.crt" \
            --service-account-private-key-file="$dir/pki/sa.key" --cluster-signing-cert-file="$dir/pki/ca.crt" \
            --cluster-signing-key-file="$dir/pki/ca.key" --controllers='*,-nodeipam,-cloud-node-lifecycle'
        start "$dir" kube-scheduler "$bin/kube-scheduler" \
            --kubeconfig="$dir/scheduler.kubeconfig" --secure-port=0 --leader-elect=false
    fi
    # On failure node.sh prints the node's log (the kubelet's reason) and up fails.
    if [ "$node" = 1 ]; then bash "$here/node.sh" up "$dir"; fi
    if [ -n "$watch" ]; then
        # A simple command (not a list) in the background: nothing keeps up's stdout open, so
        # a caller that reads it to the end is not left waiting for the watcher.
        # shellcheck disable=SC2016  # positional parameters of the inner shell
        setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; bash "$2" down "$3" && rm -rf "$3"' \
            _ "$watch" "$here/cluster.sh" "$dir" >/dev/null 2>&1 </dev/null &
    fi
    echo "kubeconfig: $dir/kubeconfig"
    echo "server:     https://127.0.0.1:$api_port"
    echo "kubectl:    $bin/kubectl"
    echo "ca:         $dir/pki/ca.crt (key: $dir/pki/ca.key)"
    echo "audit log:  $dir/audit.log"
    echo "logs:       $dir/*.log"
}

# Stop each process up started, by its recorded pid, only while that pid still runs the
# binary up started (a pid reused by an unrelated process is left alone).
down() { # DIR
    local dir=$1 n pid exe bin
    [ -f "$dir/bin" ] || die "$dir holds no cluster started by cluster.sh up"
    bin=$(cat "$dir/bin")
    [ -d "$dir/node" ] && bash "$here/node.sh" down "$dir"
    for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do
        [ -f "$dir/$n.pid" ] || continue
        pid=$(cat "$dir/$n.pid")
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
        if [ "$exe" = "$bin/$n" ]; then
            stop_pid "$pid"
        fi
        rm -f "$dir/$n.pid"
    done
    echo "stopped the cluster in $dir"
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case $cmd in
    up) up "$dir" "$@" ;;
    down) [ $# -eq 0 ] || usage; down "$dir" ;;
    user)
        [ $# -ge 1 ] || usage
        [ -f "$dir/apiserver.port" ] || die "$dir holds no cluster. Hint: cluster.sh up $dir"
        f=$dir/user-$(printf '%s' "$1" | tr -c 'A-Za-z0-9.-' _).kubeconfig
        client_kubeconfig "$dir" "$1" "${2:-}" "$f"
        echo "$f" ;;
    *) usage ;;
esac
