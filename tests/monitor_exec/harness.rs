//! The pieces of tests/monitor_exec.rs that are not the tests: the monitor as a child
//! process, kubelet-shaped cgroups, the sandbox's processes found and moved.

// Shared by several test binaries, each using a part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::support::{verdict, Verdict};
use crate::common::{register_cmd, Busybox, Sandbox, NATIVE_I386};

const TRACEFS: &str = "/sys/kernel/tracing";

/// A `binfmtd monitor --json-events` child and the events it printed so far.
pub struct Monitor {
    pub child: Child,
    pub events: Arc<Mutex<Vec<serde_json::Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Monitor {
    /// Start one and wait until it is watching. None (after printing why) where this
    /// machine's kernel has no tracefs; under CI=true that fails instead.
    pub fn start(extra: &[&str]) -> Option<Monitor> {
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
                return match (
                    status.code(),
                    verdict(&Err(reason.clone()), std::env::var("CI").ok().as_deref()),
                ) {
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

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn instance(&self) -> PathBuf {
        Path::new(TRACEFS)
            .join("instances")
            .join(format!("binfmtd-monitor-{}", self.child.id()))
    }

    /// Wait up to 10 s for an event matching `pred`.
    pub fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
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
    pub fn stop(&mut self) -> Option<i32> {
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

/// How a kubelet names the cgroups, for each cgroup driver.
#[derive(Clone, Copy)]
pub enum Driver {
    /// /kubepods/besteffort/pod<uid>/<id>
    Cgroupfs,
    /// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
    Systemd,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    pub fn path(self, uid: &str, id: &str) -> Vec<String> {
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
pub struct PodCgroup {
    hierarchy: PathBuf,
    dirs: Vec<PathBuf>,
}

impl PodCgroup {
    pub fn create(hierarchy: &Path, parts: &[String]) -> PodCgroup {
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

    pub fn leaf(&self) -> &Path {
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
pub fn hierarchies() -> (Option<PathBuf>, Option<PathBuf>) {
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
pub fn move_processes(token: &str, cgroup: &Path) -> usize {
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
pub fn ids(label: &str) -> (String, String) {
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

pub fn sync_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let id = common::sandbox::HOST_ID;
    nix::unistd::chown(&dir, Some(id.into()), Some(id.into())).unwrap();
    dir
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

/// Run the programs of `sandbox_script` in a kubelet-shaped cgroup of pod `uid`, container
/// `id` (as `driver` names them): /tmp/arm64/busybox emulated, /tmp/s390x/busybox failing
/// with ENOEXEC, /tmp/i386/busybox native.
pub fn run_in_pod(sandbox: Sandbox, driver: Driver, hierarchy: &Path, uid: &str, id: &str) {
    let cgroup = PodCgroup::create(hierarchy, &driver.path(uid, id));
    let sync = sync_dir(&format!("monitor-{}", &id[..12]));
    let fixture = |debian: &str| Busybox::by_debian(debian).host_path().display().to_string();
    let sandbox = sandbox
        .with_qemu(&["aarch64"])
        .env("MONITOR_TOKEN", id.to_string())
        .env("SYNC", sync.display().to_string())
        .env("ARM64", fixture("arm64"))
        .env("S390X", fixture("s390x"))
        .env("I386", NATIVE_I386.host_path().display().to_string());
    let run = thread::spawn(move || sandbox.run_script(&sandbox_script()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while move_processes(id, cgroup.leaf()) < 2 {
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
    let _ = std::fs::remove_dir_all(sync);
}

/// SIGKILL `child` (a monitor or an agent), whose tracefs instance is `instance`: nothing can
/// clean up after SIGKILL, so the instance must still be there for the next start to remove.
pub fn sigkill_leaving(child: &mut Child, instance: &Path) {
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        instance.is_dir(),
        "SIGKILL cannot clean up: {} should remain",
        instance.display()
    );
}

/// Mount tracefs at its usual place when nothing is there, as `binfmtd monitor` does (and
/// leaves it mounted), so tests can look at the instances of agents that mount it in a
/// mount namespace of their own.
pub fn ensure_tracefs() {
    if Path::new(TRACEFS).join("instances").is_dir() {
        return;
    }
    let _ = nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    );
}

/// GET `path` from `addr`: (status code, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: binfmtd\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The value of a sample line `series value` in Prometheus text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
