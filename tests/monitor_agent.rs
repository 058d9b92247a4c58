//! `binfmtd run --exec-monitor` against the real kernel: the agent (real root, outside the
//! sandbox, keeping no foreign arch so it registers nothing) watches while the sandbox runs
//! an emulated program and a wrong-arch one in a kubelet-shaped cgroup. Its /metrics counts
//! them, its status file lists them per container with the failing file's arch and hint,
//! `binfmtd status` shows them; without tracefs it says so once and keeps working; its
//! tracefs instance goes with it, and after a SIGKILL with the next start.
//!
//! Counters are node-wide and other tests exec at the same time: they are checked as "at
//! least", the per-container tables by this run's unique container ID.

#[path = "monitor_exec/agent.rs"]
mod agent;
mod common;
#[path = "monitor_exec/harness.rs"]
mod harness;

use std::process::Command;

use agent::Agent;
use common::Sandbox;
use harness::{ensure_tracefs, hierarchies, ids, run_in_pod, sample, sigkill_leaving, Driver};

#[test]
fn agent_counts_lists_and_shows_emulated_execs_and_exec_format_errors() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    ensure_tracefs();
    let Some(mut agent) = Agent::start(&[], false) else {
        return;
    };
    let instance = agent.instance();
    assert!(instance.is_dir(), "{} missing", instance.display());
    let (v1, v2) = hierarchies();
    let hierarchy = v2.or(v1).expect("a cgroup hierarchy is mounted");
    let (uid, id) = ids("agent");
    run_in_pod(sandbox, Driver::Systemd, &hierarchy, &uid, &id);

    // The status file: our container's emulated program, and our failure with its arch.
    let ours = |s: &serde_json::Value| {
        let m = &s["daemon"]["exec_monitor"];
        let c = m["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["container_id"] == id.as_str());
        let f = m["recent_failures"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["container_id"] == id.as_str());
        c && f
    };
    let status = agent.wait_status("this run's container and failure", ours);
    let m = &status["daemon"]["exec_monitor"];
    assert_eq!(m["state"], "watching", "{m:#}");
    assert_eq!(m["exec_format_errors"], "on", "{m:#}");
    assert_eq!(m["bounds"]["programs_per_container"], 16, "{m:#}");
    let c = m["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["container_id"] == id.as_str())
        .unwrap();
    assert_eq!(c["pod_uid"], uid.as_str(), "{c:#}");
    let programs: Vec<(&str, &str, u64)> = c["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap(),
                p["arch"].as_str().unwrap_or("?"),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // Only the emulated program: not the native i386 one, not python3.
    assert_eq!(programs, [("/tmp/arm64/busybox", "aarch64", 1)], "{c:#}");
    let f = m["recent_failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["container_id"] == id.as_str())
        .unwrap();
    assert_eq!(f["path"], "/tmp/s390x/busybox", "{f:#}");
    assert_eq!(f["arch"], "s390x", "{f:#}");
    let hint = f["hint"].as_str().unwrap();
    assert!(
        hint.contains("no emulator for arch s390x")
            && hint.contains("binfmtd install --arch s390x"),
        "{hint}"
    );

    // /metrics: node-wide counters, no per-pod labels; /readyz unaffected.
    let (code, metrics) = agent.get("/metrics");
    assert_eq!(code, 200);
    let emulated = sample(&metrics, "binfmtd_emulated_execs_total{arch=\"aarch64\"}");
    assert!(emulated.is_some_and(|n| n >= 1.0), "{metrics}");
    let enoexec = sample(&metrics, "binfmtd_exec_format_errors_total");
    assert!(enoexec.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(
        !metrics.contains(&uid) && !metrics.contains(&id),
        "per-pod labels: {metrics}"
    );
    assert_eq!(agent.get("/readyz").0, 200);

    // `binfmtd status` renders the agent's tables (binfmt_misc pointed at a directory that
    // is none: the host's entries are not this test's business, hence exit 3).
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .arg("--binfmt-misc")
        .arg(agent.dir.path())
        .args(["status", "--status-file"])
        .arg(agent.status_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("exec monitor: watching (exec format errors: on)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("pod {uid} container {}", &id[..12])),
        "{text}"
    );
    assert!(text.contains("aarch64    /tmp/arm64/busybox"), "{text}");
    assert!(text.contains("/tmp/s390x/busybox (a s390x file)"), "{text}");

    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    assert!(!instance.exists(), "{} left behind", instance.display());
}

#[test]
fn without_tracefs_the_agent_says_so_once_and_keeps_working() {
    // /proc/sys is no tracefs: the same path as a node without it.
    let Some(mut agent) = Agent::start(&["--tracefs", "/proc/sys"], true) else {
        return;
    };
    let status = agent.wait_status("the monitor unavailable", |s| {
        s["daemon"]["exec_monitor"]["state"]
            .as_str()
            .is_some_and(|st| st.starts_with("unavailable"))
    });
    let state = status["daemon"]["exec_monitor"]["state"].as_str().unwrap();
    assert!(
        state.contains("tracefs is not available at /proc/sys") && state.contains("Hint:"),
        "{state}"
    );
    assert_eq!(agent.get("/readyz").0, 200, "{}", agent.log());
    assert_eq!(agent.get("/healthz").0, 200);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited: {}",
        agent.log()
    );
    let log = agent.log();
    assert_eq!(
        log.matches("exec-monitor: unavailable (").count(),
        1,
        "{log}"
    );
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}

#[test]
fn sigkilled_agents_instance_is_removed_by_the_next_start() {
    ensure_tracefs();
    let Some(mut first) = Agent::start(&[], false) else {
        return;
    };
    let left = first.instance();
    sigkill_leaving(&mut first.child, &left);
    let mut second = Agent::start(&[], false).expect("tracefs worked a moment ago");
    assert!(!left.exists(), "{} survived the next start", left.display());
    let own = second.instance();
    assert_eq!(second.stop(), Some(0));
    assert!(!own.exists(), "{} left behind", own.display());
}
