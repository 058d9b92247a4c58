//! The containerd facts placement is built on, checked with containerd's real CRI image service
//! (the one the kubelet calls) in the sandbox, against a real registry on loopback:
//! - an image *index* that lacks the node's platform fails to pull ("no match for platform");
//! - the same image named by one platform's manifest digest (what placement rewrites a
//!   container's image to) pulls, and its container runs under binfmtd's emulator;
//! - a single-platform manifest pulls whatever its platform.
//!
//! This machine is amd64, so the arm64-only image is the foreign one (the mirror of an
//! amd64-only image on a Graviton node). crictl is built by tests/k8s/build-crictl.sh.

mod common;

use common::containerd::{cri_setup, crictl};
use common::registry::{registry, Auth};
use common::{sections, with_exit, Sandbox, NATIVE_I386};

/// The pod every container of this test runs in.
const POD: &str = r#"cat > /tmp/pod.json <<CFG
{"metadata": {"name": "placement-pull", "namespace": "default", "uid": "pull-uid", "attempt": 0},
 "log_directory": "/tmp/ctd/logs",
 "linux": {"security_context": {"namespace_options": {"network": 2}}}}
CFG
"#;

/// Runs IMAGE in a CRI pod sandbox; prints the container's log (its `uname -m`).
const RUN_IN_POD: &str = r#"run_in_pod() {
    printf '{"metadata": {"name": "c"}, "image": {"image": "%s"}, "log_path": "c.log",
            "linux": {"security_context": {"namespace_options": {"network": 2}}}}' "$1" > /tmp/c.json
    rm -f /tmp/ctd/logs/c.log  # one log per run: the pods share their log directory
    # crictl's own warnings go to a file: what is printed is the container's output.
    pod=$(crictl runp /tmp/pod.json 2>>/tmp/ctd/crictl.err) || { cat /tmp/ctd/crictl.err; return 1; }
    cid=$(crictl create "$pod" /tmp/c.json /tmp/pod.json 2>>/tmp/ctd/crictl.err) || { cat /tmp/ctd/crictl.err; return 1; }
    crictl start "$cid" >/dev/null 2>>/tmp/ctd/crictl.err || { cat /tmp/ctd/crictl.err; return 1; }
    for i in $(seq 100); do
        [ "$(crictl inspect -o go-template --template '{{.status.state}}' "$cid" 2>>/tmp/ctd/crictl.err)" = CONTAINER_EXITED ] && break
        sleep 0.1
    done
    crictl logs "$cid" 2>&1 | grep -v 'level=warning msg="Config'
}
"#;

#[test]
fn an_index_without_the_node_platform_fails_and_its_platform_digest_runs_emulated() {
    let Some(crictl) = crictl() else { return };
    let Some(reg) = registry(Auth::Anonymous) else {
        return;
    };
    let Some(sb) = Sandbox::new() else { return };
    // The pause container's program: i386 busybox runs natively here, no emulator involved.
    let native = NATIVE_I386;
    let index = reg.reference("arm64only:v1");
    let digest = reg.platform_digest("arm64only:v1", "arm64");
    // The rewrite placement applies: same repository, pinned to the arm64 manifest.
    let pinned = binfmtd::placement::reference::pin(&index, digest).expect("a valid reference");
    let single = reg.reference("single-arm64:v1");
    let install = "$BINFMTD install --arch linux/arm64 --interpreter-dir $QEMU_DIR >&2";
    let run = sb
        .with_qemu(&["aarch64"])
        .env("CRICTL", crictl.display().to_string())
        // The sandbox has a /tmp of its own: the CA travels by value.
        .env("REGISTRY_CA", reg.ca_pem.clone())
        .run_script(&format!(
            "{setup}{POD}{RUN_IN_POD}\
             section index; code crictl pull {index} 2>&1\n\
             section pinned; code crictl pull {pinned} 2>&1\n\
             section single; code crictl pull {single} 2>&1\n\
             section inspect; code crictl inspecti -o json {pinned} 2>&1\n\
             section before; code run_in_pod {pinned} 2>&1\n\
             crictl rmp -fa >/dev/null 2>&1\n\
             {install}\n\
             section after; code run_in_pod {pinned} 2>&1\n\
             crictl rmp -fa >/dev/null 2>&1\n\
             kill $ctd; wait $ctd\n",
            setup = cri_setup(Some(&reg.host), &native.host_path().display().to_string()),
        ))
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["index"]);
    assert_ne!(code, 0, "an arm64-only index must not pull on amd64: {run}");
    assert!(
        text.contains("no match for platform in manifest"),
        "the kubelet's reason for an index without the node's platform: {text}\n{run}"
    );
    let (text, code) = with_exit(&s["pinned"]);
    assert_eq!(code, 0, "the platform digest pulls: {text}\n{run}");
    let (text, code) = with_exit(&s["inspect"]);
    assert_eq!(code, 0, "{run}");
    assert!(
        text.contains(&format!("\"{pinned}\"")),
        "the image the runtime holds is the arm64 manifest's digest: {text}"
    );
    let (text, code) = with_exit(&s["single"]);
    assert_eq!(
        code, 0,
        "a single-platform manifest pulls whatever its platform: {text}\n{run}"
    );
    let (text, _) = with_exit(&s["before"]);
    assert!(
        text.contains("Exec format error") && !text.contains("aarch64"),
        "without binfmtd the pulled arm64 container fails to exec: {text}\n{run}"
    );
    let (text, code) = with_exit(&s["after"]);
    assert_eq!(code, 0, "{run}");
    assert_eq!(
        text.trim(),
        "aarch64",
        "after binfmtd install the pinned arm64 container runs emulated: {run}"
    );
}
