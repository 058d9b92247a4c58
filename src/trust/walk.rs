//! The trusted walk: a path resolved one component at a time on open handles.
//!
//! Every component is opened relative to the handle of its parent with `O_NOFOLLOW`, and
//! the open handle is checked (`fstat`), never the path a second time. A symlink is read
//! inside a directory already checked and the walk continues through its target. In a
//! directory no other user can write, only a trusted owner could have placed the link; in a
//! sticky directory others can write (`/tmp`), anyone can, so there a link is followed only
//! when its owner is trusted or owns the directory: the kernel's `protected_symlinks` rule,
//! which `readlinkat` does not apply by itself.
//!
//! A path under `/proc/self/fd/<N>/` where N is an open directory (the pod-root handle of
//! `--mount-namespace`) is walked with that directory as its root: it is checked like `/`,
//! absolute symlinks below it resolve from it, and `..` never climbs above it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};

use super::{judge, Owners, TrustError, TrustedDir};

/// Symlinks followed in one walk before giving up (the kernel's limit is 40 too).
const MAX_LINKS: u32 = 40;

/// Whether root may follow a symlink owned by `link_uid` in a directory owned by `dir_uid`
/// with mode `dir_mode`: the kernel's `protected_symlinks` rule, with "the follower" being
/// any trusted owner. `what` names the link in the message.
pub fn may_follow(
    owners: &Owners,
    dir_uid: u32,
    dir_mode: u32,
    link_uid: u32,
    what: &str,
) -> Result<(), String> {
    let open_sticky = dir_mode & libc::S_ISVTX != 0 && dir_mode & libc::S_IWOTH != 0;
    if !open_sticky || owners.trusted(link_uid) || link_uid == dir_uid {
        return Ok(());
    }
    Err(format!(
        "{what} is owned by uid {link_uid}, in a sticky directory others can write: \
         binfmtd follows a symlink there only when root or the directory's owner made it \
         (the kernel's protected_symlinks rule)"
    ))
}

/// The directory fd N of a path `/proc/self/fd/N/...`, duplicated, with that prefix and
/// the rest of the path; None for any other path, or when N is not an open directory.
fn handle_root(abs: &Path) -> Option<(OwnedFd, PathBuf, PathBuf)> {
    let mut comps = abs.components();
    let head: Vec<Component> = comps.by_ref().take(5).collect();
    let [Component::RootDir, Component::Normal(p), Component::Normal(s), Component::Normal(f), Component::Normal(n)] =
        head[..]
    else {
        return None;
    };
    if (p, s, f) != (OsStr::new("proc"), OsStr::new("self"), OsStr::new("fd")) {
        return None;
    }
    let fd: RawFd = n.to_str()?.parse().ok()?;
    // SAFETY: only borrowed to duplicate it; fcntl fails cleanly on a closed fd.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    let dup = borrowed.try_clone_to_owned().ok()?;
    let st = fstat(&dup).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return None;
    }
    let prefix = Path::new("/proc/self/fd").join(n);
    Some((dup, prefix, comps.as_path().to_path_buf()))
}

pub(super) struct Walk {
    pub(super) owners: Owners,
    todo: VecDeque<OsString>,
    stack: Vec<TrustedDir>,
    links: u32,
    create: Option<u32>,
    origin: PathBuf,
    /// The directory that stands for `/` (a pod-root handle) and the path naming it.
    root: Option<(OwnedFd, PathBuf)>,
}

impl Walk {
    pub(super) fn start(path: &Path, create: Option<u32>) -> Result<Walk, TrustError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let cwd = std::env::current_dir().map_err(|e| TrustError::Io {
                path: path.to_path_buf(),
                what: format!("cannot resolve a relative path: {e}"),
            })?;
            cwd.join(path)
        };
        let (root, abs) = match handle_root(&abs) {
            Some((fd, prefix, rest)) => (Some((fd, prefix)), Path::new("/").join(rest)),
            None => (None, abs),
        };
        let mut w = Walk {
            owners: Owners::current(),
            todo: VecDeque::new(),
            stack: Vec::new(),
            links: 0,
            create,
            origin: path.to_path_buf(),
            root,
        };
        w.queue_front(&abs);
        Ok(w)
    }

    pub(super) fn io(&self, at: &Path, what: &str, e: Errno) -> TrustError {
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

    pub(super) fn walk_all(mut self) -> Result<TrustedDir, TrustError> {
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
    pub(super) fn walk_to_last(&mut self) -> Result<(TrustedDir, OsString), TrustError> {
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

    /// The root: `/`, or the handle standing for it.
    fn open_root(&mut self) -> Result<(), TrustError> {
        self.stack.clear();
        let (fd, path) = match &self.root {
            Some((fd, path)) => {
                let dup = fd.try_clone().map_err(|e| TrustError::Io {
                    path: path.clone(),
                    what: format!("cannot duplicate the handle: {e}"),
                })?;
                (dup, path.clone())
            }
            None => (
                openat(
                    AT_FDCWD,
                    "/",
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io(Path::new("/"), "cannot open", e))?,
                PathBuf::from("/"),
            ),
        };
        self.push_checked(fd, path)
    }

    /// One component. With `peek_last`, a non-symlink is left unopened; returns true when
    /// the component was a symlink (and its target was queued).
    fn step(&mut self, c: &OsStr, peek_last: bool) -> Result<bool, TrustError> {
        if c == "/" {
            return self.open_root().map(|_| false);
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
            libc::S_IFLNK => self.follow(c, here, st.st_uid).map(|_| true),
            libc::S_IFDIR if !peek_last => self.push_checked(fd, here).map(|_| false),
            _ if peek_last => Ok(false),
            _ => Err(TrustError::Io {
                path: here,
                what: format!("not a directory (while checking {})", self.origin.display()),
            }),
        }
    }

    /// Queue the target of the symlink `c` (owned by `link_uid`) in the current directory.
    fn follow(&mut self, c: &OsStr, here: PathBuf, link_uid: u32) -> Result<(), TrustError> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(self.io(&here, "too many symlinks", Errno::ELOOP));
        }
        let parent = self.stack.last().expect("the walk starts at /");
        let dir = fstat(&parent.fd).map_err(|e| self.io(&parent.path, "cannot stat", e))?;
        let what = format!("symlink {}", here.display());
        may_follow(&self.owners, dir.st_uid, dir.st_mode, link_uid, &what).map_err(|what| {
            TrustError::Unsafe {
                path: self.origin.clone(),
                what,
            }
        })?;
        let target = readlinkat(parent.fd.as_fd(), c)
            .map_err(|e| self.io(&here, "cannot read symlink", e))?;
        self.queue_front(Path::new(&target));
        Ok(())
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
