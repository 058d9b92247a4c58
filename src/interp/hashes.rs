//! Remembered sha256 sums of interpreter files, so `install` and `status` do not re-read
//! ~10 MB per arch every time.
//!
//! A sum is reused only while the file's fingerprint (device, inode, size, mtime and ctime
//! in nanoseconds) is unchanged; any write or chmod moves ctime, which user space cannot
//! set back. The record lives in the cache directory as JSON; when that is not writable
//! (an unprivileged `status`), sums are simply computed.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

const FILE: &str = "interpreter-sums.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Fingerprint {
    fn of(path: &Path) -> std::io::Result<Fingerprint> {
        Ok(Fingerprint::from_meta(&std::fs::metadata(path)?))
    }

    fn from_meta(m: &std::fs::Metadata) -> Fingerprint {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: Fingerprint,
    sha256: String,
}

/// Sums by canonical path. Safe to share between threads.
#[derive(Debug, Default)]
pub struct Sums {
    file: Option<PathBuf>,
    records: Mutex<BTreeMap<PathBuf, Record>>,
    dirty: Mutex<bool>,
}

impl Sums {
    /// Load the record from `dir` (an unreadable or corrupt record is an empty one).
    pub fn load(dir: Option<&Path>) -> Sums {
        let file = dir.map(|d| d.join(FILE));
        let records = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Sums {
            file,
            records: Mutex::new(records),
            dirty: Mutex::new(false),
        }
    }

    /// sha256 and size of `path`, from the record when its fingerprint still matches.
    pub fn sha256(&self, path: &Path) -> std::io::Result<(String, u64)> {
        let fp = Fingerprint::of(path)?;
        if let Some(r) = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            if r.fingerprint == fp {
                return Ok((r.sha256.clone(), fp.size));
            }
        }
        let (sha256, size) = super::sha256_file(path)?;
        // Only remember it if the file did not change while we read it.
        if Fingerprint::of(path)? == fp {
            let rec = Record {
                fingerprint: fp,
                sha256: sha256.clone(),
            };
            self.records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path.to_path_buf(), rec);
            *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
        Ok((sha256, size))
    }

    /// sha256 and size of an open file (read from its start), recorded under `key` (the
    /// path it was opened by): a file checked on its handle is hashed through that handle.
    pub fn sha256_open(&self, file: &File, key: &Path) -> std::io::Result<(String, u64)> {
        let fp = Fingerprint::from_meta(&file.metadata()?);
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = records.get(key).filter(|r| r.fingerprint == fp) {
            return Ok((r.sha256.clone(), fp.size));
        }
        drop(records);
        let (sha256, size) = super::sha256_read(file)?;
        if Fingerprint::from_meta(&file.metadata()?) == fp {
            let rec = Record {
                fingerprint: fp,
                sha256: sha256.clone(),
            };
            self.records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.to_path_buf(), rec);
            *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
        Ok((sha256, size))
    }

    /// Write the record back (temp file + rename); failures only cost a re-hash next time.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if !*self.dirty.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = file.with_extension("json.tmp");
        let written = serde_json::to_vec(&*records)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(file = %file.display(), error = %e, "could not save interpreter sums");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_sum_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("qemu-x");
        std::fs::write(&f, b"one").unwrap();
        let sums = Sums::load(Some(dir.path()));
        let first = sums.sha256(&f).unwrap();
        assert_eq!(first, super::super::sha256_file(&f).unwrap());
        sums.save();
        let again = Sums::load(Some(dir.path()));
        assert_eq!(again.sha256(&f).unwrap(), first);
        std::fs::write(&f, b"two, longer").unwrap();
        let changed = again.sha256(&f).unwrap();
        assert_ne!(changed, first);
        assert_eq!(changed, super::super::sha256_file(&f).unwrap());
    }
}
