//! `binfmtd monitor` against the real kernel. The monitor runs outside the sandbox, as real
//! root (tracefs is the host's), while the programs run inside it: a private binfmt_misc
//! instance with qemu-aarch64 registered, whose processes real root moves into a cgroup
//! shaped like a kubelet's, so the events must name that pod and container.
//!
//! Other tests run on the machine at the same time: events are picked by this run's unique
//! container ID (which is itself the attribution under test), never by "the next event".

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::support::{verdict, Verdict};
use common::{register_cmd, Busybox, Sandbox, NATIVE_I386};

const TRACEFS: &str = "/sys/kernel/tracing";

/// A `binfmtd monitor --json-events` child and the events it printed so far.
struct Monitor {
    child: Child,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Monitor {
    /// Start one and wait until it is watching. None (after printing why) where this
    /// machine's kernel has no tracefs; under CI=true that fails instead.
    fn start(extra: &[&str]) -> Option<Monitor> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
            .args(["monitor", "--json-events"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start binfmtd monitor");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let ev = events.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                ev.lock().unwrap().push(v);
            }
        });
        let se = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                se.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut m = Monitor {
            child,
            events,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !m.stderr().contains("watching execs") {
            if let Some(status) = m.child.try_wait().unwrap() {
                let reason = format!("binfmtd monitor exited ({status}): {}", m.stderr());
                // Exit 3 is the environment: a kernel without tracefs or its events.
                return match (status.code(), verdict(&Err(reason.clone()), ci())) {
                    (Some(3), Verdict::Skip(r)) => {
                        eprintln!("SKIPPED: {r}");
                        None
                    }
                    _ => panic!("{reason}"),
                };
            }
            assert!(
                Instant::now() < deadline,
                "monitor not ready: {}",
                m.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
        Some(m)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn instance(&self) -> PathBuf {
        Path::new(TRACEFS)
            .join("instances")
            .join(format!("binfmtd-monitor-{}", self.child.id()))
    }

    /// Wait up to 10 s for an event matching `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} event; events: {:#?}\nstderr: {}",
                self.events.lock().unwrap(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status code.
    fn stop(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap().code()
    }
}

/// A failed assertion must not leave a monitor (and its instance) running.
impl Drop for Monitor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn ci() -> Option<&'static str> {
    std::env::var("CI").ok().map(|v| &*v.leak())
}

/// How a kubelet names the cgroups, for each cgroup driver.
#[derive(Clone, Copy)]
enum Driver {
    /// /kubepods/besteffort/pod<uid>/<id>
    Cgroupfs,
    /// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
    Systemd,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    fn path(self, uid: &str, id: &str) -> Vec<String> {
        match self {
            Driver::Cgroupfs => vec![
                "kubepods".into(),
                "besteffort".into(),
                format!("pod{uid}"),
                id.into(),
            ],
            Driver::Systemd => vec![
                "kubepods.slice".into(),
                "kubepods-burstable.slice".into(),
                format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
                format!("cri-containerd-{id}.scope"),
            ],
        }
    }
}

/// A kubelet-shaped cgroup this test created under one hierarchy; removed (innermost
/// first) on drop. Parents other runs share stay while they are busy.
struct PodCgroup {
    hierarchy: PathBuf,
    dirs: Vec<PathBuf>,
}

impl PodCgroup {
    fn create(hierarchy: &Path, parts: &[String]) -> PodCgroup {
        let mut dirs = Vec::new();
        let mut dir = hierarchy.to_path_buf();
        for p in parts {
            dir.push(p);
            if std::fs::create_dir(&dir).is_ok() || dir.is_dir() {
                dirs.push(dir.clone());
            }
        }
        assert!(dir.is_dir(), "could not create cgroup {}", dir.display());
        PodCgroup {
            hierarchy: hierarchy.to_path_buf(),
            dirs,
        }
    }

    fn leaf(&self) -> &Path {
        self.dirs.last().unwrap()
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // After a failed assertion the sandbox may still be in it: back to the root first.
        let procs = std::fs::read_to_string(self.leaf().join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(self.hierarchy.join("cgroup.procs"), pid);
        }
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The cgroup hierarchies mounted here: (a v1 one, preferring `pids`; the v2 one).
fn hierarchies() -> (Option<PathBuf>, Option<PathBuf>) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (mut v1, mut v2) = (None, None);
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (mount, fstype) = (PathBuf::from(fields[4]), fields[dash + 1]);
        let opts = fields.get(dash + 3).copied().unwrap_or("");
        match fstype {
            "cgroup2" => v2 = v2.or(Some(mount)),
            "cgroup" if opts.split(',').any(|o| o == "pids") => v1 = Some(mount),
            "cgroup" => v1 = v1.or(Some(mount)),
            _ => {}
        }
    }
    (v1, v2)
}

/// Move every process whose environment holds `token` (the sandbox's) into `cgroup`.
fn move_processes(token: &str, cgroup: &Path) -> usize {
    let needle = format!("MONITOR_TOKEN={token}");
    let mut moved = 0;
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|v| v == needle.as_bytes())
            && std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()).is_ok()
        {
            moved += 1;
        }
    }
    moved
}

