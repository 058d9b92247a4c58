//! The sandboxed node of `tests/k8s/cluster.sh up DIR --node` (tests/k8s/node.sh) from Rust: start
//! it, wait until the kubelet has made the Node Ready, import images into its containerd, run
//! commands inside it, and build the images the tests run (binfmtd from this checkout, an arm64
//! program, no registry).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::cluster::{self, Cluster};

pub const NODE: &str = "binfmtd-node";
/// The image the test overlay (tests/k8s/node-overlay) runs.
pub const AGENT_IMAGE: &str = "localhost/binfmtd:dev";
/// A single-platform arm64 image whose entrypoint is `uname -m`.
pub const ARM64_IMAGE: &str = "localhost/uname-arm64:1";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last lines of one of the node's logs (kubelet, containerd, sandbox), for failure messages.
pub fn log_tail(c: &Cluster, name: &str, lines: usize) -> String {
    let all = std::fs::read_to_string(c.dir.join("node").join(format!("{name}.log")))
        .unwrap_or_else(|e| format!("<no {name}.log: {e}>"));
    let v: Vec<&str> = all.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A control plane with controllers and the node, stopped when this test binary exits; None
/// (after printing why) when the components are not built and CI is not set.
pub fn start() -> Option<Cluster> {
    crate::common::support::require()?;
    let bin = cluster::components()?;
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-node-")
        .tempdir()
        .unwrap()
        .keep();
    let up = Command::new("bash")
        .arg(repo().join("tests/k8s/cluster.sh"))
        .args(["up".as_ref(), dir.as_os_str(), "--node".as_ref()])
        .arg("--until-exit")
        .arg(std::process::id().to_string())
        .env("BINFMTD_K8S_BIN", &bin)
        .output()
        .expect("bash runs tests/k8s/cluster.sh");
    // A node that cannot start is a failure (never a skip), with what the kubelet printed.
    assert!(
        up.status.success(),
        "tests/k8s/cluster.sh up {} --node failed:\n{}",
        dir.display(),
        text(&up)
    );
    let port = std::fs::read_to_string(dir.join("apiserver.port")).unwrap();
    let c = Cluster {
        kubeconfig: dir.join("kubeconfig"),
        kubectl: bin.join("kubectl"),
        port: port.trim().parse().unwrap(),
        ca_pem: std::fs::read_to_string(dir.join("pki/ca.crt")).unwrap(),
        dir,
    };
    wait_node_ready(&c);
    Some(c)
}

/// The Node registered by the kubelet and Ready (runtime and CNI ready). A kubelet that exits,
/// or a node not Ready within 180 s, fails with the kubelet's last lines.
fn wait_node_ready(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let exited = c.dir.join("node/kubelet-exited");
    loop {
        let out = c.kubectl(
            &[
                "get",
                "node",
                NODE,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            None,
        );
        if out.ok && out.stdout.trim() == "True" {
            return;
        }
        let why = if exited.exists() {
            "the kubelet exited"
        } else if Instant::now() > deadline {
            "not Ready within 180 s"
        } else {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        panic!(
            "node {NODE}: {why} ({}{})\n--- kubelet.log (last 60 lines) ---\n{}\n--- containerd.log ---\n{}",
            out.stdout,
            out.stderr.trim(),
            log_tail(c, "kubelet", 60),
            log_tail(c, "containerd", 20)
        );
    }
}

/// Run `args` inside the node (all its namespaces, as its root).
pub fn node_exec(c: &Cluster, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo().join("tests/k8s/node.sh"))
        .arg("exec")
        .arg(&c.dir)
        .args(args)
        .output()
        .expect("bash runs tests/k8s/node.sh")
}

/// `node_exec` that must succeed; its stdout.
#[track_caller]
pub fn node_sh(c: &Cluster, script: &str) -> String {
    let out = node_exec(c, &["sh", "-c", script]);
    assert!(
        out.status.success(),
        "in the node: {script}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Import the OCI archive `tar` into the node's containerd as `name`.
pub fn import(c: &Cluster, tar: &Path, name: &str) {
    let out = Command::new("bash")
        .arg(repo().join("tests/k8s/node.sh"))
        .arg("import")
        .arg(&c.dir)
        .arg(tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import {} as {name}: {}",
        tar.display(),
        text(&out)
    );
}

/// The binfmtd OCI image of this checkout: BINFMTD_DIST's (tests/run.sh builds it with
/// packaging/dist.sh), else a static x86_64 release build packed by packaging/oci.sh.
pub fn agent_image(work: &Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    if let Some(dist) = std::env::var_os("BINFMTD_DIST") {
        let tar = Path::new(&dist).join(format!("binfmtd-{version}-oci.tar"));
        assert!(tar.exists(), "BINFMTD_DIST has no {}", tar.display());
        return tar;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = "x86_64-unknown-linux-musl";
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", target])
        .current_dir(repo());
    // Without the variables cargo sets for a test process, so this build is the one a shell's
    // `cargo build` makes, and not a second one that replaces it (build scripts watch some).
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let ours = k == "CARGO_HOME" || k == "CARGO_TARGET_DIR";
        if (k.starts_with("CARGO_") && !ours) || k == "LD_LIBRARY_PATH" || k == "OUT_DIR" {
            cmd.env_remove(k.as_ref());
        }
    }
    let build = cmd.output().unwrap();
    assert!(
        build.status.success(),
        "cargo build --release --target {target}: {}",
        text(&build)
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let out = work.join("dist");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        target_dir.join(target).join("release/binfmtd"),
        out.join(format!("binfmtd-{version}-x86_64-linux-musl")),
    )
    .unwrap();
    let oci = Command::new("bash")
        .arg(repo().join("packaging/oci.sh"))
        .arg(&out)
        .arg("x86_64")
        .env("VERSION", version)
        .output()
        .unwrap();
    assert!(oci.status.success(), "packaging/oci.sh: {}", text(&oci));
    out.join(format!("binfmtd-{version}-oci.tar"))
}

/// An arm64 image holding only the arm64 busybox fixture, entrypoint `busybox uname -m`.
pub fn arm64_image(work: &Path, busybox: &Path) -> PathBuf {
    let tar = work.join("uname-arm64.tar");
    let out = Command::new("bash")
        .arg(repo().join("tests/k8s/node-image.sh"))
        .arg(&tar)
        .args(["1", "arm64"])
        .arg(format!("{}:/bin/busybox", busybox.display()))
        .args(["--", "/bin/busybox", "uname", "-m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "node-image.sh: {}", text(&out));
    tar
}

/// Poll `f` every 200 ms until it returns Some, or panic with `what` after `limit`.
#[track_caller]
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A pod of the arm64 image, placed by the scheduler on a node labelled as emulating arm64.
pub fn arm64_pod(c: &Cluster, name: &str) {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "nodeSelector": {"binfmtd.io/arm64": "emulated"},
            "containers": [{"name": "uname", "image": ARM64_IMAGE, "imagePullPolicy": "Never"}]
        }
    });
    c.kubectl(&["create", "-f", "-"], Some(&pod.to_string()))
        .success();
}

/// The pod's phase once it has finished (Succeeded or Failed), with the node's log of it.
pub fn finished(c: &Cluster, ns: &str, pod: &str, limit: Duration) -> (String, String) {
    let phase = wait_for(limit, &format!("pod {ns}/{pod} to finish"), || {
        let out = c.kubectl(
            &[
                "get",
                "pod",
                pod,
                "-n",
                ns,
                "-o",
                "jsonpath={.status.phase}",
            ],
            None,
        );
        let p = out.stdout.trim().to_string();
        (p == "Succeeded" || p == "Failed").then_some(p)
    });
    (phase, container_logs(c, ns, pod))
}

/// What the pod's containers printed: the kubelet's CRI log files on the node (the API server
/// on the host's loopback cannot reach the kubelet's port inside the node for `kubectl logs`).
/// Only the message of each line (`TIME STREAM TAG MESSAGE`).
pub fn container_logs(c: &Cluster, ns: &str, pod: &str) -> String {
    let raw = node_sh(
        c,
        &format!("cat /var/log/pods/{ns}_{pod}_*/*/*.log 2>/dev/null || true"),
    );
    raw.lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}
