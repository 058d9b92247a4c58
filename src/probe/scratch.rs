//! A probe's private directory: created below the trusted parent through its handle,
//! flocked for its whole life (the mark `ExecRunner::sweep_stale` goes by), and removed
//! through handles.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{fchmod, fstat, fstatat, Mode};

use super::ProbeError;
use crate::trust::{at, TrustedDir};

/// Every probe directory's name starts so (`binfmtd-probe.<pid>.<seq>`).
pub(super) const PREFIX: &str = "binfmtd-probe.";

/// Remove a probe directory (flat: a program and nothing else) through handles.
pub(super) fn remove_tree(parent: &TrustedDir, name: &OsStr, dir: &OwnedFd) -> io::Result<()> {
    for entry in at::list(dir)? {
        at::unlink(dir.as_fd(), &entry)?;
    }
    at::rmdir(parent.fd.as_fd(), name)
}

/// A private, flocked directory that is removed when dropped (or earlier, with `remove`).
pub(super) struct Scratch {
    parent: OwnedFd,
    name: OsString,
    /// Held open and flocked for the directory's whole life (see `sweep_stale`).
    pub fd: OwnedFd,
    pub path: PathBuf,
    removed: bool,
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    pub fn create(parent: &TrustedDir) -> Result<Scratch, ProbeError> {
        let err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |e: nix::Error| ProbeError::Scratch {
                op,
                path,
                source: e.into(),
            }
        };
        loop {
            let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
            let name = OsString::from(format!("{PREFIX}{}.{seq}", std::process::id()));
            let path = parent.path.join(&name);
            // mkdirat fails if the name exists, so the directory is ours.
            match nix::sys::stat::mkdirat(
                parent.fd.as_fd(),
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) => {}
                Err(nix::Error::EEXIST) => continue,
                Err(e) => return Err(err("create scratch directory", &path)(e)),
            }
            let fd = match at::open_dir_fd(parent.fd.as_fd(), &name) {
                Ok(fd) => fd,
                // Swept (or replaced) before we opened it: take another name.
                Err(nix::Error::ENOENT | nix::Error::ELOOP | nix::Error::ENOTDIR) => continue,
                Err(e) => return Err(err("open scratch directory", &path)(e)),
            };
            at::lock(&fd).map_err(|source| ProbeError::Scratch {
                op: "lock scratch directory",
                path: path.clone(),
                source,
            })?;
            // A sweeper may have removed the directory between mkdir and lock: the
            // name must still be this very directory, made by us.
            let held = fstat(&fd).map_err(err("stat scratch directory", &path))?;
            let named = fstatat(
                parent.fd.as_fd(),
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            if !named.is_ok_and(|n| (n.st_dev, n.st_ino) == (held.st_dev, held.st_ino))
                || held.st_uid != nix::unistd::geteuid().as_raw()
            {
                continue;
            }
            // The mode given to mkdir is filtered by the umask; make sure it is private.
            fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(err("restrict", &path))?;
            return Ok(Scratch {
                parent: parent
                    .fd
                    .try_clone()
                    .map_err(|source| ProbeError::Scratch {
                        op: "open",
                        path: parent.path.clone(),
                        source,
                    })?,
                name,
                fd,
                path,
                removed: false,
            });
        }
    }

    fn remove_now(&mut self) -> io::Result<()> {
        self.removed = true;
        for entry in at::list(&self.fd)? {
            at::unlink(self.fd.as_fd(), &entry)?;
        }
        at::rmdir(self.parent.as_fd(), &self.name)
    }

    pub fn remove(mut self) -> Result<(), ProbeError> {
        self.remove_now().map_err(|source| ProbeError::Scratch {
            op: "remove scratch directory",
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_now();
        }
    }
}