/// A pod UID and a container ID of this run alone (`label` tells parallel tests apart).
fn ids(label: &str) -> (String, String) {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = format!("{label} {} {nanos}", std::process::id());
    let hex: String = sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    (uid, hex)
}

/// In the sandbox: wait to be moved, then one emulated program (arm64 through its own
/// F entry), one native control (i386), and one foreign program with no entry (s390x)
/// exec'd by a program that outlives the failure.
fn sandbox_script() -> String {
    let arm = Busybox::by_debian("arm64");
    format!(
        r#"
# busybox picks its applet by argv[0]: each copy keeps the name.
mkdir /tmp/arm64 /tmp/s390x /tmp/i386
cp "$ARM64" /tmp/arm64/busybox; cp "$S390X" /tmp/s390x/busybox; cp "$I386" /tmp/i386/busybox
{register}
until [ -e "$SYNC/moved" ]; do sleep 0.02; done
/tmp/i386/busybox true
/tmp/arm64/busybox sleep 1
/usr/bin/python3 -c 'import os, sys, time
# bytes, so the filename the kernel saw stays in memory after the failure.
path = os.fsencode(sys.argv[1])
try:
    os.execv(path, [path])
except OSError as e:
    print("errno", e.errno)
    time.sleep(1)' /tmp/s390x/busybox
"#,
        register = register_cmd(
            arm.arch(),
            &common::fixtures::qemu_in_sandbox("aarch64"),
            "F"
        ),
    )
}

fn sync_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let id = common::sandbox::HOST_ID;
    nix::unistd::chown(&dir, Some(id.into()), Some(id.into())).unwrap();
    dir
}

fn exercise(driver: Driver, hierarchy: &Path) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let Some(monitor) = Monitor::start(&[]) else {
        return;
    };
    let (uid, id) = ids(driver.name());
    let cgroup = PodCgroup::create(hierarchy, &driver.path(&uid, &id));
    let sync = sync_dir(&format!("monitor-{}", &id[..12]));
    let sandbox = sandbox
        .with_qemu(&["aarch64"])
        .env("MONITOR_TOKEN", id.clone())
        .env("SYNC", sync.display().to_string())
        .env(
            "ARM64",
            Busybox::by_debian("arm64")
                .host_path()
                .display()
                .to_string(),
        )
        .env(
            "S390X",
            Busybox::by_debian("s390x")
                .host_path()
                .display()
                .to_string(),
        )
        .env("I386", NATIVE_I386.host_path().display().to_string());
    let run = thread::spawn(move || sandbox.run_script(&sandbox_script()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while move_processes(&id, cgroup.leaf()) < 2 {
        assert!(
            Instant::now() < deadline,
            "the sandbox's processes never appeared"
        );
        thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(sync.join("moved"), "").unwrap();
    let run = run.join().unwrap().success();
    assert!(
        run.stdout.contains("errno 8"),
        "s390x must fail with ENOEXEC: {run}"
    );

    let ours = |kind: &'static str| {
        let id = id.clone();
        move |e: &serde_json::Value| e["kind"] == kind && e["container_id"] == id.as_str()
    };
    let emulated = monitor.wait_for("emulated", ours("emulated"));
    assert_eq!(emulated["arch"], "aarch64", "{emulated}");
    assert_eq!(emulated["path"], "/tmp/arm64/busybox", "{emulated}");
    assert_eq!(emulated["pod_uid"], uid.as_str(), "{emulated}");
    let enoexec = monitor.wait_for("exec-format-error", ours("exec-format-error"));
    assert_eq!(enoexec["path"], "/tmp/s390x/busybox", "{enoexec}");
    assert_eq!(enoexec["pod_uid"], uid.as_str(), "{enoexec}");
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
    let mut monitor = monitor;
    assert_eq!(monitor.stop(), Some(0));
    assert!(!instance.exists(), "{} left behind", instance.display());
    let _ = std::fs::remove_dir_all(sync);
}

#[test]
fn emulated_and_exec_format_error_events_cgroupfs_driver() {
    let (v1, v2) = hierarchies();
    let hierarchy = v1.or(v2).expect("a cgroup hierarchy is mounted");
    exercise(Driver::Cgroupfs, &hierarchy);
}

#[test]
fn emulated_and_exec_format_error_events_systemd_driver() {
    let (v1, v2) = hierarchies();
    let hierarchy = v2.or(v1).expect("a cgroup hierarchy is mounted");
    exercise(Driver::Systemd, &hierarchy);
}

#[test]
fn sigkilled_monitor_instance_is_removed_by_the_next_start() {
    let Some(first) = Monitor::start(&[]) else {
        return;
    };
    let left = first.instance();
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(
        left.is_dir(),
        "SIGKILL cannot clean up: {} should remain",
        left.display()
    );
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
