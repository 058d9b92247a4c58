//! The content-addressed interpreter store (default /var/lib/binfmtd, `--cache-dir`).
//!
//! Layout:
//!   <root>/sha256/<hex>      interpreters, mode 0755, named by their own sha256
//!   <root>/archives/<hex>    downloaded archives (.deb, .tar.*), named by their sha256
//!   <root>/index/<arch>.json where each arch's current interpreter came from
//!   <root>/.lock             held (flock) while a process works in the cache
//!   <root>/stored.json       the ledger: every name stored in sha256/ and archives/
//!
//! The root and every directory above it must be safe by the trust rule (`crate::trust`);
//! the areas are created 0755 and held open, and every file below them is opened,
//! renamed and removed relative to those handles with `O_NOFOLLOW`: a symlink planted in
//! the cache is refused, never followed. Objects and archives are re-hashed before reuse
//! (cheaply, through the fingerprint record of `interp::Sums`); a mismatch drops them.
//!
//! Every write goes to `.tmp-*` in the same directory, is fsynced, verified, and renamed
//! into place, then the directory is fsynced. A crash leaves either the old state or the
//! new one plus stray `.tmp-*` files, which `Cache::open` removes (under the lock, so never
//! another live process's). A final path never holds a partial or unverified file.
//!
//! `gc` removes only names the ledger lists (`ledger`): a file the cache did not store is
//! never deleted, whatever its name, even when the cache directory is not what it seems.

mod hashing;
mod index;
mod ledger;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::interp::Sums;
use crate::trust::{self, at, TrustError, TrustedDir};

pub use hashing::HashingFile;
pub use index::{read_index, IndexEntry};

const AREAS: [&str; 3] = ["sha256", "archives", "index"];
const TMP_PREFIX: &str = ".tmp-";
const LOCK: &str = ".lock";

/// A cache failure, naming the path and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache: {op} {path}: {source}. Hint: the cache directory must be on a writable local filesystem owned by root (set it with --cache-dir)")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} (the cache directory, set with --cache-dir)")]
    Untrusted(#[from] TrustError),
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An open cache. Holds the lock until dropped.
#[derive(Debug)]
pub struct Cache {
    /// The root as the trusted walk resolved it (symlinks followed): every path the cache
    /// hands out, and so every registered interpreter path, is under this one.
    root: PathBuf,
    /// The root, held open.
    top: TrustedDir,
    /// The areas, in `AREAS` order, held open.
    areas: Vec<TrustedDir>,
    ledger: ledger::Ledger,
    sums: Sums,
    _lock: File,
}

/// A file being written; removed on drop unless committed.
#[derive(Debug)]
pub struct TempFile {
    pub file: File,
    pub path: PathBuf,
    committed: bool,
    dir: OwnedFd,
    name: OsString,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = at::unlink(self.dir.as_fd(), &self.name);
        }
    }
}

/// What `gc` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub removed: Vec<PathBuf>,
    pub freed_bytes: u64,
}

impl Cache {
    /// Check the root by the trust rule (creating it 0755 if needed), create the areas,
    /// take the lock, and remove leftovers of interrupted runs.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let top = trust::ensure_dir(root, 0o755)?;
        let areas = AREAS
            .iter()
            .map(|a| at::subdir(&top, a, 0o755))
            .collect::<Result<Vec<_>, _>>()?;
        let lock_path = top.path.join(LOCK);
        let lock =
            at::open_lock(top.fd.as_fd(), LOCK.as_ref()).map_err(io_err("open", &lock_path))?;
        // Blocks until other binfmtd processes are done.
        at::lock(&lock).map_err(io_err("lock", &lock_path))?;
        let sums = Sums::in_dir(Some(TrustedDir {
            fd: top.fd.try_clone().map_err(io_err("open", &top.path))?,
            path: top.path.clone(),
        }));
        let cache = Cache {
            root: top.path.clone(),
            ledger: ledger::Ledger::load(&top),
            top,
            areas,
            sums,
            _lock: lock,
        };
        cache.clean_leftovers()?;
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the interpreter with this sha256 lives (whether or not it exists yet).
    pub fn object_path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    pub fn archive_path(&self, sha256: &str) -> PathBuf {
        self.root.join("archives").join(sha256)
    }

