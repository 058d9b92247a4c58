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
