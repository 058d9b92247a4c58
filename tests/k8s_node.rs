//! The DaemonSet on a real node: the kubelet and containerd of a sandboxed node
//! (`tests/k8s/cluster.sh up DIR --node`) run the binfmtd pod of tests/k8s/node-overlay, with the
//! controller-manager's DaemonSet controller and the scheduler against the real API server.
//!
//! One test, in the order a user meets it: apply -k; the pod is Ready (the kubelet probes the
//! real /readyz); the Node is labelled through the pod's own projected token (the audit log shows
//! the node-name claim the admission policy checks); an arm64 pod, scheduled by that label, runs
//! and prints aarch64; a rollout restart keeps emulation working (an arm64 pod started during it
//! runs); deleting the DaemonSet leaves the entries; the agent logged no error; the host's
//! binfmt_misc is unchanged. Needs root, tests/k8s/build.sh's components (kubelet included),
//! containerd, runc, containernetworking-plugins, socat, umoci, jq, gcc (tests/deps.sh).

mod common;

#[path = "k8s_node/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{host, Busybox};
use harness::*;

const NS: &str = "binfmtd";
/// binfmtd's entry for arm64, in the node's binfmt_misc instance.
const ENTRY: &str = "/proc/sys/fs/binfmt_misc/binfmtd-aarch64";

#[test]
fn daemonset_on_a_sandboxed_node() {
    let before = host::snapshot();
    let Some(c) = harness::start() else { return };
    let work = tempfile::tempdir().unwrap();
    import(&c, &agent_image(work.path()), AGENT_IMAGE);
    let bb = Busybox::by_debian("arm64").host_path();
    import(&c, &arm64_image(work.path(), &bb), ARM64_IMAGE);

    // apply -k; the pod Ready; the label, written with the pod's own token.
    let applied = Instant::now();
    c.kubectl(&["apply", "-k", "tests/k8s/node-overlay"], None)
        .success();
    let label = wait_for(
        Duration::from_secs(180),
        "binfmtd.io/arm64 on the node",
        || {
            c.labels(NODE)
                .get("binfmtd.io/arm64")
                .and_then(|v| v.as_str().map(str::to_string))
        },
    );
    println!(
        "kubectl apply -k -> node label binfmtd.io/arm64={label}: {:.1} s",
        applied.elapsed().as_secs_f64()
    );
    assert_eq!(label, "emulated");
    rollout_done(&c);
    let pod = agent_pod(&c);
    assert_labelled_by_pod_token(&c);
    // In the node's own binfmt_misc instance, with F (the interpreter opened at registration,
    // so pods whose filesystems lack it still run).
    let entry = node_sh(&c, &format!("cat {ENTRY}"));
    let flags = entry
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or("");
    assert!(
        entry.starts_with("enabled\n") && flags.contains('F'),
        "the node's {ENTRY}: {entry}"
    );

    // An arm64 pod, scheduled onto the node by the label, runs emulated.
    arm64_pod(&c, "arm64-first");
    let (phase, out) = finished(&c, "default", "arm64-first", Duration::from_secs(120));
    assert_eq!((phase.as_str(), out.trim()), ("Succeeded", "aarch64"));

    // A rollout restart: once the old agent has stopped (SIGTERM leaves the entries), an arm64
    // pod is started, before the rollout is complete (the new agent is usually still starting:
    // the agent pods' readiness at that moment is printed); it runs.
    c.kubectl(&["-n", NS, "rollout", "restart", "daemonset/binfmtd"], None)
        .success();
    // The old pod's log is read until it stops: its files go soon after.
    let mut old_log = String::new();
    wait_for(Duration::from_secs(60), "the old agent pod to stop", || {
        let log = container_logs(&c, NS, &pod);
        if log.len() > old_log.len() {
            old_log = log;
        }
        let out = c.kubectl(&["-n", NS, "get", "pod", &pod, "-o", "json"], None);
        if !out.ok {
            return Some(()); // already gone
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let stopped = v["status"]["containerStatuses"][0]["state"]["terminated"].is_object();
        (v["metadata"]["deletionTimestamp"].is_string() && stopped).then_some(())
    });
    let mut agent_logs = vec![(pod.clone(), old_log)];
    arm64_pod(&c, "arm64-rollout");
    let ready = c.kubectl(
        &["-n", NS, "get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}"],
        None,
    );
    println!(
        "agent pods when arm64-rollout was created: {}",
        ready.stdout
    );
    rollout_done(&c);
    let (phase, out) = finished(&c, "default", "arm64-rollout", Duration::from_secs(120));
    assert_eq!((phase.as_str(), out.trim()), ("Succeeded", "aarch64"));
    let new_pod = agent_pod(&c);
    assert_ne!(new_pod, pod, "the rollout did not replace the agent's pod");
    agent_logs.push((new_pod.clone(), container_logs(&c, NS, &new_pod)));

    // Deleting the DaemonSet leaves the entries (documented: SIGTERM unregisters nothing).
    c.kubectl(
        &[
            "-n",
            NS,
            "delete",
            "daemonset",
            "binfmtd",
            "--wait=true",
            "--timeout=120s",
        ],
        None,
    )
    .success();
    wait_for(Duration::from_secs(120), "the agent's pods to go", || {
        let out = c.kubectl(&["-n", NS, "get", "pods", "-o", "name"], None);
        out.stdout.trim().is_empty().then_some(())
    });
    assert_eq!(
        node_sh(&c, &format!("cat {ENTRY}")),
        entry,
        "the entry changed when the DaemonSet was deleted"
    );
    arm64_pod(&c, "arm64-after");
    let (phase, out) = finished(&c, "default", "arm64-after", Duration::from_secs(120));
    assert_eq!((phase.as_str(), out.trim()), ("Succeeded", "aarch64"));

    for (pod, log) in &agent_logs {
        assert!(!log.trim().is_empty(), "agent pod {pod} logged nothing");
        let errors: Vec<_> = log
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                let level = v["level"].as_str().unwrap_or("").to_ascii_lowercase();
                level == "error" || (v.is_null() && l.to_ascii_lowercase().contains("error"))
            })
            .collect();
        assert!(
            errors.is_empty(),
            "agent pod {pod} logged errors: {errors:#?}\n{log}"
        );
    }
    assert_eq!(before, host::snapshot(), "the host's binfmt_misc changed");
}

