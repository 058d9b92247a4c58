//! Work inside a trusted directory through its handle: every name is opened, created,
//! renamed or removed relative to the directory's fd with `O_NOFOLLOW`, so nothing that
//! happens to the path afterwards (a swapped parent, a planted symlink) redirects it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::{judge, Owners, TrustError, TrustedDir};

/// The directory `name` directly below `parent`, created with exactly `mode` when missing.
/// A symlink or anything but a directory there is refused; so is a directory of an
/// untrusted owner. One of ours with a looser mode (made under a permissive umask) is
/// tightened to `mode`. The handle is a plain read fd (usable for `*at`, flock, fchmod).
pub fn subdir(parent: &TrustedDir, name: &str, mode: u32) -> Result<TrustedDir, TrustError> {
    let path = parent.path.join(name);
    let io_err = |what: &str, e: nix::Error| TrustError::Io {
        path: path.clone(),
        what: format!("{what}: {e}"),
    };
    match mkdirat(parent.fd.as_fd(), name, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(e) => return Err(io_err("cannot create directory", e)),
    }
    let fd = open_dir_fd(parent.fd.as_fd(), name.as_ref()).map_err(|e| match e {
        nix::Error::ELOOP | nix::Error::ENOTDIR => TrustError::Unsafe {
            path: path.clone(),
            what:
                "it is a symlink or not a directory; binfmtd keeps only its own directories there"
                    .into(),
        },
        e => io_err("cannot open directory", e),
    })?;
    let st = fstat(&fd).map_err(|e| io_err("cannot stat", e))?;
    if st.st_uid == nix::unistd::geteuid().as_raw() && st.st_mode & 0o7777 != mode {
        fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| io_err("cannot chmod", e))?;
    }
    let st = fstat(&fd).map_err(|e| io_err("cannot stat", e))?;
    judge(&Owners::current(), st.st_uid, st.st_mode, "it").map_err(|what| TrustError::Unsafe {
        path: path.clone(),
        what,
    })?;
    Ok(TrustedDir { fd, path })
}

/// Open a directory below `dir` for reading, never through a symlink.
pub fn open_dir_fd(dir: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory (no `.` or `..`), read through its handle.
pub fn list(dir: &impl AsRawFd) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(fd_path(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// `/proc/self/fd/N`: the object behind a handle, whatever its path has become since.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Create a new file (never an existing name, never through a symlink) for reading and
/// writing, with exactly `mode` whatever the umask.
pub fn create_new(dir: impl AsFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode & 0o700),
    )?;
    fchmod(&fd, Mode::from_bits_truncate(mode))?;
    Ok(File::from(fd))
}

/// Open an existing regular file for reading, never through a symlink, never a FIFO.
pub fn open_regular(dir: impl AsFd, name: &OsStr) -> io::Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    if fstat(&fd)?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other("not a regular file"));
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(File::from(fd))
}

/// Open (creating when missing, mode 0600) a lock file: never through a symlink.
pub fn open_lock(dir: impl AsFd, name: &OsStr) -> io::Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    if fstat(&fd)?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// Remove a file (a symlink itself, never its target).
pub fn unlink(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    Ok(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?)
}

/// Remove an empty directory.
pub fn rmdir(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    Ok(unlinkat(dir, name, UnlinkatFlags::RemoveDir)?)
}

pub fn rename(from_dir: impl AsFd, from: &OsStr, to_dir: impl AsFd, to: &OsStr) -> io::Result<()> {
    Ok(renameat(from_dir, from, to_dir, to)?)
}

/// Replace `name` in `dir` with `bytes`: written to a new file `tmp` (a leftover of a crash
/// is unlinked first, the name itself, never a symlink's target), synced, renamed over `name`.
pub fn replace(
    dir: impl AsFd,
    tmp: &OsStr,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    use std::io::Write;
    let _ = unlink(&dir, tmp);
    let mut f = create_new(&dir, tmp, mode)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    rename(&dir, tmp, &dir, name)
}

/// The name of `path` if it lies directly in `dir` (`dir/name`), else None.
pub fn name_in<'a>(dir: &Path, path: &'a Path) -> Option<&'a OsStr> {
    (path.parent() == Some(dir))
        .then(|| path.file_name())
        .flatten()
}

/// Take or test an flock without waiting: Ok(false) when another holder has it.
pub fn try_lock(fd: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: flock on a valid, open fd.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        e => Err(e),
    }
}

/// Take an flock, waiting for other holders.
pub fn lock(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: flock on a valid, open fd.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