    fn area(&self, name: &str) -> Result<&TrustedDir, CacheError> {
        AREAS
            .iter()
            .position(|a| *a == name)
            .map(|i| &self.areas[i])
            .ok_or_else(|| {
                io_err("use", &self.root.join(name))(io::Error::other("not a cache area"))
            })
    }

    /// The area handle and the name of a path inside the cache (`object_path`, ...).
    fn locate<'p>(&self, path: &'p Path) -> Result<(&TrustedDir, &'p OsStr), CacheError> {
        self.areas
            .iter()
            .find_map(|d| at::name_in(&d.path, path).map(|n| (d, n)))
            .ok_or_else(|| io_err("use", path)(io::Error::other("not inside the cache")))
    }

    /// Open a file inside the cache (`archive_path`, ...) for reading through the area's
    /// handle: never through a symlink, never anything but a regular file.
    pub fn open_file(&self, path: &Path) -> io::Result<File> {
        let (dir, name) = self.locate(path).map_err(io::Error::other)?;
        at::open_regular(dir.fd.as_fd(), name)
    }

    /// Every `.tmp-*` file (in the areas and the root): only a crash leaves one, since
    /// TempFile removes itself.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, CacheError> {
        Ok(self
            .leftovers_at()?
            .into_iter()
            .map(|(d, n)| d.path.join(n))
            .collect())
    }

    fn leftovers_at(&self) -> Result<Vec<(&TrustedDir, OsString)>, CacheError> {
        let mut out = Vec::new();
        for dir in std::iter::once(&self.top).chain(&self.areas) {
            for name in at::list(&dir.fd).map_err(io_err("list", &dir.path))? {
                if name.to_string_lossy().starts_with(TMP_PREFIX) {
                    out.push((dir, name));
                }
            }
        }
        Ok(out)
    }

    fn clean_leftovers(&self) -> Result<(), CacheError> {
        for (dir, name) in self.leftovers_at()? {
            let path = dir.path.join(&name);
            tracing::info!(path = %path.display(), "removing leftover of an interrupted run");
            at::unlink(dir.fd.as_fd(), &name).map_err(io_err("remove", &path))?;
        }
        Ok(())
    }

    /// A new temp file in `area` (same directory as its final path, so rename is atomic).
    pub fn temp(&self, area: &str) -> Result<TempFile, CacheError> {
        let dir = self.area(area)?;
        for _ in 0..8 {
            let name = OsString::from(format!(
                "{TMP_PREFIX}{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let path = dir.path.join(&name);
            match at::create_new(dir.fd.as_fd(), &name, 0o600) {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        path,
                        committed: false,
                        dir: dir.fd.try_clone().map_err(io_err("open", &dir.path))?,
                        name,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
        Err(io_err("create", &dir.path)(io::Error::other(
            "no free temp name",
        )))
    }

    /// fsync the temp file and set its final mode: the step before verification.
    pub fn seal(&self, t: &TempFile, mode: u32) -> Result<(), CacheError> {
        t.file.sync_all().map_err(io_err("fsync", &t.path))?;
        nix::sys::stat::fchmod(&t.file, nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| io_err("chmod", &t.path)(e.into()))
    }

    /// Atomically move a sealed, verified temp file to `dest`. The file's bytes are already
    /// on disk (seal fsyncs them), so a crash shows either no file or the whole one; the
    /// rename itself is made durable by `sync`, once per run rather than per file.
    pub fn commit(&self, mut t: TempFile, dest: &Path) -> Result<(), CacheError> {
        let (dir, name) = self.locate(dest)?;
        if let Some(area) = ["sha256", "archives"]
            .into_iter()
            .find(|a| self.area(a).is_ok_and(|d| std::ptr::eq(d, dir)))
        {
            // Recorded before the rename: a stored name is always in the ledger.
            self.ledger.add(&self.top, area, &name.to_string_lossy())?;
        }
        at::rename(t.dir.as_fd(), &t.name, dir.fd.as_fd(), name)
            .map_err(io_err("rename into place", dest))?;
        t.committed = true;
        Ok(())
    }

    /// fsync the cache's directories so every rename so far survives a power cut. Call
    /// before anything outside the cache (a registration) relies on a committed file.
    pub fn sync(&self) -> Result<(), CacheError> {
        for dir in &self.areas {
            File::from(dir.fd.try_clone().map_err(io_err("fsync", &dir.path))?)
                .sync_all()
                .map_err(io_err("fsync", &dir.path))?;
        }
        self.sums.save();
        Ok(())
    }

    /// The object `sha256` when it is present AND its bytes still have that sha256. One
    /// whose bytes changed (a disk fault, someone writing over it) is removed, so the
    /// caller fetches it again. Re-hashing is skipped while the file's fingerprint (dev,
    /// inode, size, mtime, ctime) matches the one recorded when it last verified.
    pub fn verified_object(&self, sha256: &str) -> Option<PathBuf> {
        self.verified("sha256", sha256)
    }

    /// As `verified_object`, for a downloaded archive.
    pub fn verified_archive(&self, sha256: &str) -> Option<PathBuf> {
        self.verified("archives", sha256)
    }

    fn verified(&self, area: &str, sha256: &str) -> Option<PathBuf> {
        let dir = self.area(area).ok()?;
        let path = dir.path.join(sha256);
        let file = match at::open_regular(dir.fd.as_fd(), sha256.as_ref()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot reuse cached file; fetching it again");
                let _ = at::unlink(dir.fd.as_fd(), sha256.as_ref());
                return None;
            }
        };
        match self.sums.sha256_open(&file, &path) {
            Ok((got, _)) if got == sha256 => {
                // Reused as the pin's own bytes: the cache's from now on (a cache made
                // before the ledger gets its live objects listed this way).
                if let Err(e) = self.ledger.add(&self.top, area, sha256) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot record a cached file in the ledger; gc will keep it");
                }
                Some(path)
            }
            other => {
                let got = other.map(|(g, _)| g).unwrap_or_else(|e| e.to_string());
                tracing::warn!(path = %path.display(), got = %got, "cached file no longer matches its sha256; removing it and fetching again");
                let _ = at::unlink(dir.fd.as_fd(), sha256.as_ref());
                None
            }
        }
    }

    /// Remove the objects and archives the ledger lists whose sha256 is not in `keep`, and
    /// index entries that point at removed objects. Only ledger names are touched (anything
    /// else in the areas is left alone), each unlinked through its area's handle: a symlink
    /// is removed itself, never followed to its target.
    pub fn gc(&self, keep: &[String]) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        for area in ["sha256", "archives"] {
            let dir = self.area(area)?;
            let mut gone = Vec::new();
            for name in self.ledger.names(area) {
                if keep.contains(&name) {
                    continue;
                }
                let path = dir.path.join(&name);
                let st = nix::sys::stat::fstatat(
                    dir.fd.as_fd(),
                    name.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                let size = match st {
                    Err(nix::Error::ENOENT) => {
                        gone.push(name);
                        continue;
                    }
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => continue,
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => st.st_size as u64,
                    _ => 0,
                };
                at::unlink(dir.fd.as_fd(), name.as_ref()).map_err(io_err("remove", &path))?;
                gone.push(name);
                report.freed_bytes += size;
                report.removed.push(path);
            }
            self.ledger.remove(&self.top, area, &gone)?;
        }
        self.sync()?;
        for entry in self.index()? {
            if !self.object_exists(&entry.sha256) {
                self.remove_index(&entry.arch)?;
            }
        }
        Ok(report)
    }

    fn object_exists(&self, sha256: &str) -> bool {
        self.area("sha256")
            .is_ok_and(|d| at::open_regular(d.fd.as_fd(), sha256.as_ref()).is_ok())
    }
}

#[cfg(test)]
mod tests;
