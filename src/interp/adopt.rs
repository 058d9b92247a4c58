//! Local interpreters (`--interpreter`, `--interpreter-dir`) are registered as copies in the
//! content-addressed cache, never by their own path.
//!
//! Why: the kernel opens the registered path when the entry is written (F flag), long after
//! the checks. A path outside binfmtd's control can be made to name another file in
//! between; and a file upgraded in place under the same path would leave the kernel running
//! the old one while `status` read the new one. A cache object is named by its content: the
//! bytes are copied from the very handle that passed the trust rule and the ELF checks, and
//! a new build gets a new path, so `install` replaces the entry (proving the new one first).

use std::io::{self, Seek};
use std::path::{Path, PathBuf};

use super::{InterpError, InterpreterInfo, Sums};
use crate::arch::Arch;
use crate::cache::{Cache, HashingFile};

/// Adopt every located interpreter into the cache at `cache_dir` (side by side), make the
/// copies durable, and return where each copy is. An error stays that arch's error; a cache
/// that cannot be opened fails every arch with its message.
pub fn adopt_all(
    cache_dir: &Path,
    located: &[Result<PathBuf, InterpError>],
    host: &Arch,
    sums: &Sums,
) -> Vec<Result<PathBuf, InterpError>> {
    let cache = match Cache::open(cache_dir) {
        Ok(c) => c,
        Err(e) => {
            let what = format!("local interpreters are registered as copies in the cache, which cannot be used: {e}");
            return located
                .iter()
                .map(|l| {
                    let path = l.as_ref().map_err(Clone::clone)?.clone();
                    Err(InterpError::Io {
                        path,
                        what: what.clone(),
                    })
                })
                .collect();
        }
    };
    let mut out = crate::par::map(located, |l| {
        let path = l.as_ref().map_err(Clone::clone)?;
        adopt(&cache, path, host, sums).map(|info| info.path)
    });
    if let Err(e) = cache.sync() {
        for r in out.iter_mut() {
            if let Ok(path) = r {
                let what = format!("the cache copy is not durable: {e}");
                *r = Err(InterpError::Io {
                    path: path.clone(),
                    what,
                });
            }
        }
    }
    out
}

/// Check the local interpreter at `path` (trust rule on every component, executable, ELF
/// for `host`, static) and make sure the cache holds a copy of exactly the checked bytes.
/// Returns the cache object's facts: that path is what gets registered.
pub fn adopt(
    cache: &Cache,
    path: &Path,
    host: &Arch,
    sums: &Sums,
) -> Result<InterpreterInfo, InterpError> {
    let tf = super::check_open(path, host)?;
    let io = |what: &str, e: io::Error| InterpError::Io {
        path: tf.path.clone(),
        what: format!("{what}: {e}"),
    };
    // Hashed through the handle (free while the file is unchanged): an intact copy of
    // these bytes already in the cache costs no copy.
    let (want, _) = sums
        .sha256_open(&tf.file, &tf.path)
        .map_err(|e| io("cannot read", e))?;
    // Through the cache's directory handle, re-hashed (cheap while unchanged); a copy that
    // no longer matches its name is dropped there and made again here.
    let intact = |sha: &str| cache.verified_object(sha).is_some();
    if intact(&want) {
        return Ok(InterpreterInfo {
            path: cache.object_path(&want),
            sha256: want,
            size: tf.stat.st_size as u64,
        });
    }
    let cache_err = |e: crate::cache::CacheError| InterpError::Io {
        path: tf.path.clone(),
        what: format!("copying into the cache: {e}"),
    };
    let mut t = cache.temp("sha256").map_err(cache_err)?;
    let mut w = HashingFile::new(&mut t.file);
    let mut src = &tf.file;
    src.rewind().map_err(|e| io("cannot read", e))?;
    io::copy(&mut src, &mut w).map_err(|e| io("copying into the cache", e))?;
    // The copy is named by the bytes it holds, whatever happened to the source meanwhile.
    let (sha256, size) = w.finish();
    let dest = cache.object_path(&sha256);
    if intact(&sha256) {
        drop(t);
    } else {
        cache.seal(&t, 0o755).map_err(cache_err)?;
        cache.commit(t, &dest).map_err(cache_err)?;
    }
    tracing::info!(from = %tf.path.display(), to = %dest.display(), "local interpreter copied into the cache");
    Ok(InterpreterInfo {
        path: dest,
        sha256,
        size,
    })
}
