//! The trust rule for files root runs or registers, and for directories root writes into.
//!
//! binfmtd runs as root, and the kernel runs a registered interpreter for every
//! foreign-architecture process on the node. So a file is used only when no non-root user
//! can change it **or any directory above it**: every component from `/` down is owned by a
//! trusted uid and is not writable by group or others (a directory with the sticky bit, like
//! `/tmp`, is fine: others may add entries there but cannot rename or remove root's).
//!
//! Trusted owners: root; and, inside a user namespace, the overflow uid when it is not mapped
//! there. Files of unmapped owners (the host's root, seen from a sandbox) show up as the
//! overflow uid, and nobody inside the namespace can change them. On the host the overflow uid
//! is a real, mapped user ("nobody") and stays untrusted.
//!
//! The walk (`walk`) opens every component relative to the handle of its parent with
//! `O_NOFOLLOW` and checks the open handle, never the path a second time. A symlink is
//! followed only where its owner could not have planted it to redirect root: in a
//! directory nobody else can write, or, in a sticky directory others can write (`/tmp`),
//! when root or the directory's owner made it (the kernel's `protected_symlinks` rule).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

pub mod at;
mod walk;

pub use walk::may_follow;
use walk::Walk;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("{path}: {what}")]
    Io { path: PathBuf, what: String },
    #[error("{path}: {what}. Hint: binfmtd (running as root) uses a file only when no other user can change it or any directory above it: make each of them owned by root and not writable by group or others (chown root:root, chmod go-w), or use a path that is")]
    Unsafe { path: PathBuf, what: String },
}

impl TrustError {
    /// The path (or a directory on it) does not exist: the walk's `openat` said ENOENT.
    pub fn is_missing(&self) -> bool {
        matches!(self, TrustError::Io { what, .. } if what.ends_with(&Errno::ENOENT.to_string()))
    }
}

/// Which owners cannot be a non-root user of this user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    /// The overflow uid, when it is unmapped here (so it stands for owners outside).
    unmapped_overflow: Option<u32>,
}

impl Owners {
    /// From the contents of /proc/self/uid_map and /proc/sys/kernel/overflowuid.
    pub fn from_maps(uid_map: &str, overflow: u32) -> Owners {
        let mapped = uid_map.lines().any(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            f.len() == 3 && (f[0]..f[0] + f[2]).contains(&u64::from(overflow))
        });
        Owners {
            unmapped_overflow: (!mapped).then_some(overflow),
        }
    }

    /// The rule for this process. When the maps cannot be read, only root is trusted.
    pub fn current() -> Owners {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        match overflow {
            Some(o) if !map.is_empty() => Owners::from_maps(&map, o),
            _ => Owners {
                unmapped_overflow: None,
            },
        }
    }

    pub fn trusted(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.unmapped_overflow
    }
}

/// The rule for one object, from its owner and mode bits (`st_mode`). `what` names it in the
/// message ("it", "directory /x").
pub fn judge(owners: &Owners, uid: u32, mode: u32, what: &str) -> Result<(), String> {
    if !owners.trusted(uid) {
        return Err(format!("{what} is owned by uid {uid}, not root"));
    }
    let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
    let sticky = mode & libc::S_ISVTX != 0;
    if mode & 0o022 != 0 && !(is_dir && sticky) {
        return Err(format!(
            "{what} is writable by group or others (mode {:o})",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// A regular file reached by a trusted walk, opened for reading.
#[derive(Debug)]
pub struct TrustedFile {
    pub file: File,
    /// The path the walk resolved (symlinks followed, no `.` or `..`).
    pub path: PathBuf,
    pub stat: FileStat,
}

/// A directory reached (or created) by a trusted walk, held open (`O_PATH`) for `*at` calls.
#[derive(Debug)]
pub struct TrustedDir {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// Open a regular file for reading only if it and every directory above it are trusted.
pub fn open_file(path: &Path) -> Result<TrustedFile, TrustError> {
    let mut w = Walk::start(path, None)?;
    let (parent, name) = w.walk_to_last()?;
    let fd = openat(
        parent.fd.as_fd(),
        name.as_os_str(),
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| w.io(&parent.path.join(&name), "cannot open", e))?;
    let full = parent.path.join(&name);
    let stat = fstat(&fd).map_err(|e| w.io(&full, "cannot stat", e))?;
    if SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) != SFlag::S_IFREG {
        return Err(TrustError::Io {
            path: full,
            what: "not a regular file".into(),
        });
    }
    judge(&w.owners, stat.st_uid, stat.st_mode, "it").map_err(|what| TrustError::Unsafe {
        path: full.clone(),
        what,
    })?;
    let file = File::from(fd);
    // Later reads must block normally; O_NONBLOCK only guarded the open against a FIFO.
    let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
    Ok(TrustedFile {
        file,
        path: full,
        stat,
    })
}

/// Open a directory only if it and every directory above it are trusted.
pub fn open_dir(path: &Path) -> Result<TrustedDir, TrustError> {
    Walk::start(path, None)?.walk_all()
}

/// As `open_dir`, creating missing directories with exactly `mode` (the umask does not
/// apply: each new directory is chmodded through its handle) and root as owner.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<TrustedDir, TrustError> {
    Walk::start(path, Some(mode))?.walk_all()
}

#[cfg(test)]
mod tests;
