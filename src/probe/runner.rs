//! Executing a probe: the one effectful part, behind the `Runner` trait.
//!
//! `ExecRunner` writes the program into a fresh 0700 directory under a parent the caller
//! chooses, execs it directly (so the kernel picks the loader: native ELF or a binfmt_misc
//! entry), kills it when the timeout passes, and removes the directory on every path.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::ProbeError;

/// What a finished program left behind.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs a program image with a given argv[0] and arguments, within a timeout.
pub trait Runner {
    fn run(
        &self,
        program: &[u8],
        argv0: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<RunOutput, ProbeError>;
}

/// The real runner. `scratch_parent` must be on a filesystem that allows exec (not
/// `noexec`) and writable by us; each run gets its own directory inside it.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    scratch_parent: PathBuf,
}

/// A probe prints one short line; more than this is wrong output, not worth reading.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long to keep retrying ETXTBSY (see `spawn`).
const TEXT_BUSY_PATIENCE: Duration = Duration::from_secs(1);

impl ExecRunner {
    pub fn new(scratch_parent: PathBuf) -> ExecRunner {
        ExecRunner { scratch_parent }
    }

    pub fn scratch_parent(&self) -> &Path {
        &self.scratch_parent
    }

    /// Remove probe directories left by binfmtd processes that died mid-probe (SIGKILL
    /// skips every cleanup). A directory is named after the pid that made it; one whose
    /// process still runs (a concurrent `status`) is left alone. Returns how many went.
    pub fn sweep_stale(&self) -> usize {
        let Ok(dir) = fs::read_dir(&self.scratch_parent) else {
            return 0;
        };
        let mut removed = 0;
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = stale_owner(&name.to_string_lossy()) else {
                continue;
            };
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive && fs::remove_dir_all(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// The pid in a scratch directory name `binfmtd-probe.<pid>.<seq>`.
fn stale_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("binfmtd-probe.")?;
    let (pid, seq) = rest.split_once('.')?;
    seq.parse::<u64>().ok()?;
    pid.parse().ok().filter(|p| *p > 0)
}

impl Runner for ExecRunner {
    fn run(
        &self,
        program: &[u8],
        argv0: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<RunOutput, ProbeError> {
        let dir = Scratch::create(&self.scratch_parent)?;
        let result = run_in(dir.path(), program, argv0, args, timeout);
        // Remove explicitly so a failure to clean up is reported; Drop covers panics.
        let removed = dir.remove();
        let output = result?;
        removed?;
        Ok(output)
    }
}

fn run_in(
    dir: &Path,
    program: &[u8],
    argv0: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<RunOutput, ProbeError> {
    let exe = dir.join("probe");
    write_executable(&exe, program)?;
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut cmd = Command::new(&exe);
    cmd.arg0(argv0)
        .args(args)
        .current_dir(dir)
        // A clean environment: qemu reads QEMU_* variables (QEMU_STRACE, QEMU_LD_PREFIX...).
        .env_clear()
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?)
        // Its own process group, so a timeout kills anything it started too.
        .process_group(0);
    let mut child = spawn(&mut cmd, &exe)?;
    let status = crate::exec::wait_with_timeout(&mut child, timeout, true).map_err(|source| {
        ProbeError::Wait {
            program: exe.clone(),
            source,
        }
    })?;
    let status = status.ok_or(ProbeError::TimedOut { after: timeout })?;
    Ok(RunOutput {
        status,
        stdout: read_capped(&stdout_path)?,
        stderr: read_capped(&stderr_path)?,
    })
}

/// Write the image as a 0700 file and close it before anyone execs it.
fn write_executable(path: &Path, program: &[u8]) -> Result<(), ProbeError> {
    let scratch = |source| ProbeError::Scratch {
        op: "write probe program",
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(path)
        .map_err(scratch)?;
    f.write_all(program).map_err(scratch)?;
    // The mode given to open() is filtered by the umask; exec needs the x bit for sure.
    f.set_permissions(fs::Permissions::from_mode(0o700))
        .map_err(scratch)
}

fn create(path: &Path) -> Result<File, ProbeError> {
    File::create(path).map_err(|source| ProbeError::Scratch {
        op: "create output file",
        path: path.to_path_buf(),
        source,
    })
}

/// exec fails with ETXTBSY while any process still holds the file open for writing. Our
/// own fd is closed, but another thread of this process may fork in the window between
/// our open and close; its child keeps a copy until it execs. That passes in moments.
fn spawn(cmd: &mut Command, exe: &Path) -> Result<Child, ProbeError> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(2);
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                if start.elapsed() > TEXT_BUSY_PATIENCE {
                    return Err(ProbeError::exec(exe, e));
                }
                sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(ProbeError::exec(exe, e)),
        }
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, ProbeError> {
    let scratch = |source| ProbeError::Scratch {
        op: "read output of",
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    File::open(path)
        .map_err(scratch)?
        .take(OUTPUT_LIMIT)
        .read_to_end(&mut buf)
        .map_err(scratch)?;
    Ok(buf)
}

/// A private directory that is removed when dropped (or earlier, with `remove`).
struct Scratch {
    path: Option<PathBuf>,
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    fn create(parent: &Path) -> Result<Scratch, ProbeError> {
        loop {
            let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("binfmtd-probe.{}.{seq}", std::process::id()));
            // create (not create_all): fails if the name exists, so the directory is ours.
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = Scratch { path: Some(path) };
                    let path = dir.path();
                    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(
                        |source| ProbeError::Scratch {
                            op: "restrict",
                            path: path.to_path_buf(),
                            source,
                        },
                    )?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(ProbeError::Scratch {
                        op: "create scratch directory",
                        path,
                        source,
                    })
                }
            }
        }
    }

    fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("scratch directory not yet removed")
    }

