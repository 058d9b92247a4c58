//! `binfmtd run --exec-monitor` as a child of real root, for tests/monitor_agent.rs and
//! tests/monitor_events.rs. It runs in a mount namespace of its own (so nothing it mounts
//! outlives it) and keeps no foreign arch (`--arch <host> --skip-native`): it registers
//! nothing, while its exec monitor watches the host's tracefs.

// Shared by several test binaries, each using a part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::support::{verdict, Verdict};

pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    pub addr: String,
}

impl Agent {
    /// Start one and wait until its exec monitor reports (watching, or unavailable when
    /// `allow_unavailable`). None (after printing why) where this kernel has no tracefs;
    /// under CI=true that fails instead.
    pub fn start(extra: &[&str], allow_unavailable: bool) -> Option<Agent> {
        let dir = tempfile::tempdir().unwrap();
        // An empty config: the command line says everything.
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(env!("CARGO_BIN_EXE_binfmtd"))
            .args([
                "run",
                "--exec-monitor",
                "--skip-native",
                "--log-format",
                "json",
            ])
            .args(["--arch", std::env::consts::ARCH])
            .args(["--listen", "127.0.0.1:0", "--interval", "100ms"])
            .arg("--status-file")
            .arg(dir.path().join("status.json"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start binfmtd run");
        let mut a = Agent {
            child,
            dir,
            log: Arc::new(Mutex::new(String::new())),
            addr: String::new(),
        };
        let err = a.child.stderr.take().unwrap();
        let log = a.log.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = a.log();
            if log.contains("exec-monitor: watching execs") {
                break;
            }
            if log.contains("exec-monitor: unavailable") && !allow_unavailable {
                let reason = format!("the agent's exec monitor is unavailable: {log}");
                match verdict(&Err(reason.clone()), std::env::var("CI").ok().as_deref()) {
                    Verdict::Skip(r) => {
                        eprintln!("SKIPPED: {r}");
                        return None;
                    }
                    _ => panic!("{reason}"),
                }
            }
            if log.contains("exec-monitor: unavailable") && a.addr_from_log().is_some() {
                break;
            }
            if let Some(status) = a.child.try_wait().unwrap() {
                panic!("binfmtd run exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "agent not watching: {log}");
            thread::sleep(Duration::from_millis(20));
        }
        while a.addr_from_log().is_none() {
            assert!(Instant::now() < deadline, "agent not serving: {}", a.log());
            thread::sleep(Duration::from_millis(20));
        }
        a.addr = a.addr_from_log().unwrap();
        Some(a)
    }

    fn addr_from_log(&self) -> Option<String> {
        self.log().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["fields"]["bound"].as_str()?.to_string())
        })
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    pub fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.status_path()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Wait up to 15 s until the status file satisfies `pred`.
    pub fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "status file never showed {what}: {:#}\nlog: {}",
                s["daemon"]["exec_monitor"],
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `path`: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        crate::harness::get(&self.addr, path)
    }

    pub fn instance(&self) -> PathBuf {
        Path::new("/sys/kernel/tracing/instances")
            .join(format!("binfmtd-monitor-{}", self.child.id()))
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

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}
