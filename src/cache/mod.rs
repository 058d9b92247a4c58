//! The content-addressed interpreter store (default /var/lib/binfmtd, `--cache-dir`).
//!
//! Layout:
//!   <root>/sha256/<hex>      interpreters, mode 0755, named by their own sha256
//!   <root>/archives/<hex>    downloaded archives (.deb, .tar.*), named by their sha256
//!   <root>/index/<arch>.json where each arch's current interpreter came from
//!   <root>/.lock             held (flock) while a process works in the cache
//!
//! Every write goes to `.tmp-*` in the same directory, is fsynced, verified, and renamed
//! into place, then the directory is fsynced. A crash leaves either the old state or the
//! new one plus stray `.tmp-*` files, which `Cache::open` removes (under the lock, so never
//! another live process's). A final path never holds a partial or unverified file.

mod hashing;
mod index;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use hashing::HashingFile;
pub use index::{read_index, IndexEntry};

const AREAS: [&str; 3] = ["sha256", "archives", "index"];
const TMP_PREFIX: &str = ".tmp-";

/// A cache I/O failure, naming the path and the operation.
#[derive(Debug, thiserror::Error)]
#[error("cache: {op} {path}: {source}. Hint: the cache directory must be on a writable local filesystem owned by root (set it with --cache-dir)")]
pub struct CacheError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An open cache. Holds the lock until dropped.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    _lock: File,
}

/// A file being written; removed on drop unless committed.
#[derive(Debug)]
pub struct TempFile {
    pub file: File,
    pub path: PathBuf,
    committed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
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
    /// Create the layout if needed (mode 0755), take the lock, and remove leftovers of
    /// interrupted runs.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        if !root.exists() {
            fs::create_dir_all(root).map_err(io_err("create", root))?;
            fs::set_permissions(root, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", root))?;
        }
        for area in AREAS {
            let dir = root.join(area);
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            // The interpreter check refuses a group/other-writable directory: these are
            // ours, so enforce 0755. The root itself may be shared (never chmod /tmp).
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", &dir))?;
        }
        let lock_path = root.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        // SAFETY: flock on a valid, owned fd; blocks until other binfmtd processes are done.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(io_err("lock", &lock_path)(io::Error::last_os_error()));
        }
        let cache = Cache {
            root: root.to_path_buf(),
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

    /// Every `.tmp-*` file: only a crash leaves one, since TempFile removes itself.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, CacheError> {
        let mut out = Vec::new();
        for area in AREAS {
            let dir = self.root.join(area);
            for e in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
                let e = e.map_err(io_err("list", &dir))?;
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    out.push(e.path());
                }
            }
        }
        Ok(out)
    }

    fn clean_leftovers(&self) -> Result<(), CacheError> {
        for path in self.leftovers()? {
            tracing::info!(path = %path.display(), "removing leftover of an interrupted run");
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
        Ok(())
    }

    /// A new temp file in `area` (same directory as its final path, so rename is atomic).
    pub fn temp(&self, area: &str) -> Result<TempFile, CacheError> {
        let dir = self.root.join(area);
        for _ in 0..8 {
            let path = dir.join(format!(
                "{TMP_PREFIX}{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            match OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        path,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
        Err(io_err("create", &dir)(io::Error::other(
            "no free temp name",
        )))
    }

    /// fsync the temp file and set its final mode: the step before verification.
    pub fn seal(&self, t: &TempFile, mode: u32) -> Result<(), CacheError> {
        t.file.sync_all().map_err(io_err("fsync", &t.path))?;
        fs::set_permissions(&t.path, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &t.path))
    }

    /// Atomically move a sealed, verified temp file to `dest`. The file's bytes are already
    /// on disk (seal fsyncs them), so a crash shows either no file or the whole one; the
    /// rename itself is made durable by `sync`, once per run rather than per file.
    pub fn commit(&self, mut t: TempFile, dest: &Path) -> Result<(), CacheError> {
        fs::rename(&t.path, dest).map_err(io_err("rename into place", dest))?;
        t.committed = true;
        Ok(())
    }

    /// fsync the cache's directories so every rename so far survives a power cut. Call
    /// before anything outside the cache (a registration) relies on a committed file.
    pub fn sync(&self) -> Result<(), CacheError> {
        for area in AREAS {
            sync_dir(&self.root.join(area))?;
        }
        Ok(())
    }

    /// Remove objects and archives whose sha256 is not in `keep`, and index entries that
    /// point at removed objects.
    pub fn gc(&self, keep: &[String]) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        for area in ["sha256", "archives"] {
            let dir = self.root.join(area);
            for e in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
                let e = e.map_err(io_err("list", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
                report.freed_bytes += size;
                report.removed.push(e.path());
            }
            sync_dir(&dir)?;
        }
        for entry in self.index()? {
            if !self.object_path(&entry.sha256).exists() {
                self.remove_index(&entry.arch)?;
            }
        }
        Ok(report)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests;