    fn remove(mut self) -> Result<(), ProbeError> {
        let path = self.path.take().expect("scratch directory removed once");
        fs::remove_dir_all(&path).map_err(|source| ProbeError::Scratch {
            op: "remove scratch directory",
            path,
            source,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{arch, probe};

    /// A real executable for this host, and a write handle that makes exec fail with
    /// ETXTBSY for as long as it stays open.
    fn busy_executable(dir: &Path) -> (PathBuf, File) {
        let exe = dir.join("probe");
        write_executable(&exe, &probe::native_program(arch::host()).unwrap()).unwrap();
        let writer = OpenOptions::new().write(true).open(&exe).unwrap();
        (exe, writer)
    }

    #[test]
    fn spawn_retries_while_the_file_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let (exe, writer) = busy_executable(dir.path());
        let release = std::thread::spawn(move || {
            sleep(Duration::from_millis(150));
            drop(writer);
        });
        let start = Instant::now();
        let mut cmd = Command::new(&exe);
        cmd.stdout(Stdio::null());
        let mut child = spawn(&mut cmd, &exe).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(child.wait().unwrap().success());
        release.join().unwrap();
    }

    #[test]
    fn spawn_gives_up_on_a_file_that_stays_busy() {
        let dir = tempfile::tempdir().unwrap();
        let (exe, _writer) = busy_executable(dir.path());
        let err = spawn(&mut Command::new(&exe), &exe).unwrap_err();
        match err {
            ProbeError::Exec { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ETXTBSY))
            }
            other => panic!("{other}"),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn sweep_removes_only_dead_owners_directories() {
        let parent = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22, so this pid cannot be running.
        let dead = parent.path().join("binfmtd-probe.99999999.0");
        let live = parent
            .path()
            .join(format!("binfmtd-probe.{}.7", std::process::id()));
        let other = parent.path().join("unrelated");
        for d in [&dead, &live, &other] {
            fs::create_dir(d).unwrap();
        }
        fs::write(dead.join("probe"), b"x").unwrap();
        assert_eq!(ExecRunner::new(parent.path().into()).sweep_stale(), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
        assert_eq!(super::stale_owner("binfmtd-probe.12.3"), Some(12));
        assert_eq!(super::stale_owner("binfmtd-probe.x.3"), None);
    }

    #[test]
    fn scratch_is_private_unique_and_removed_on_drop_and_remove() {
        let parent = tempfile::tempdir().unwrap();
        let a = Scratch::create(parent.path()).unwrap();
        let b = Scratch::create(parent.path()).unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(mode(a.path()), 0o700);
        let exe = a.path().join("probe");
        write_executable(&exe, b"\x7fELF").unwrap();
        assert_eq!(mode(&exe), 0o700);
        assert_eq!(fs::read(&exe).unwrap(), b"\x7fELF");
        // An existing file is never overwritten: the directory is ours alone.
        assert!(write_executable(&exe, b"x").is_err());
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        a.remove().unwrap();
        drop(b);
        assert!(!pa.exists() && !pb.exists());
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}
