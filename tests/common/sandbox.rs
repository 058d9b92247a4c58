//! A private sandbox for real-kernel tests: user + mount + pid namespaces whose root is
//! the UNPRIVILEGED host uid 100000, with its own binfmt_misc instance.
//!
//! Why this shape (see the notes on the test harness):
//! - libtest runs tests on threads and unshare(CLONE_NEWUSER) fails in a multithreaded
//!   process, so the namespaces belong to a child: `setpriv ... unshare ... sh`.
//! - The child waits on its stdin until real root has written its uid/gid maps; only then
//!   does the script run, as uid 0 inside.
//! - Root maps to host uid 100000, never 0: with host root as sandbox root, a register write
//!   made before the private mount would land in the host's binfmt_misc instance.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::host;

/// Host uid (and gid) that sandbox root maps to, and how many ids are mapped.
pub const HOST_ID: u32 = 100_000;
/// Ids 0..65533: the overflow uid 65534 stays unmapped here, so it stands only for owners
/// outside the sandbox (binfmtd trusts those, see src/trust.rs) and no sandbox user has it.
const ID_COUNT: u32 = 65_534;
/// Where the qemu copies live inside the sandbox (a tmpfs owned by the sandbox root).
pub const QEMU_DIR: &str = "/run/qemu";
const PRELUDE: &str = include_str!("prelude.sh");
/// The child blocks here until the maps are written; anything but "go" aborts it.
const GATE: &str =
    r#"read -r go && [ "$go" = go ] || exit 125; exec sh -c "$SANDBOX_SCRIPT" sandbox </dev/null"#;

/// One sandbox run, described before it starts. Each `run_script` builds a fresh sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    qemu: Vec<String>,
    setup: bool,
    env: Vec<(String, String)>,
    timeout: Duration,
}

/// What a sandbox script did. `stdout`/`stderr` are lossily decoded.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub script: String,
}

impl Run {
    /// Panic with everything the script printed unless it exited 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert!(self.status.success(), "sandbox script failed: {self}");
        self
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- script ---\n{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.script, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    /// A sandbox that mounts fresh proc, tmpfs on /run /tmp /dev/shm and a private
    /// binfmt_misc before the script. Returns None (after printing why) where the kernel
    /// cannot provide private binfmt_misc instances; under CI=true that panics instead.
    pub fn new() -> Option<Sandbox> {
        super::support::require()?;
        Some(Sandbox::unchecked())
    }

    pub(super) fn unchecked() -> Sandbox {
        Sandbox {
            qemu: Vec::new(),
            setup: true,
            env: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    /// Copy /usr/bin/qemu-<target>-static for each target into $QEMU_DIR.
    pub fn with_qemu(mut self, targets: &[&str]) -> Sandbox {
        self.qemu.extend(targets.iter().map(|t| t.to_string()));
        self
    }

    /// Skip the automatic setup: the script runs in the new namespaces with the host's
    /// mounts still visible, and calls `sandbox_setup` (prelude.sh) itself when it wants.
    pub fn bare(mut self) -> Sandbox {
        self.setup = false;
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Sandbox {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Run `script` (sh, `set -eu` in effect) as sandbox root, and check that the host's
    /// binfmt_misc entries are exactly what they were before.
    pub fn run_script(&self, script: &str) -> Run {
        self.try_run(script).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `run_script`, but a sandbox that could not be set up is an Err, not a panic.
    pub fn try_run(&self, script: &str) -> Result<Run, String> {
        let before = host::snapshot();
        let run = self.spawn_and_wait(script);
        let after = host::snapshot();
        assert_eq!(
            before, after,
            "the host's binfmt_misc changed during a sandbox run: {run:?}"
        );
        run
    }

    fn full_script(&self, script: &str) -> String {
        let setup = if self.setup { "sandbox_setup\n" } else { "" };
        format!("{PRELUDE}\n{setup}# --- test script ---\n{script}\n")
    }

    fn command(&self, full: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={HOST_ID}"),
            &format!("--regid={HOST_ID}"),
            "--clear-groups",
            "unshare",
            "--user",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            GATE,
        ]);
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LC_ALL", "C")
            .env("BINFMTD", env!("CARGO_BIN_EXE_binfmtd"))
            .env("FIXTURES", super::fixtures::dir())
            .env("SANDBOX_KEEP", keep())
            .env("QEMU_DIR", QEMU_DIR)
            .env("QEMU_TARGETS", self.qemu.join(" "))
            .env("SANDBOX_SCRIPT", full)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn_and_wait(&self, script: &str) -> Result<Run, String> {
        let full = self.full_script(script);
        let mut child = self
            .command(&full)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the sandbox (setpriv/unshare from util-linux): {e}. Install util-linux and run the tests as root"));
        let out = drain(child.stdout.take().unwrap());
        let err = drain(child.stderr.take().unwrap());
        let released = map_and_release(&mut child);
        // Closing stdin without "go" makes a child we could not map exit by itself.
        drop(child.stdin.take());
        let status = wait_with_timeout(&mut child, self.timeout);
        let run = Run {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            script: script.to_string(),
        };
        match released {
            Ok(()) => Ok(run),
            Err(e) => Err(format!(
                "could not set up the sandbox (pid {}): {e}\n{run}",
                child.id()
            )),
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Wait until the child has its own user namespace, write the maps as real root, then let
/// it go. On failure the child's stdin is closed without "go", so it exits on its own.
fn map_and_release(child: &mut Child) -> Result<(), String> {
    let proc = PathBuf::from(format!("/proc/{}", child.id()));
    wait_for_new_userns(child, &proc)?;
    let map = format!("0 {HOST_ID} {ID_COUNT}\n");
    for file in ["uid_map", "gid_map"] {
        std::fs::write(proc.join(file), &map)
            .map_err(|e| format!("write {:?} to {}/{file}: {e}", map, proc.display()))?;
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"go\n")
        .map_err(|e| format!("release the sandbox: {e}"))
}

fn wait_for_new_userns(child: &mut Child, proc: &Path) -> Result<(), String> {
    let ours = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(theirs) = std::fs::read_link(proc.join("ns/user")) {
            if theirs != ours {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "unshare exited ({status}) before creating its user namespace"
            ));
        }
        if Instant::now() > deadline {
            return Err("unshare did not create a user namespace within 20 s".into());
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            // unshare --kill-child takes the sandbox's processes down with it.
            Ok(None) => {
                let _ = child.kill();
                panic!(
                    "sandbox (pid {}) still running after {timeout:?}; killed it",
                    child.id()
                );
            }
            Err(e) => panic!("waiting for sandbox pid {}: {e}", child.id()),
        }
    }
}

/// Paths under /tmp the sandbox's fresh /tmp must not hide (prelude.sh binds them back): the
/// checkout, the built binary's directory and the fixtures, so a clone in /tmp works too.
fn keep() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_binfmtd"));
    [
        Path::new(env!("CARGO_MANIFEST_DIR")),
        bin.parent().unwrap_or(bin),
        super::fixtures::dir().as_path(),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":")
}
