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
//! The walk opens every component relative to the handle of its parent with `O_NOFOLLOW`, and
//! checks the open handle (`fstat`), never the path a second time. Symlinks are followed by
//! reading them inside a directory already checked (only a trusted owner could have placed
//! them), and the walk continues component by component through their targets.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, mkdirat, FileStat, Mode, SFlag};

pub mod at;

/// Symlinks followed in one walk before giving up (the kernel's limit is 40 too).
const MAX_LINKS: u32 = 40;

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

struct Walk {
    owners: Owners,
    todo: VecDeque<OsString>,
    stack: Vec<TrustedDir>,
    links: u32,
    create: Option<u32>,
    origin: PathBuf,
}

impl Walk {
    fn start(path: &Path, create: Option<u32>) -> Result<Walk, TrustError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let cwd = std::env::current_dir().map_err(|e| TrustError::Io {
                path: path.to_path_buf(),
                what: format!("cannot resolve a relative path: {e}"),
            })?;
            cwd.join(path)
        };
        let mut w = Walk {
            owners: Owners::current(),
            todo: VecDeque::new(),
            stack: Vec::new(),
            links: 0,
            create,
            origin: path.to_path_buf(),
        };
        w.queue_front(&abs);
        Ok(w)
    }

    fn io(&self, at: &Path, what: &str, e: Errno) -> TrustError {
        TrustError::Io {
            path: at.to_path_buf(),
            what: format!("{what} (while checking {}): {e}", self.origin.display()),
        }
    }

    /// Put a path's components at the front of the queue ("/" restarts from the root).
    fn queue_front(&mut self, p: &Path) {
        let comps: Vec<OsString> = p
            .components()
            .filter_map(|c| match c {
                Component::RootDir => Some(OsString::from("/")),
                Component::ParentDir => Some(OsString::from("..")),
                Component::Normal(n) => Some(n.to_os_string()),
                Component::CurDir | Component::Prefix(_) => None,
            })
            .collect();
        for c in comps.into_iter().rev() {
            self.todo.push_front(c);
        }
    }

    fn walk_all(mut self) -> Result<TrustedDir, TrustError> {
        while let Some(c) = self.todo.pop_front() {
            self.step(&c, false)?;
        }
        self.stack.pop().ok_or_else(|| TrustError::Io {
            path: self.origin.clone(),
            what: "empty path".into(),
        })
    }

    /// Walk every directory above the last component; return the parent and the last name,
    /// which is not a symlink (those are expanded) and not `..`.
    fn walk_to_last(&mut self) -> Result<(TrustedDir, OsString), TrustError> {
        loop {
            let Some(c) = self.todo.pop_front() else {
                return Err(TrustError::Io {
                    path: self.origin.clone(),
                    what: "names a directory, not a file".into(),
                });
            };
            if self.todo.is_empty() && c != "/" && c != ".." {
                if self.step(&c, true)? {
                    continue; // a symlink: its target is queued now
                }
                let parent = self.stack.pop().expect("the walk starts at /");
                return Ok((parent, c));
            }
            self.step(&c, false)?;
        }
    }

    /// One component. With `peek_last`, a non-symlink is left unopened; returns true when
    /// the component was a symlink (and its target was queued).
    fn step(&mut self, c: &OsStr, peek_last: bool) -> Result<bool, TrustError> {
        if c == "/" {
            self.stack.clear();
            let fd = openat(
                AT_FDCWD,
                "/",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.io(Path::new("/"), "cannot open", e))?;
            self.push_checked(fd, PathBuf::from("/"))?;
            return Ok(false);
        }
        if c == ".." {
            if self.stack.len() > 1 {
                self.stack.pop();
            }
            return Ok(false);
        }
        let parent = self.stack.last().expect("the walk starts at /");
        let here = parent.path.join(c);
        let fd = match openat(
            parent.fd.as_fd(),
            c,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if self.create.is_some() && !peek_last => {
                return self.create_dir(c, here).map(|_| false);
            }
            Err(e) => return Err(self.io(&here, "cannot open", e)),
        };
        let st = fstat(&fd).map_err(|e| self.io(&here, "cannot stat", e))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                self.links += 1;
                if self.links > MAX_LINKS {
                    return Err(self.io(&here, "too many symlinks", Errno::ELOOP));
                }
                let target = readlinkat(parent.fd.as_fd(), c)
                    .map_err(|e| self.io(&here, "cannot read symlink", e))?;
                self.queue_front(Path::new(&target));
                Ok(true)
            }
            libc::S_IFDIR if !peek_last => self.push_checked(fd, here).map(|_| false),
            _ if peek_last => Ok(false),
            _ => Err(TrustError::Io {
                path: here,
                what: format!("not a directory (while checking {})", self.origin.display()),
            }),
        }
    }

    fn push_checked(&mut self, fd: OwnedFd, path: PathBuf) -> Result<(), TrustError> {
        let st = fstat(&fd).map_err(|e| self.io(&path, "cannot stat", e))?;
        let what = format!("directory {}", path.display());
        judge(&self.owners, st.st_uid, st.st_mode, &what).map_err(|what| TrustError::Unsafe {
            path: self.origin.clone(),
            what,
        })?;
        self.stack.push(TrustedDir { fd, path });
        Ok(())
    }

    fn create_dir(&mut self, c: &OsStr, here: PathBuf) -> Result<(), TrustError> {
        let mode = self.create.unwrap_or(0o755);
        let parent = self.stack.last().expect("the walk starts at /");
        match mkdirat(parent.fd.as_fd(), c, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.io(&here, "cannot create directory", e)),
        }
        // Opened for reading (not O_PATH) so that fchmod works; checked after the chmod.
        let fd = openat(
            parent.fd.as_fd(),
            c,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io(&here, "cannot open new directory", e))?;
        let st = fstat(&fd).map_err(|e| self.io(&here, "cannot stat", e))?;
        // Only a directory this process owns gets its mode set; someone else's is judged as is.
        if st.st_uid == nix::unistd::geteuid().as_raw() {
            fchmod(&fd, Mode::from_bits_truncate(mode))
                .map_err(|e| self.io(&here, "cannot chmod new directory", e))?;
        }
        self.push_checked(fd, here)
    }
}

#[cfg(test)]
mod tests;
