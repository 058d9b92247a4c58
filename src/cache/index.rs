//! The index: for each arch, which interpreter object is current and where it came from.
//! `status` reads it to show the qemu version and source; `gc` keeps what it references.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, Cache, CacheError};
use crate::trust::at;

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
    fn index_name(arch: &str) -> String {
        format!("{arch}.json")
    }

    /// Every readable index entry, sorted by arch.
    pub fn index(&self) -> Result<Vec<IndexEntry>, CacheError> {
        let dir = self.area("index")?;
        read_entries(&dir.fd, &dir.path)
    }

    pub fn index_entry(&self, arch: &str) -> Option<IndexEntry> {
        let dir = self.area("index").ok()?;
        read_entry(dir.fd.as_fd(), Self::index_name(arch).as_ref()).ok()
    }

    /// Replace an arch's entry atomically (temp + fsync + rename + dir fsync).
    pub fn write_index(&self, entry: &IndexEntry) -> Result<(), CacheError> {
        let mut t = self.temp("index")?;
        let json = serde_json::to_vec_pretty(entry).expect("index entries serialize");
        t.file.write_all(&json).map_err(io_err("write", &t.path))?;
        self.seal(&t, 0o644)?;
        let dest = self.area("index")?.path.join(Self::index_name(&entry.arch));
        self.commit(t, &dest)
    }

    pub fn remove_index(&self, arch: &str) -> Result<(), CacheError> {
        let dir = self.area("index")?;
        let name = Self::index_name(arch);
        match at::unlink(dir.fd.as_fd(), name.as_ref()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove", &dir.path.join(name))(e))
            }
            _ => Ok(()),
        }
    }
}

/// Every readable index entry under a cache root, sorted by arch, without taking the
/// cache lock (entries are replaced by rename, so a reader never sees half of one): what
/// `status` calls while an install may be running. An unreadable entry is skipped with a
/// warning; the next provision rewrites it. Nothing is read through a symlink.
pub fn read_index(root: &Path) -> Result<Vec<IndexEntry>, CacheError> {
    let path = root.join("index");
    let top = match File::open(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io_err("open", root))?,
    };
    match at::open_dir_fd(top.as_fd(), "index".as_ref()) {
        Err(nix::Error::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(io_err("open", &path)(e.into())),
        Ok(dir) => read_entries(&dir, &path),
    }
}

fn read_entries(dir: &OwnedFd, path: &Path) -> Result<Vec<IndexEntry>, CacheError> {
    let mut out = Vec::new();
    for name in at::list(dir).map_err(io_err("list", path))? {
        if Path::new(&name).extension().is_none_or(|x| x != "json") {
            continue;
        }
        match read_entry(dir.as_fd(), &name) {
            Ok(entry) => out.push(entry),
            Err(err) => {
                tracing::warn!(path = %path.join(&name).display(), %err, "ignoring unreadable index entry")
            }
        }
    }
    out.sort_by(|a, b| a.arch.cmp(&b.arch));
    Ok(out)
}

fn read_entry(dir: BorrowedFd, name: &OsStr) -> std::io::Result<IndexEntry> {
    let f = at::open_regular(dir, name)?;
    Ok(serde_json::from_reader(std::io::BufReader::new(f))?)
}
