//! Remembered sha256 sums of interpreter files, so `install` and `status` do not re-read
//! ~10 MB per arch every time.
//!
//! A sum is reused only while the file's fingerprint (device, inode, size, mtime and ctime
//! in nanoseconds) is unchanged; any write or chmod moves ctime, which user space cannot
//! set back. The record lives in the cache directory as JSON; when that is not writable
//! (an unprivileged `status`), sums are simply computed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::trust::{at, TrustedDir};

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
    /// The directory the record lives in, held open: it is read and replaced relative to
    /// this handle, never through a symlink.
    dir: Option<TrustedDir>,
    records: Mutex<BTreeMap<PathBuf, Record>>,
    dirty: Mutex<bool>,
}

impl Sums {
    /// Load the record from `dir` (an unreadable or corrupt record is an empty one). A
    /// directory that is not safe by the trust rule is not used: sums are then computed
    /// every time and never saved.
    pub fn load(dir: Option<&Path>) -> Sums {
        let dir = dir.and_then(|d| match crate::trust::open_dir(d) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!(error = %e, "not recording interpreter sums there");
                None
            }
        });
        Sums::in_dir(dir)
    }

    /// As `load`, from a directory already opened by a trusted walk.
    pub fn in_dir(dir: Option<TrustedDir>) -> Sums {
        let records = dir
            .as_ref()
            .and_then(|d| at::open_regular(d.fd.as_fd(), FILE.as_ref()).ok())
            .and_then(|f| serde_json::from_reader(std::io::BufReader::new(f)).ok())
            .unwrap_or_default();
        Sums {
            dir,
            records: Mutex::new(records),
            dirty: Mutex::new(false),
        }
    }

    /// sha256 and size of `path`, from the record when its fingerprint still matches.
    pub fn sha256(&self, path: &Path) -> std::io::Result<(String, u64)> {
        let fp = Fingerprint::of(path)?;
        if let Some(sum) = self.remembered(path, &fp) {
            return Ok(sum);
        }
        let (sha256, size) = super::sha256_file(path)?;
        // Only remember it if the file did not change while we read it.
        if Fingerprint::of(path)? == fp {
            self.remember(path, fp, &sha256);
        }
        Ok((sha256, size))
    }

    /// sha256 and size of an open file (read from its start), recorded under `key` (the
    /// path it was opened by): a file checked on its handle is hashed through that handle,
    /// and the cache verifies an object before reuse without a second path lookup.
    pub fn sha256_open(&self, file: &File, key: &Path) -> std::io::Result<(String, u64)> {
        let fp = Fingerprint::from_meta(&file.metadata()?);
        if let Some(sum) = self.remembered(key, &fp) {
            return Ok(sum);
        }
        let (sha256, size) = super::sha256_read(file)?;
        if Fingerprint::from_meta(&file.metadata()?) == fp {
            self.remember(key, fp, &sha256);
        }
        Ok((sha256, size))
    }

    fn remembered(&self, key: &Path, fp: &Fingerprint) -> Option<(String, u64)> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let r = records.get(key).filter(|r| r.fingerprint == *fp)?;
        Some((r.sha256.clone(), fp.size))
    }

    fn remember(&self, key: &Path, fingerprint: Fingerprint, sha256: &str) {
        let rec = Record {
            fingerprint,
            sha256: sha256.to_string(),
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_path_buf(), rec);
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Write the record back (a new temp file + rename, both relative to the directory
    /// handle); failures only cost a re-hash next time.
    pub fn save(&self) {
        let Some(dir) = &self.dir else { return };
        if !*self.dirty.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = format!(".{FILE}.tmp-{:016x}", rand::random::<u64>());
        let written = serde_json::to_vec(&*records)
            .map_err(std::io::Error::other)
            .and_then(|b| at::create_new(dir.fd.as_fd(), tmp.as_ref(), 0o644)?.write_all(&b))
            .and_then(|()| at::rename(dir.fd.as_fd(), tmp.as_ref(), dir.fd.as_fd(), FILE.as_ref()));
        if let Err(e) = written {
            let _ = at::unlink(dir.fd.as_fd(), tmp.as_ref());
            tracing::debug!(dir = %dir.path.display(), error = %e, "could not save interpreter sums");
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
