//! Executing a probe: the one effectful part, behind the `Runner` trait.
//!
//! `ExecRunner` writes the program into a fresh 0700 directory under a parent the caller
//! chooses, execs it directly (so the kernel picks the loader: native ELF or a binfmt_misc
//! entry), kills it when the timeout passes, and removes the directory on every path.
//!
//! Trust: the parent must be safe by the trust rule (`crate::trust`: no other user can
//! change it or a directory above it), and is held open; the probe directory is created
//! and used through handles, and the program is executed through its open file
//! (`/proc/self/fd/N`), so nothing swapped in by path is ever run. A live probe
//! directory is flocked by its prober for its whole life: `sweep_stale` removes only
//! directories whose lock it can take, whichever pid namespace made them. Output comes
//! through pipes read up to `OUTPUT_LIMIT`; a program that writes more is cut off.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::scratch::{remove_tree, Scratch, PREFIX};
use super::ProbeError;
use crate::trust::{self, at, TrustError, TrustedDir};

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
/// `noexec`), writable by us and safe by the trust rule; each run gets its own directory.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    scratch_parent: PathBuf,
    /// The parent, checked and opened once, on first use.
    parent: Arc<OnceLock<Result<TrustedDir, TrustError>>>,
}

/// A probe prints one short line; more than this is wrong output, not worth reading.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long to keep retrying ETXTBSY (see `spawn`).
const TEXT_BUSY_PATIENCE: Duration = Duration::from_secs(1);
/// How long output may keep flowing after the program exited (a child it left behind
/// holding the pipe) before its process group is killed.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
const PROGRAM: &str = "probe";

impl ExecRunner {
    pub fn new(scratch_parent: PathBuf) -> ExecRunner {
        ExecRunner {
            scratch_parent,
            parent: Arc::default(),
        }
    }

    pub fn scratch_parent(&self) -> &Path {
        &self.scratch_parent
    }

    fn parent(&self) -> Result<&TrustedDir, ProbeError> {
        let checked = self
            .parent
            .get_or_init(|| trust::open_dir(&self.scratch_parent));
        checked.as_ref().map_err(|e| match e {
            TrustError::Unsafe { .. } => ProbeError::Untrusted {
                path: self.scratch_parent.clone(),
                what: e.to_string(),
            },
            TrustError::Io { what, .. } => ProbeError::Scratch {
                op: "create scratch directory in",
                path: self.scratch_parent.clone(),
                source: io::Error::other(what.clone()),
            },
        })
    }

