//! containerd inside the sandbox: the daemon on the sandbox's tmpfs (crun doing the work through a
//! runc-named wrapper, since cgroups cannot be delegated here) and busybox images to run in it.

use super::fixtures::qemu_in_sandbox;
use super::Busybox;

/// containerd with its root, state and socket on the sandbox's tmpfs; $ctd is its pid.
pub const SETUP: &str = r#"
if [ -d /sys/fs/cgroup/unified ]; then mount -t tmpfs none /sys/fs/cgroup/unified; fi
mkdir -p /run/ctd /tmp/ctd
cat > /tmp/ctd/config.toml <<CFG
version = 2
root = "/tmp/ctd/root"
state = "/run/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/ctd/sock"
CFG
containerd --config /tmp/ctd/config.toml >/tmp/ctd/log 2>&1 &
ctd=$!
printf '#!/bin/sh\nexec crun --cgroup-manager=disabled "$@"\n' > /run/ctd/runc
chmod 755 /run/ctd/runc
"#;

/// An OCI image of the busybox rootfs, marked linux/<arch>, imported into containerd.
pub fn image_script(bb: &Busybox) -> String {
    let platform = bb
        .arch()
        .platform()
        .expect("fixture arches have an OCI platform");
    let goarch = platform.trim_start_matches("linux/");
    format!(
        "umoci init --layout /tmp/oci\n\
         umoci new --image /tmp/oci:latest\n\
         umoci unpack --image /tmp/oci:latest /tmp/image\n\
         mkrootfs /tmp/image/rootfs {bb} {q}\n\
         umoci repack --image /tmp/oci:latest /tmp/image\n\
         umoci config --image /tmp/oci:latest --architecture {goarch} --os linux\n\
         (cd /tmp/oci && tar -cf /tmp/image.tar .)\n\
         for i in $(seq 200); do [ -S /run/ctd/sock ] && break; sleep 0.05; done\n\
         [ -S /run/ctd/sock ] || {{ cat /tmp/ctd/log >&2; echo 'containerd did not start in 10 s' >&2; exit 1; }}\n\
         ctr -a /run/ctd/sock images import --platform {platform} --base-name test.invalid/busybox /tmp/image.tar >/dev/null",
        bb = bb.host_path().display(),
        q = qemu_in_sandbox(bb.qemu_target()),
    )
}

/// crictl, built by tests/k8s/build-crictl.sh; None (a printed skip) when it is not built,
/// a failure when CI=true.
pub fn crictl() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/k8s/build-crictl.sh"
        ))
        .arg("--check")
        .output()
        .expect("bash runs build-crictl.sh");
    if out.status.success() {
        return Some(String::from_utf8(out.stdout).unwrap().trim().into());
    }
    let why = format!(
        "{} (tests/run.sh builds it first)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, so this test may not skip: {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// containerd with its CRI plugin on the sandbox's tmpfs (socket /run/ctd/sock, $ctd its
/// pid), with a pause image built here (no registry on the internet) and crun doing the work
/// through a runc-named wrapper (cgroups cannot be delegated into this sandbox). Defines
/// `crictl` (needs $CRICTL). With `registry` (127.0.0.1:PORT on the host's loopback), pulls
/// from it trusting $REGISTRY_CA.
pub fn cri_setup(registry: Option<&str>, native_busybox: &str) -> String {
    let (reg_files, reg_config, reg_forward) = match registry {
        Some(host) => {
            let (_, port) = host
                .rsplit_once(':')
                .expect("the registry's host is 127.0.0.1:PORT");
            (
                format!(
                    r#"mkdir -p /tmp/ctd/certs.d/{host}
printf '%s' "$REGISTRY_CA" > /tmp/ctd/ca.crt
cat > /tmp/ctd/certs.d/{host}/hosts.toml <<CFG
server = "https://{host}"
[host."https://{host}"]
  capabilities = ["pull", "resolve"]
  ca = "/tmp/ctd/ca.crt"
CFG
socat UNIX-LISTEN:/run/ctd/registry.sock,fork TCP:{host} 2>>/tmp/ctd/log &
"#
                ),
                r#"  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/tmp/ctd/certs.d"
"#
                .to_string(),
                format!(
                    "{{ socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:/run/ctd/registry.sock & }} &&\n    "
                ),
            )
        }
        None => (String::new(), String::new(), String::new()),
    };
    format!(
        r#"if [ -d /sys/fs/cgroup/unified ]; then mount -t tmpfs none /sys/fs/cgroup/unified; fi
mkdir -p /run/ctd /tmp/ctd/logs /tmp/ctd/cni/bin /tmp/ctd/cni/net.d
{reg_files}printf '#!/bin/sh\nexec crun --cgroup-manager=disabled --rootless=false "$@"\n' > /run/ctd/runc
chmod 755 /run/ctd/runc
cat > /tmp/ctd/config.toml <<CFG
version = 2
root = "/tmp/ctd/root"
state = "/run/ctd/state"
[grpc]
  address = "/run/ctd/sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "test.invalid/pause:latest"
  disable_cgroup = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/run/ctd/runc"
  # Pods use the node's network; CRI still watches a CNI config dir, which must be writable.
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/tmp/ctd/cni/bin"
    conf_dir = "/tmp/ctd/cni/net.d"
{reg_config}CFG
# containerd in network and UTS namespaces of the sandbox's own: a pod on the node's network
# joins containerd's, and namespaces owned by the host's user namespace cannot be joined from
# in here (setns: EPERM). A registry on the host's loopback is forwarded in.
unshare --net --uts sh -c 'ip link set lo up &&
    {reg_forward}exec containerd --config /tmp/ctd/config.toml' >/tmp/ctd/log 2>&1 &
ctd=$!
# The pause image: a native busybox that sleeps, imported where CRI looks (namespace k8s.io).
umoci init --layout /tmp/pause
umoci new --image /tmp/pause:latest
cp {native_busybox} /tmp/busybox  # owned by the sandbox's root, as the layer records it
umoci insert --image /tmp/pause:latest /tmp/busybox /bin/busybox >/dev/null
umoci config --image /tmp/pause:latest --architecture amd64 --os linux \
    --config.entrypoint /bin/busybox --config.cmd sleep --config.cmd 2147483647
(cd /tmp/pause && tar -cf /tmp/pause.tar .)
for i in $(seq 200); do [ -S /run/ctd/sock ] && break; sleep 0.05; done
[ -S /run/ctd/sock ] || {{ cat /tmp/ctd/log >&2; echo 'containerd did not start in 10 s' >&2; exit 1; }}
ctr -a /run/ctd/sock -n k8s.io images import --base-name test.invalid/pause /tmp/pause.tar >/dev/null
crictl() {{ "$CRICTL" --runtime-endpoint unix:///run/ctd/sock --image-endpoint unix:///run/ctd/sock --timeout 60s "$@"; }}
"#
    )
}
