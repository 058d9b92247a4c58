//! Node-wide locks, both `flock(2)` so the kernel drops them when the holder dies:
//!
//! - the converge lock, on the binfmt_misc directory itself, so that two converge passes
//!   against the same instance (a cloud-init `install` and the unit at boot, or `install`
//!   beside a running daemon) never interleave their register/prove/remove steps. Only held
//!   for one pass: a long-held handle would keep the mount busy;
//! - the single-instance lock of `binfmtd run`, on a file beside the status file.
//!
//! flock records no owner, but /proc/locks lists the holder's pid by inode: errors name it.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open {path} to lock it: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another binfmtd ({}) is changing the binfmt_misc entries at {path} and did not finish within {} s; nothing was changed. Hint: wait for it and run again, or stop it", holder_text(*holder), waited.as_secs())]
    Busy {
        path: PathBuf,
        holder: Option<u32>,
        waited: Duration,
    },
    #[error("another binfmtd run ({}) already holds {path}: only one agent may run per node. Hint: stop it first (systemctl stop binfmtd, or remove the DaemonSet) before starting this one", holder_text(*holder))]
    AlreadyRunning { path: PathBuf, holder: Option<u32> },
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "a process in another pid namespace".into(),
    }
}

/// Held while a converge pass changes entries; released on drop.
#[derive(Debug)]
pub struct ConvergeLock {
    _file: File,
}

impl ConvergeLock {
    /// Lock the binfmt_misc instance at `root`, waiting up to `wait` for another holder.
    pub fn acquire(root: &Path, wait: Duration) -> Result<ConvergeLock, LockError> {
        let file = File::open(root).map_err(|source| LockError::Open {
            path: root.to_path_buf(),
            source,
        })?;
        let start = Instant::now();
        let mut announced = false;
        loop {
            if try_flock(&file, root)? {
                return Ok(ConvergeLock { _file: file });
            }
            if start.elapsed() >= wait {
                return Err(LockError::Busy {
                    path: root.to_path_buf(),
                    holder: holder(&file),
                    waited: wait,
                });
            }
            if !announced {
                announced = true;
                tracing::info!(path = %root.display(), holder = ?holder(&file), "waiting for another binfmtd to finish changing entries");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The single-instance lock of `binfmtd run`; the file holds the holder's pid.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    pub fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| LockError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        if !try_flock(&file, path)? {
            let holder = holder(&file).or_else(|| {
                std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
            });
            return Err(LockError::AlreadyRunning {
                path: path.to_path_buf(),
                holder,
            });
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(InstanceLock { _file: file })
    }
}

/// Take an exclusive flock without blocking: Ok(false) when someone else holds it.
fn try_flock(file: &File, path: &Path) -> Result<bool, LockError> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(LockError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The pid /proc/locks names for a flock on this file's inode (0 there means: not in our
/// pid namespace).
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&text, meta.dev(), meta.ino())
}

/// Pure part of `holder`: find the FLOCK line for (dev, inode) in /proc/locks text.
pub fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 12246 00:15:17890 0 EOF"; "->" marks a waiter.
        if f.len() < 6 || f[1] != "FLOCK" || f.contains(&"->") || f[5] != want {
            return None;
        }
        f[4].parse().ok().filter(|p| *p != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::holder_in;

    #[test]
    fn finds_the_flock_holder_by_inode() {
        let text = "1: POSIX  ADVISORY  WRITE 99 00:15:17890 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 12246 00:15:17890 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 777 00:15:17890 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 5 fd:01:17890 0 EOF\n";
        let dev = libc::makedev(0, 0x15);
        assert_eq!(holder_in(text, dev, 17890), Some(12246));
        assert_eq!(holder_in(text, libc::makedev(0xfd, 1), 17890), Some(5));
        assert_eq!(holder_in(text, dev, 1), None);
        assert_eq!(
            holder_in("1: FLOCK ADVISORY WRITE 0 00:15:17890 0 EOF", dev, 17890),
            None
        );
    }
}
