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

/// What identifies one version of a file's contents (any write or chmod moves ctime).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Fingerprint {
    pub fn of(file: &File) -> std::io::Result<Fingerprint> {
        let m = file.metadata()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
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
        self.sha256_of(path, &File::open(path)?)
    }

    /// As `sha256`, for a file opened (and checked) by the trust rule: fingerprinted and
    /// read through its handle, remembered under the path the walk resolved.
    pub fn sha256_open(&self, tf: &crate::trust::TrustedFile) -> std::io::Result<(String, u64)> {
        self.sha256_of(&tf.path, &tf.file)
    }

    /// The remembered sum of `file` (known as `path`) if its fingerprint still matches.
    pub fn known(&self, path: &Path, file: &File) -> Option<String> {
        let fp = Fingerprint::of(file).ok()?;
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let r = records.get(path)?;
        (r.fingerprint == fp).then(|| r.sha256.clone())
    }

    /// Remember that `file` (known as `path`) has this sum, if it is unchanged since
    /// `before` was taken.
    pub fn remember(&self, path: &Path, file: &File, before: &Fingerprint, sha256: &str) {
        if Fingerprint::of(file).ok().as_ref() != Some(before) {
            return;
        }
        let rec = Record {
            fingerprint: before.clone(),
            sha256: sha256.to_string(),
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), rec);
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    fn sha256_of(&self, path: &Path, file: &File) -> std::io::Result<(String, u64)> {
        let fp = Fingerprint::of(file)?;
        if let Some(sha) = self.known(path, file) {
            return Ok((sha, fp.size));
        }
        let (sha256, size) = super::checks::sha256_read(file)?;
        // Only remember it if the file did not change while we read it.
        self.remember(path, file, &fp, &sha256);
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