/// Wait until the DaemonSet's rollout is complete (every pod updated and Ready).
fn rollout_done(c: &Cluster) {
    let out = c.kubectl(
        &[
            "-n",
            NS,
            "rollout",
            "status",
            "daemonset/binfmtd",
            "--timeout=180s",
        ],
        None,
    );
    assert!(
        out.ok,
        "rollout of daemonset/binfmtd: {}{}\n--- pods ---\n{}\n--- kubelet.log ---\n{}",
        out.stdout,
        out.stderr,
        c.kubectl(&["-n", NS, "describe", "pods"], None).stdout,
        log_tail(c, "kubelet", 40)
    );
}

/// The name of the agent's one pod that is not being deleted.
fn agent_pod(c: &Cluster) -> String {
    let out = c
        .kubectl(&["-n", NS, "get", "pods", "-o", "json"], None)
        .success();
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 1, "agent pods: {names:?}");
    names[0].clone()
}

/// The agent's PATCHes of the node were made with the pod's projected token: the DaemonSet's
/// service account, carrying the node-name claim the admission policy checks. (The kubelet and
/// the controller-manager patch the node too, under their own names.)
fn assert_labelled_by_pod_token(c: &Cluster) {
    const AGENT: &str = "system:serviceaccount:binfmtd:binfmtd";
    let patches: Vec<_> = c
        .audit()
        .into_iter()
        .filter(|e| {
            e["verb"] == "patch"
                && e["objectRef"]["resource"] == "nodes"
                && e["objectRef"]["name"] == NODE
                && e["stage"] == "ResponseComplete"
                && e["user"]["username"] == AGENT
        })
        .collect();
    assert!(
        !patches.is_empty(),
        "no PATCH of node {NODE} by {AGENT} in the audit log"
    );
    for e in &patches {
        assert_eq!(
            e["user"]["extra"]["authentication.kubernetes.io/node-name"],
            serde_json::json!([NODE]),
            "{e}"
        );
        assert_eq!(e["responseStatus"]["code"], 200, "{e}");
    }
}