    /// Remove probe directories left by binfmtd processes that died mid-probe (SIGKILL
    /// skips every cleanup). A live prober holds its directory's flock, so a directory
    /// whose lock can be taken is abandoned, whatever pid namespace made it. Returns how
    /// many went.
    pub fn sweep_stale(&self) -> usize {
        let Ok(parent) = self.parent() else { return 0 };
        let Ok(names) = at::list(&parent.fd) else {
            return 0;
        };
        let mut removed = 0;
        for name in names {
            if !name.to_string_lossy().starts_with(PREFIX) {
                continue;
            }
            let Ok(fd) = at::open_dir_fd(parent.fd.as_fd(), &name) else {
                continue;
            };
            if at::try_lock(&fd).unwrap_or(false) && remove_tree(parent, &name, &fd).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

impl Runner for ExecRunner {
    fn run(
        &self,
        program: &[u8],
        argv0: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<RunOutput, ProbeError> {
        let dir = Scratch::create(self.parent()?)?;
        let result = run_in(&dir, program, argv0, args, timeout);
        // Remove explicitly so a failure to clean up is reported; Drop covers panics.
        let removed = dir.remove();
        let output = result?;
        removed?;
        Ok(output)
    }
}

fn run_in(
    dir: &Scratch,
    program: &[u8],
    argv0: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<RunOutput, ProbeError> {
    let exe_path = dir.path.join(PROGRAM);
    let exe = write_executable(dir, program)?;
    let exec = ExecByFd::new(&exe, argv0, args)?;
    let mut cmd = Command::new(at::fd_path(&exe));
    cmd.current_dir("/")
        // A clean environment: qemu reads QEMU_* variables (QEMU_STRACE, QEMU_LD_PREFIX...).
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills anything it started too.
        .process_group(0);
    // SAFETY: the closure only calls fcntl and execve (async-signal-safe) on data built
    // before the fork.
    unsafe { cmd.pre_exec(move || exec.exec()) };
    let mut child = spawn(&mut cmd, &exe_path)?;
    drop(exe);
    let stdout = capped_reader(child.stdout.take());
    let stderr = capped_reader(child.stderr.take());
    let status = crate::exec::wait_with_timeout(&mut child, timeout, true).map_err(|source| {
        ProbeError::Wait {
            program: exe_path.clone(),
            source,
        }
    })?;
    let group = child.id() as libc::pid_t;
    let (stdout, stderr) = (collect(stdout, group), collect(stderr, group));
    let status = status.ok_or(ProbeError::TimedOut { after: timeout })?;
    Ok(RunOutput {
        status,
        stdout,
        stderr,
    })
}

/// execve("/proc/self/fd/N", ...) of the probe's open file, done by hand in the child:
/// the std library's exec path (execvp) would hand a file the kernel refuses with ENOEXEC
/// to /bin/sh instead of reporting it. The fd stays open across exec so that an
/// interpreter started through binfmt_misc (without the O flag) can open the path too.
struct ExecByFd {
    fd: libc::c_int,
    path: CString,
    _argv: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `_argv`, owned by the same value and never changed.
unsafe impl Send for ExecByFd {}
unsafe impl Sync for ExecByFd {}

impl ExecByFd {
    fn new(exe: &std::fs::File, argv0: &str, args: &[&str]) -> Result<ExecByFd, ProbeError> {
        let c = |s: &str| {
            CString::new(s).map_err(|_| ProbeError::WrongOutput {
                reason: "an argument holds a NUL byte".into(),
                output: s.into(),
            })
        };
        let path = c(&at::fd_path(exe).to_string_lossy())?;
        let argv = std::iter::once(argv0)
            .chain(args.iter().copied())
            .map(c)
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(ExecByFd {
            fd: exe.as_raw_fd(),
            path,
            _argv: argv,
            ptrs,
        })
    }

    /// In the forked child: returns only on failure.
    fn exec(&self) -> io::Result<()> {
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: fcntl on an fd we own; execve with NUL-terminated strings and
        // null-terminated pointer arrays that outlive the call.
        unsafe {
            if libc::fcntl(self.fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            libc::execve(self.path.as_ptr(), self.ptrs.as_ptr(), envp.as_ptr());
        }
        Err(io::Error::last_os_error())
    }
}

/// Write the image as a 0700 file, close it, and return it opened again for reading: the
/// handle that is executed.
fn write_executable(dir: &Scratch, program: &[u8]) -> Result<std::fs::File, ProbeError> {
    let scratch = |source| ProbeError::Scratch {
        op: "write probe program",
        path: dir.path.join(PROGRAM),
        source,
    };
    let mut w = at::create_new(dir.fd.as_fd(), PROGRAM.as_ref(), 0o700).map_err(scratch)?;
    w.write_all(program).map_err(scratch)?;
    let r = at::open_regular(dir.fd.as_fd(), PROGRAM.as_ref()).map_err(scratch)?;
    Ok(r)
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

/// Read a pipe on a thread, up to `OUTPUT_LIMIT` bytes; then close it, so a program that
/// writes without end gets EPIPE/SIGPIPE instead of filling memory or disk.
fn capped_reader(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.take(OUTPUT_LIMIT).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// A reader's bytes. If something the program started still holds the pipe open after it
/// exited, its process group is killed after a short grace.
fn collect(rx: mpsc::Receiver<Vec<u8>>, group: libc::pid_t) -> Vec<u8> {
    if let Ok(buf) = rx.recv_timeout(DRAIN_GRACE) {
        return buf;
    }
    // SAFETY: kill(2) with a negative pid signals that group; no memory involved.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    rx.recv_timeout(DRAIN_GRACE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{arch, probe};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn parent(p: &Path) -> TrustedDir {
        trust::open_dir(p).unwrap()
    }

    /// A real executable for this host, and a write handle that makes exec fail with
    /// ETXTBSY for as long as it stays open.
    fn busy_executable(dir: &Path) -> (PathBuf, fs::File) {
        let exe = dir.join("probe");
        fs::write(&exe, probe::native_program(arch::host()).unwrap()).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).unwrap();
        let writer = fs::OpenOptions::new().write(true).open(&exe).unwrap();
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

    /// The sweep goes by the flock, not the pid: a directory named after this very
    /// (running) process but unlocked goes; a locked one stays, whoever made it.
    #[test]
    fn sweep_removes_only_unlocked_probe_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let runner = ExecRunner::new(tmp.path().into());
        let live = Scratch::create(&parent(tmp.path())).unwrap();
        let abandoned = tmp
            .path()
            .join(format!("{PREFIX}{}.999", std::process::id()));
        let other = tmp.path().join("unrelated");
        for d in [&abandoned, &other] {
            fs::create_dir(d).unwrap();
        }
        fs::write(abandoned.join("probe"), b"x").unwrap();
        assert_eq!(runner.sweep_stale(), 1);
        assert!(!abandoned.exists() && live.path.exists() && other.exists());
        live.remove().unwrap();
    }

    #[test]
    fn scratch_is_private_unique_and_removed_on_drop_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let p = parent(tmp.path());
        let a = Scratch::create(&p).unwrap();
        let b = Scratch::create(&p).unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(mode(&a.path), 0o700);
        let exe = write_executable(&a, b"\x7fELF").unwrap();
        drop(exe);
        assert_eq!(mode(&a.path.join("probe")), 0o700);
        assert_eq!(fs::read(a.path.join("probe")).unwrap(), b"\x7fELF");
        // An existing file is never overwritten: the directory is ours alone.
        assert!(write_executable(&a, b"x").is_err());
        let (pa, pb) = (a.path.clone(), b.path.clone());
        a.remove().unwrap();
        drop(b);
        assert!(!pa.exists() && !pb.exists());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_parent_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let image = probe::native_program(arch::host()).unwrap();
        let err = ExecRunner::new(open.clone())
            .run(&image, "@p", &[], Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, ProbeError::Untrusted { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&open.display().to_string()) && msg.contains("--probe-dir"),
            "{msg}"
        );
        assert_eq!(fs::read_dir(&open).unwrap().count(), 0);
    }
}
