//! Kubernetes Events from `binfmtd run --exec-monitor --node-labels` against a real
//! kube-apiserver (tests/k8s/cluster.sh) with daemonset/base applied: the agent, on the
//! credentials of binfmtd's service account (so the RBAC of daemonset/base/rbac.yaml is what
//! is exercised), sees the sandbox's programs run in the kubelet-shaped cgroup of a real Pod
//! object (its UID from the API server) and puts `EmulatedExecution` and `ExecFormatError`
//! on that Pod, once per container and program however often they run.

#[path = "monitor_exec/agent.rs"]
mod agent;
mod common;
#[path = "monitor_exec/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use agent::Agent;
use common::cluster::cluster;
use common::Sandbox;
use harness::{ensure_tracefs, hierarchies, ids, run_in_pod, Driver};

const NODE: &str = "monitor-node";
const NS: &str = "apps";

fn with_reason<'a>(events: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["reason"] == reason).collect()
}

#[test]
fn events_on_the_pod_once_per_container_and_program() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let Some(c) = cluster() else { return };
    ensure_tracefs();
    c.add_node(NODE, &[("kubernetes.io/arch", "amd64")]);
    c.kubectl(&["apply", "-k", "daemonset/base"], None)
        .success();
    c.pod_on("binfmtd", "binfmtd", "agent", NODE);
    let token = c.token("binfmtd", "binfmtd", Some("agent"));
    c.kubectl(&["create", "namespace", NS], None).success();
    c.kubectl(&["create", "serviceaccount", "web", "-n", NS], None)
        .success();
    let uid = c.pod_on(NS, "web", "web", NODE);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kubeconfig.path(), c.token_kubeconfig(&token)).unwrap();
    let kc = kubeconfig.path().to_str().unwrap();
    let Some(mut agent) = Agent::start(
        &["--node-labels", "--kubeconfig", kc, "--node-name", NODE],
        false,
    ) else {
        return;
    };

    let (v1, v2) = hierarchies();
    let hierarchy = v1.or(v2).expect("a cgroup hierarchy is mounted");
    let (_, id) = ids("events");
    run_in_pod(sandbox.clone(), Driver::Cgroupfs, &hierarchy, &uid, &id);

    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = c.pod_events(NS, &uid);
        let done = ["EmulatedExecution", "ExecFormatError"]
            .iter()
            .all(|r| !with_reason(&seen, r).is_empty());
        if done {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "no Events on pod {NS}/web: {seen:#?}\nagent log: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let emulated = with_reason(&seen, "EmulatedExecution")[0];
    assert_eq!(emulated["type"], "Normal", "{emulated:#}");
    assert_eq!(emulated["involvedObject"]["name"], "web", "{emulated:#}");
    assert_eq!(emulated["involvedObject"]["kind"], "Pod", "{emulated:#}");
    assert_eq!(emulated["source"]["component"], "binfmtd", "{emulated:#}");
    assert_eq!(emulated["reportingInstance"], NODE, "{emulated:#}");
    let msg = emulated["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "/tmp/arm64/busybox ran emulated as aarch64 in container {}",
            &id[..12]
        )),
        "{msg}"
    );
    let failed = with_reason(&seen, "ExecFormatError")[0];
    assert_eq!(failed["type"], "Warning", "{failed:#}");
    let msg = failed["message"].as_str().unwrap();
    assert!(
        msg.contains("exec of /tmp/s390x/busybox failed")
            && msg.contains("(the file is for s390x)"),
        "{msg}"
    );
    assert!(msg.contains("binfmtd install --arch s390x"), "{msg}");

    // Again in the same container: counted (the status file says twice), no new Event.
    run_in_pod(sandbox, Driver::Cgroupfs, &hierarchy, &uid, &id);
    agent.wait_status("the program run twice", |s| {
        s["daemon"]["exec_monitor"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["container_id"] == id.as_str() && c["programs"][0]["count"] == 2)
    });
    // The failure was counted too; give a stray Event the time it would need to arrive.
    std::thread::sleep(Duration::from_secs(2));
    let after = c.pod_events(NS, &uid);
    for r in ["EmulatedExecution", "ExecFormatError"] {
        assert_eq!(
            with_reason(&after, r).len(),
            1,
            "{r} once per window: {after:#?}"
        );
    }
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}
