//! Downloads after `--mount-namespace` resolve names as the pod does.
//!
//! The DaemonSet's agent enters the host's mount namespace but stays in the pod's network
//! namespace. On hosts whose /etc/resolv.conf names systemd-resolved's stub (127.0.0.53,
//! Ubuntu kubeadm nodes, older AL2023), that resolver exists only in the host's network
//! namespace: a download by host name must use the pod's resolv.conf instead.
//!
//! In the sandbox, "the host" is the sandbox's first mount namespace, with a resolv.conf
//! naming 127.0.0.53; "the pod" is a child mount + network namespace whose resolv.conf names a
//! DNS server on its own loopback (tests/data/dns/answer-all.py), beside an HTTP mirror there.

mod common;

use common::{sections, Sandbox};

const QEMU_RISCV: &str = "/usr/bin/qemu-riscv64-static";

#[test]
fn downloads_after_mount_namespace_resolve_with_the_pods_resolv_conf() {
    let Some(sb) = Sandbox::new() else { return };
    let sha = binfmtd::interp::sha256_file(std::path::Path::new(QEMU_RISCV))
        .unwrap()
        .0;
    let dns = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dns/answer-all.py");
    let host = binfmtd::arch::host().qemu;
    // The pod's side, run by a plain sh in the new namespaces (the prelude's helpers stay
    // in the outer script).
    let pod = format!(
        "set -e\n\
         ip link set lo up\n\
         echo 'nameserver 127.0.0.1' > /run/pod/resolv.conf\n\
         mount --bind /run/pod/resolv.conf /etc/resolv.conf\n\
         python3 {dns} 127.0.0.1 53 > /run/pod/dns.log &\n\
         python3 -m http.server 8080 --bind 127.0.0.1 --directory /run/pod/www >/dev/null 2>&1 &\n\
         for i in $(seq 500); do grep -q ready /run/pod/dns.log && break; sleep 0.02; done\n\
         for i in $(seq 500); do (echo > /dev/tcp/127.0.0.1/8080) 2>/dev/null && break; sleep 0.02; done\n\
         rc=0; $BINFMTD install --mount-namespace /proc/1/ns/mnt --config /run/pod/config.toml --arch riscv64 2>/run/pod/install.err || rc=$?\n\
         echo exit=$rc\n"
    );
    let script = format!(
        "echo 'nameserver 127.0.0.53' > /run/host-resolv.conf\n\
         mount --bind /run/host-resolv.conf /etc/resolv.conf\n\
         mkdir -p /run/pod/www\n\
         cp {QEMU_RISCV} /run/pod/www/qemu-riscv64\n\
         cat > /run/pod/config.toml <<EOF\n\
         [[source]]\n\
         name = \"pod-mirror\"\n\
         kind = \"raw\"\n\
         host = \"{host}\"\n\
         targets = [\"riscv64\"]\n\
         urls = [\"http://qemu.mirror.test:8080/qemu-riscv64\"]\n\
         allow-http = true\n\
         sha256 = \"{sha}\"\n\
         EOF\n\
         cat > /run/pod/pod.sh <<'EOF'\n{pod}EOF\n\
         section install; unshare --mount --net bash /run/pod/pod.sh\n\
         section stderr; cat /run/pod/install.err\n\
         section queries; grep '^query' /run/pod/dns.log | sort -u\n\
         section entries; entries\n"
    );
    let run = sb.run_script(&script).success();
    let s = sections(&run.stdout);
    assert!(s["install"].ends_with("exit=0\n"), "{run}");
    assert!(
        s["queries"].contains("query qemu.mirror.test 1\n"),
        "the pod's resolver was asked: {run}"
    );
    assert!(s["entries"].contains("binfmtd-riscv64"), "{run}");
}
