//! The index: for each arch, which interpreter object is current and where it came from.
//! `status` reads it to show the qemu version and source; `gc` keeps what it references.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, Cache, CacheError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IndexEntry {
    /// qemu arch name (`riscv64`).
    pub arch: String,
    pub sha256: String,
    pub path: PathBuf,
    pub size: u64,
    /// Human description of the source (`status` shows it).
    pub source: String,
    /// The URL the bytes came from, for downloaded sources.
    pub url: Option<String>,
    /// sha256 of the archive the member was extracted from, if any.
    pub archive_sha256: Option<String>,
    /// `qemu-x --version`'s version, when it could be read.
    pub version: Option<String>,
}

impl Cache {
    fn index_path(&self, arch: &str) -> PathBuf {
        self.root.join("index").join(format!("{arch}.json"))
    }

    /// Every readable index entry, sorted by arch.
    pub fn index(&self) -> Result<Vec<IndexEntry>, CacheError> {
        read_index(&self.root)
    }

    pub fn index_entry(&self, arch: &str) -> Option<IndexEntry> {
        let bytes = fs::read(self.index_path(arch)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Replace an arch's entry atomically (temp + fsync + rename + dir fsync).
    pub fn write_index(&self, entry: &IndexEntry) -> Result<(), CacheError> {
        let mut t = self.temp("index")?;
        let json = serde_json::to_vec_pretty(entry).expect("index entries serialize");
        t.file.write_all(&json).map_err(io_err("write", &t.path))?;
        self.seal(&t, 0o644)?;
        self.commit(t, &self.index_path(&entry.arch))
    }

    pub fn remove_index(&self, arch: &str) -> Result<(), CacheError> {
        let path = self.index_path(arch);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }
}

/// Every readable index entry under a cache root, sorted by arch, without taking the
/// cache lock (entries are replaced by rename, so a reader never sees half of one): what
/// `status` calls while an install may be running. An unreadable entry is skipped with a
/// warning; the next provision rewrites it.
pub fn read_index(root: &Path) -> Result<Vec<IndexEntry>, CacheError> {
    let dir = root.join("index");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        other => other.map_err(io_err("list", &dir))?,
    };
    for e in entries {
        let path = e.map_err(io_err("list", &dir))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match fs::read(&path).map(|b| serde_json::from_slice::<IndexEntry>(&b)) {
            Ok(Ok(entry)) => out.push(entry),
            Ok(Err(err)) => {
                tracing::warn!(path = %path.display(), %err, "ignoring unreadable index entry")
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "ignoring unreadable index entry")
            }
        }
    }
    out.sort_by(|a, b| a.arch.cmp(&b.arch));
    Ok(out)
}
