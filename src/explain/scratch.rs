//! The private directory `explain --image` writes an image's files into: created 0700,
//! removed when dropped, never written through a symlink, and holding at most
//! [`MAX_ENTRIES`] directories, symlinks and files (each costs an inode, and on most
//! filesystems a directory costs a block, whatever the image's layer weighs).

use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::elf_ranges::merge;

/// Directories, symlinks and files written in all. A large distribution image needs a
/// few thousand (directories are made only on the way to what is written).
pub const MAX_ENTRIES: u64 = 200_000;

/// A private directory removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
    entries: Cell<u64>,
}

impl Scratch {
    /// A new directory under `$TMPDIR` (else /tmp).
    pub fn new() -> io::Result<Scratch> {
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let p = base.join(format!("binfmtd-explain-{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => {
                    return Ok(Scratch {
                        dir: p,
                        entries: Cell::new(0),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free temporary directory name"))
    }

    /// Count one more entry, or fail once the image needs more than the cap.
    fn count(&self) -> io::Result<()> {
        let n = self.entries.get() + 1;
        if n > MAX_ENTRIES {
            return Err(io::Error::other(format!(
                "the image needs more than {MAX_ENTRIES} directories, symlinks and files written to judge it; explain stops there. Hint: judge the unpacked rootfs with `explain --root DIR` instead"
            )));
        }
        self.entries.set(n);
        Ok(())
    }

    /// Create `rel` and its parents; false (nothing more made) where a component is a
    /// symlink or a file: the image cannot have anything under it either.
    pub fn dir(&self, rel: &str) -> io::Result<bool> {
        let mut p = self.dir.clone();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Ok(false),
                Err(_) => {
                    self.count()?;
                    fs::create_dir(&p)?;
                }
            }
        }
        Ok(true)
    }

    /// The parent directories of `rel`, as [`Scratch::dir`].
    fn parents(&self, rel: &str) -> io::Result<bool> {
        parent_of(rel).map_or(Ok(true), |d| self.dir(d))
    }

    /// A symlink at `rel` (in a directory not under a symlink); false when it cannot be
    /// placed there, as the image could not have it there either.
    pub fn symlink(&self, rel: &str, target: &str) -> io::Result<bool> {
        if !self.parents(rel)? {
            return Ok(false);
        }
        self.count()?;
        Ok(std::os::unix::fs::symlink(target, self.dir.join(rel)).is_ok())
    }

    /// A new file of ours at `rel`, 0600 until [`Scratch::finish_mode`]; None when its
    /// directory is under a symlink or a file.
    pub fn create(&self, rel: &str) -> io::Result<Option<fs::File>> {
        if !self.parents(rel)? {
            return Ok(None);
        }
        self.count()?;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(rel))?;
        Ok(Some(f))
    }

    /// Open a file written earlier, to add ranges to it.
    pub fn reopen(&self, rel: &str) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(rel))
    }

    /// The file's mode from the image: the x bits are what explain reads; never
    /// setuid/setgid in our private copy.
    pub fn finish_mode(&self, rel: &str, mode: u32) -> io::Result<()> {
        let f = self.reopen(rel)?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o777))
    }

    /// A hard link at `rel` to the file written at `target` (never through a symlink).
    pub fn hard_link(&self, rel: &str, target: &str) -> io::Result<()> {
        if !self.dir.join(target).is_file() || is_link_path(&self.dir, target) {
            return Ok(());
        }
        if !self.parents(rel)? {
            return Ok(());
        }
        self.count()?;
        let _ = fs::hard_link(self.dir.join(target), self.dir.join(rel));
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(d, _)| d)
}

/// Does any component of `rel` under `dest` exist as a symlink?
fn is_link_path(dest: &Path, rel: &str) -> bool {
    let mut p = dest.to_path_buf();
    rel.split('/').any(|c| {
        p.push(c);
        fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// Copy `size` bytes, leaving all-zero blocks as holes.
pub fn copy_sparse(from: &mut dyn Read, f: &mut fs::File, size: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut from = from.take(size);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|&b| b == 0) {
            f.seek(SeekFrom::Current(n as i64))?;
        } else {
            f.write_all(&buf[..n])?;
        }
    }
    f.set_len(size)
}

/// Write the bytes of `from` (read from its start) at `ranges`; the rest is read past.
pub fn write_ranges(from: &mut dyn Read, f: &fs::File, ranges: &[Range<u64>]) -> io::Result<()> {
    let mut f = f;
    let mut at = 0u64;
    for r in merge(ranges) {
        io::copy(&mut Read::take(&mut *from, r.start - at), &mut io::sink())?;
        f.seek(SeekFrom::Start(r.start))?;
        io::copy(&mut Read::take(&mut *from, r.end - r.start), &mut f)?;
        at = r.end;
    }
    Ok(())
}
