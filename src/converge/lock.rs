//! Node-wide locks, both `flock(2)` so the kernel drops them when the holder dies:
//!
//! - the converge lock, so that two converge passes against the same binfmt_misc instance
//!   (a cloud-init `install` and the unit at boot, or `install` beside a running daemon)
//!   never interleave their register/prove/remove steps. One file per instance (named by
//!   the device number of its superblock, the same wherever it is mounted) in `LOCK_DIR`;
//! - the single-instance lock of `binfmtd run`, on a file beside the status file.
//!
//! flock needs only an fd, and any fd will do, even a read-only one: a lock file anyone can
//! open is a lock anyone can hold, stalling every repair. So both are files only root can
//! open: mode 0600, owned by this process, in a directory only root can write, opened
//! through a checked directory handle with `O_NOFOLLOW`, and checked on the open handle.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::stat::{fchmod, fstat, Mode};

use super::holder::{identify, Holder};
use crate::trust::{self, at, TrustError, TrustedDir};

/// Where the converge locks live: fixed, so that `install` and `run` meet there whatever
/// their other options (a container shares it through `--mount-namespace`).
pub const LOCK_DIR: &str = "/run/binfmtd";

const AGENT_HINT: &str =
    "stop it first (systemctl stop binfmtd, or remove the DaemonSet) before starting this one";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open {path} to lock it: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lock {path}: {what}")]
    Unsafe { path: PathBuf, what: String },
    #[error("lock directory: {0}")]
    Dir(#[source] TrustError),
    #[error("{} holds {path}, the lock on the binfmt_misc entries at {root}, and did not let go within {} s; nothing was changed. Hint: {}", holder.who("binfmtd"), waited.as_secs(), holder.hint("wait for it and run again, or stop it"))]
    Busy {
        path: PathBuf,
        root: PathBuf,
        holder: Holder,
        waited: Duration,
    },
    #[error("{} already holds {path}: only one agent may run per node. Hint: {}", holder.who("binfmtd run"), holder.hint(AGENT_HINT))]
    AlreadyRunning { path: PathBuf, holder: Holder },
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while a converge pass changes entries; released on drop.
#[derive(Debug)]
pub struct ConvergeLock {
    _file: File,
}

impl ConvergeLock {
    /// Lock the binfmt_misc instance at `root`, waiting up to `wait` for another holder.
    pub fn acquire(root: &Path, wait: Duration) -> Result<ConvergeLock, LockError> {
        ConvergeLock::acquire_in(Path::new(LOCK_DIR), root, wait)
    }

    /// As `acquire`, with the lock file in `dir`.
    pub fn acquire_in(dir: &Path, root: &Path, wait: Duration) -> Result<ConvergeLock, LockError> {
        let dev = std::fs::metadata(root)
            .map_err(|source| LockError::Open {
                path: root.to_path_buf(),
                source,
            })?
            .dev();
        let path = dir.join(lock_name(dev));
        let Opened { file, loose, .. } = open_root_only(&path)?;
        if loose {
            fchmod(file.as_fd(), Mode::from_bits_truncate(0o600)).map_err(|e| {
                LockError::Unsafe {
                    path: path.clone(),
                    what: format!("cannot chmod it to 0600: {e}"),
                }
            })?;
        }
        let start = Instant::now();
        let mut announced = false;
        loop {
            if try_flock(&file, &path)? {
                return Ok(ConvergeLock { _file: file });
            }
            if start.elapsed() >= wait {
                return Err(LockError::Busy {
                    holder: identify(&file, None),
                    path,
                    root: root.to_path_buf(),
                    waited: wait,
                });
            }
            if !announced {
                announced = true;
                let holder = identify(&file, None).who("binfmtd");
                tracing::info!(path = %path.display(), %holder, "waiting for the lock on the binfmt_misc entries");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The converge lock's file name for the binfmt_misc instance on device `dev`
/// ("binfmt_misc-0:52.lock", as /proc/self/mountinfo writes the device).
pub fn lock_name(dev: u64) -> String {
    format!("binfmt_misc-{}:{}.lock", libc::major(dev), libc::minor(dev))
}

/// The single-instance lock of `binfmtd run`; the file holds the holder's pid.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    /// The older, looser file this one replaced, when it was free: held too, so a binfmtd
    /// that opened it just before the replacement still finds it taken.
    _old: Option<File>,
}

impl InstanceLock {
    /// A file any user could once open (an older binfmtd made it 0644) may be held by
    /// anyone who opened it then, and chmod does not take their descriptor away: unless
    /// binfmtd holds it, it is replaced by a new 0600 file nobody else has ever opened.
    pub fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let o = open_root_only(path)?;
        let got = try_flock(&o.file, path)?;
        if !got {
            let holder = identify(&o.file, recorded_pid(&o.file));
            if !o.loose || matches!(holder, Holder::Binfmtd(_) | Holder::Unseen { .. }) {
                return Err(LockError::AlreadyRunning {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            tracing::warn!(path = %path.display(), holder = %holder.who("binfmtd run"), "the lock file was open to everyone and is held by a process that is not binfmtd: replacing it");
        }
        let (mut file, old) = if o.loose {
            (replace(&o.dir, path)?, got.then_some(o.file))
        } else {
            (o.file, None)
        };
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(InstanceLock {
            _file: file,
            _old: old,
        })
    }
}

/// The pid a holder wrote into the lock file, read through the handle.
fn recorded_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Put a new 0600 lock file, already locked, in place of `path` (renamed over it inside
/// the checked directory).
fn replace(dir: &TrustedDir, path: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().unwrap_or_default();
    let mut tmp = name.to_os_string();
    tmp.push(".new");
    // A leftover of a crash; unlinkat removes the name, never what a symlink points at.
    let _ = at::unlink(dir.fd.as_fd(), &tmp);
    let file = at::create_new(dir.fd.as_fd(), &tmp, 0o600).map_err(io)?;
    if !try_flock(&file, path)? {
        return Err(io(std::io::Error::other("a brand-new lock file was taken")));
    }
    at::rename(dir.fd.as_fd(), &tmp, dir.fd.as_fd(), name).map_err(io)?;
    Ok(file)
}

/// A lock file as `open_root_only` found it.
struct Opened {
    dir: TrustedDir,
    file: File,
    /// Its mode was not 0600.
    loose: bool,
}

/// Open (creating when missing) the lock file at `path` so that only root can open it: the
/// directory passes the trust rule and is writable by its owner alone (in a sticky one,
/// anyone could create the name first), the file is not a symlink, is ours and has one
/// link. New files are 0600; whether an older one is looser is for the caller to settle.
fn open_root_only(path: &Path) -> Result<Opened, LockError> {
    let unsafe_ = |what: String| LockError::Unsafe {
        path: path.to_path_buf(),
        what,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(unsafe_("not a file path".into()));
    };
    let dir = trust::ensure_dir(dir, 0o755).map_err(LockError::Dir)?;
    let st =
        fstat(dir.fd.as_fd()).map_err(|e| unsafe_(format!("cannot stat its directory: {e}")))?;
    if st.st_mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "its directory {} is writable by others (mode {:o}), so anyone could create the lock first. Hint: put it in a directory only root can write (chmod go-w, or another path)",
            dir.path.display(),
            st.st_mode & 0o7777
        )));
    }
    let file = at::open_lock(dir.fd.as_fd(), name).map_err(|source| match source.raw_os_error() {
        Some(libc::ELOOP) => unsafe_(
            "it is a symlink; binfmtd never follows one to a lock. Hint: remove it (binfmtd creates the file again)".into(),
        ),
        _ => LockError::Open {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let st = fstat(file.as_fd()).map_err(|e| unsafe_(format!("cannot stat: {e}")))?;
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(unsafe_(format!(
            "it is owned by uid {}, not by binfmtd's uid {me}, so someone else made it. Hint: remove it (binfmtd creates it again, mode 0600)",
            st.st_uid
        )));
    }
    if st.st_nlink != 1 {
        return Err(unsafe_(format!(
            "it has {} hard links, so it is also some other file. Hint: remove it (binfmtd creates it again, mode 0600)",
            st.st_nlink
        )));
    }
    Ok(Opened {
        dir,
        file,
        loose: st.st_mode & 0o7777 != 0o600,
    })
}

/// Take an exclusive flock without blocking: Ok(false) when someone else holds it.
fn try_flock(file: &File, path: &Path) -> Result<bool, LockError> {
    at::try_lock(file).map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
