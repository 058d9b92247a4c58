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
/// Names tried before giving up on a parent.
const ATTEMPTS: u32 = 64;

fn err(op: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> ProbeError {
    let path = path.to_path_buf();
    move |e| ProbeError::Scratch {
        op,
        path,
        source: e.into(),
    }
}

/// mkdir `name` below `parent`, open and flock it, and make sure the name still refers to
/// that very directory, owned by us (a sweeper may have removed it between mkdir and lock).
/// None: the name was taken or lost; try another.
fn make_locked(
    parent: &TrustedDir,
    name: &OsStr,
    path: &Path,
) -> Result<Option<OwnedFd>, ProbeError> {
    // mkdirat fails if the name exists, so the directory is ours.
    match nix::sys::stat::mkdirat(parent.fd.as_fd(), name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => {}
        Err(nix::Error::EEXIST) => return Ok(None),
        Err(e) => return Err(err("create scratch directory", path)(e)),
    }
    let fd = match at::open_dir_fd(parent.fd.as_fd(), name) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT | nix::Error::ELOOP | nix::Error::ENOTDIR) => return Ok(None),
        Err(e) => return Err(err("open scratch directory", path)(e)),
    };
    at::lock(&fd).map_err(|source| ProbeError::Scratch {
        op: "lock scratch directory",
        path: path.to_path_buf(),
        source,
    })?;
    let held = fstat(&fd).map_err(err("stat scratch directory", path))?;
    let named = fstatat(
        parent.fd.as_fd(),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    if !named.is_ok_and(|n| (n.st_dev, n.st_ino) == (held.st_dev, held.st_ino)) {
        return Ok(None);
    }
    if held.st_uid != nix::unistd::geteuid().as_raw() {
        let _ = at::rmdir(parent.fd.as_fd(), name);
        return Ok(None);
    }
    Ok(Some(fd))
}

impl Scratch {
    /// A new directory below `parent`, made by us, locked, 0700.
    pub fn create(parent: &TrustedDir) -> Result<Scratch, ProbeError> {
        for _ in 0..ATTEMPTS {
            let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
            let name = OsString::from(format!("{PREFIX}{}.{seq}", std::process::id()));
            let path = parent.path.join(&name);
            let Some(fd) = make_locked(parent, &name, &path)? else {
                continue;
            };
            // The mode given to mkdir is filtered by the umask; make sure it is private.
            fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(err("restrict", &path))?;
            let parent_fd = parent.fd.try_clone().map_err(|e| ProbeError::Scratch {
                op: "open",
                path: parent.path.clone(),
                source: e,
            })?;
            return Ok(Scratch {
                parent: parent_fd,
                name,
                fd,
                path,
                removed: false,
            });
        }
        Err(ProbeError::Scratch {
            op: "create scratch directory in",
            path: parent.path.clone(),
            source: io::Error::other(format!(
                "no usable new directory after {ATTEMPTS} attempts (names taken, or directories made there are not owned by binfmtd's uid)"
            )),
        })
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
