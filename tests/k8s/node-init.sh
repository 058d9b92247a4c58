#!/usr/bin/env bash
# pid 1 of the node that node.sh starts: runs as the node's root (host uid 100000) in fresh user,
# mount, pid, network, cgroup, uts and ipc namespaces. Makes the node's filesystem view, network
# and cgroups, starts containerd and the kubelet, and then reaps orphans until it is killed
# (bash as pid 1 reaps every child it is sent SIGCHLD for).
# Arguments: the host's DIR/node, the directory holding the kubelet.
set -euo pipefail
host_nd=$1 bin=$2
log() { echo "node-init: $*" >&2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- filesystems: nothing the node writes reaches the host's files
mount --make-rprivate /
# The host's v1 hierarchies, read before /sys is replaced: "MOUNTPOINT OPTIONS" (controllers).
cgroups=$(awk '$3 == "cgroup" { print $2, $4 }' /proc/self/mounts)
mount -t proc proc /proc
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/node
mount --bind "$host_nd" /run/node
nd=/run/node
# The kubelet's directory may be under /tmp too (BINFMTD_K8S_CACHE): keep it visible.
mkdir /run/node-bin
mount --bind "$bin" /run/node-bin
bin=/run/node-bin
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /var/lib
mount -t tmpfs -o mode=0755 tmpfs /var/log
# sysfs of this network namespace; cgroup v1 hierarchies as seen from the cgroup namespace
# (its root is the subtree node.sh delegated). No cgroup2 mount: the kubelet sees plain v1.
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
while read -r mnt opts; do
    ctrls=$(tr , '\n' <<<"$opts" | grep -vx -e rw -e ro -e relatime -e nosuid -e nodev -e noexec | paste -sd,)
    mkdir -p "$mnt"
    mount -t cgroup -o "$ctrls" cgroup "$mnt"
done <<<"$cgroups"
# A minimal /dev: privileged pods get what is here, not the host's disks.
mkdir /run/dev-host
mount --rbind /dev /run/dev-host
mount -t tmpfs -o mode=0755 tmpfs /dev
for d in null zero full random urandom tty; do
    touch "/dev/$d"
    mount --bind "/run/dev-host/$d" "/dev/$d"
done
umount -l /run/dev-host && rmdir /run/dev-host
mkdir /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
ln -s /proc/self/fd /dev/fd
# The node's own binfmt_misc instance: empty, and gone with the node.
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
# Interpreters the agent may trust: on a tmpfs owned by the node's root (the host's
# /usr/bin/qemu-* belong to an unmapped uid here). The test overlay's config points here.
mkdir -p /run/qemu
mount -t tmpfs -o mode=0755 tmpfs /run/qemu
cp /usr/bin/qemu-aarch64-static /run/qemu/

# --- network: loopback with the API server's ClusterIP, a node address, the CNI bridge
hostname binfmtd-node
ip link set lo up
ip addr add 10.0.0.1/32 dev lo
# The node's address (the kubelet wants one with a default route): a veth pair whose other
# end stays here too, as this kernel has no dummy driver.
ip link add eth0 type veth peer name eth0-peer
ip addr add 10.96.0.2/24 dev eth0
ip link set eth0-peer up
ip link set eth0 up
ip route add default dev eth0
echo "nameserver 10.96.0.1" >/run/node-resolv.conf
socat TCP-LISTEN:443,bind=10.0.0.1,fork,reuseaddr "UNIX-CONNECT:$nd/api.sock" >>"$nd/api-node.log" 2>&1 &
mkdir -p /run/cni/net.d
cat >/run/cni/net.d/10-bridge.conflist <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "binfmtd-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF

# --- containerd (CRI, cgroupfs, the pause image built by node.sh)
mkdir -p /run/containerd
cat >/run/containerd/config.toml <<'EOF'
version = 2
root = "/var/lib/containerd"
state = "/run/containerd/state"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  # A user namespace: no AppArmor, hugetlb, or lowering other processes' OOM scores.
  disable_apparmor = true
  disable_hugetlb_controller = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/run/cni/net.d"
EOF
containerd --config /run/containerd/config.toml >>"$nd/containerd.log" 2>&1 &
for _ in $(seq 1 200); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.05; done
[ -S /run/containerd/containerd.sock ] || { log "containerd did not start in 10 s (log: containerd.log)"; exit 1; }

# --- the kubelet
mkdir -p /var/lib/kubelet
cat >/run/node/kubelet.yaml <<'EOF'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: /run/node/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
# cgroup v1 is what this kernel's hierarchies offer; 1.35 refuses it unless told.
failCgroupV1: false
failSwapOn: false
featureGates:
  KubeletInUserNamespace: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: /run/node-resolv.conf
clusterDomain: cluster.local
# No eviction on the node's small tmpfs filesystems, no image garbage collection.
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
protectKernelDefaults: false
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
EOF
"$bin/kubelet" --config=/run/node/kubelet.yaml --kubeconfig=/run/node/kubelet.kubeconfig \
    --hostname-override=binfmtd-node --node-ip=10.96.0.2 --root-dir=/var/lib/kubelet --v=2 \
    >>"$nd/kubelet.log" 2>&1 &
kubelet_pid=$!
touch "$nd/running"
log "containerd and kubelet started"
trap - ERR
set +e
# Reap orphans (shims' children) until the node is stopped; report the kubelet's exit.
while :; do
    wait -n
    if [ ! -e "$nd/kubelet-exited" ] && ! kill -0 "$kubelet_pid" 2>/dev/null; then
        log "the kubelet exited (log: kubelet.log)"
        touch "$nd/kubelet-exited"
    fi
    sleep 0.2
done
