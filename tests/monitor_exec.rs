//! `binfmtd monitor` against the real kernel. The monitor runs outside the sandbox, as real
//! root (tracefs is the host's), while the programs run inside it: a private binfmt_misc
//! instance with qemu-aarch64 registered, whose processes real root moves into a cgroup
//! shaped like a kubelet's, so the events must name that pod and container.
//!
//! Other tests run on the machine at the same time: events are picked by this run's unique
//! container ID (which is itself the attribution under test), never by "the next event".

mod common;
#[path = "monitor_exec/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;

use common::Sandbox;
use harness::{get, hierarchies, ids, run_in_pod, sample, sigkill_leaving, Driver, Monitor};

/// `listen`: also serve /metrics, and check its counters.
fn exercise(driver: Driver, hierarchy: &Path, listen: bool) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let args: &[&str] = if listen {
        &["--listen", "127.0.0.1:0"]
    } else {
        &[]
    };
    let Some(monitor) = Monitor::start(args) else {
        return;
    };
    let (uid, id) = ids(driver.name());
    run_in_pod(sandbox, driver, hierarchy, &uid, &id);
    if listen {
        check_metrics(&monitor, &uid, &id);
    }
    check_events(monitor, &uid, &id);
}

/// `--listen`: node-wide counters (at least this run's execs; other tests exec too), no
/// per-pod label sets, ready once watching.
fn check_metrics(monitor: &Monitor, uid: &str, id: &str) {
    let stderr = monitor.stderr();
    let addr = stderr
        .lines()
        .find_map(|l| l.strip_prefix("binfmtd monitor: serving /metrics on "))
        .unwrap_or_else(|| panic!("no address: {stderr}"));
    // The counters move once the events are out.
    monitor.wait_for("exec-format-error", |e| {
        e["kind"] == "exec-format-error" && e["container_id"] == id
    });
    let (code, metrics) = get(addr, "/metrics");
    assert_eq!(code, 200, "{metrics}");
    let emulated = sample(&metrics, "binfmtd_emulated_execs_total{arch=\"aarch64\"}");
    assert!(emulated.is_some_and(|n| n >= 1.0), "{metrics}");
    let enoexec = sample(&metrics, "binfmtd_exec_format_errors_total");
    assert!(enoexec.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(!metrics.contains(uid) && !metrics.contains(id), "{metrics}");
    assert_eq!(get(addr, "/readyz").0, 200);
    assert_eq!(get(addr, "/healthz").0, 200);
}

/// The emulated and the exec-format-error event of this run, attributed to its pod and
/// container; then the monitor stops and takes its instance along.
fn check_events(mut monitor: Monitor, uid: &str, id: &str) {
    let ours = |kind: &'static str| {
        let id = id.to_string();
        move |e: &serde_json::Value| e["kind"] == kind && e["container_id"] == id.as_str()
    };
    let emulated = monitor.wait_for("emulated", ours("emulated"));
    assert_eq!(emulated["arch"], "aarch64", "{emulated}");
    assert_eq!(emulated["path"], "/tmp/arm64/busybox", "{emulated}");
    assert_eq!(emulated["pod_uid"], uid, "{emulated}");
    let enoexec = monitor.wait_for("exec-format-error", ours("exec-format-error"));
    assert_eq!(enoexec["path"], "/tmp/s390x/busybox", "{enoexec}");
    assert_eq!(enoexec["pod_uid"], uid, "{enoexec}");
    // The native i386 control and python3 itself are not emulated.
    let events = monitor.events.lock().unwrap().clone();
    let emulated_paths: Vec<_> = events
        .iter()
        .filter(|e| ours("emulated")(e))
        .map(|e| e["path"].clone())
        .collect();
    assert_eq!(emulated_paths, ["/tmp/arm64/busybox"], "{events:#?}");

    let instance = monitor.instance();
    assert!(
        instance.is_dir(),
        "the monitor's instance {}",
        instance.display()
    );
    assert_eq!(monitor.stop(), Some(0));
    assert!(!instance.exists(), "{} left behind", instance.display());
}

#[test]
fn emulated_and_exec_format_error_events_cgroupfs_driver() {
    let (v1, v2) = hierarchies();
    let hierarchy = v1.or(v2).expect("a cgroup hierarchy is mounted");
    exercise(Driver::Cgroupfs, &hierarchy, true);
}

#[test]
fn emulated_and_exec_format_error_events_systemd_driver() {
    let (v1, v2) = hierarchies();
    let hierarchy = v2.or(v1).expect("a cgroup hierarchy is mounted");
    exercise(Driver::Systemd, &hierarchy, false);
}

#[test]
fn sigkilled_monitor_instance_is_removed_by_the_next_start() {
    let Some(mut first) = Monitor::start(&[]) else {
        return;
    };
    let left = first.instance();
    sigkill_leaving(&mut first.child, &left);
    let mut second = Monitor::start(&[]).expect("tracefs worked a moment ago");
    assert!(!left.exists(), "{} survived the next start", left.display());
    let own = second.instance();
    assert_eq!(second.stop(), Some(0));
    assert!(!own.exists(), "{} left behind", own.display());
}

#[test]
fn no_tracefs_is_exit_3_naming_the_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["monitor", "--tracefs", "/proc/sys"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("tracefs is not available at /proc/sys") && stderr.contains("Hint:"),
        "{stderr}"
    );
}

/// The switch that spares every syscall the slow path: the instance's syscall tracepoints
/// stay off while the exec ones are on.
#[test]
fn no_exec_format_errors_leaves_the_syscall_tracepoints_off() {
    let Some(mut monitor) = Monitor::start(&["--no-exec-format-errors"]) else {
        return;
    };
    assert!(
        monitor.stderr().contains("exec-format errors: off"),
        "{}",
        monitor.stderr()
    );
    let enabled = |event: &str| {
        let p = monitor.instance().join("events").join(event).join("enable");
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(enabled("sched/sched_process_exec").trim(), "1");
    for syscall in ["sys_enter_execve", "sys_exit_execve", "sys_exit_execveat"] {
        assert_eq!(
            enabled(&format!("syscalls/{syscall}")).trim(),
            "0",
            "{syscall}"
        );
    }
    assert_eq!(monitor.stop(), Some(0));
}
