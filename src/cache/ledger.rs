//! The ledger: every name the cache has stored in `sha256/` and `archives/`, recorded in
//! `<root>/stored.json` before the file is renamed into place. `gc` removes only names the
//! ledger lists, so whatever else sits in those directories (another program's files, or a
//! directory the cache was wrongly pointed at) is never deleted, whatever its name. A name
//! recorded whose rename never happened (a crash) is simply absent when gc comes to it. A
//! file reused after its bytes were checked against its sha256 name is recorded too.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::sync::Mutex;

use super::{io_err, CacheError, TMP_PREFIX};
use crate::trust::{at, TrustedDir};

pub(super) const FILE: &str = "stored.json";

/// Area name -> names stored there.
type Names = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug)]
pub(super) struct Ledger {
    names: Mutex<Names>,
}

impl Ledger {
    /// Read the ledger under the (locked) root. A missing one is empty; so is a corrupt
    /// one, with a warning: its files are then kept, never guessed to be ours.
    pub(super) fn load(top: &TrustedDir) -> Ledger {
        let path = top.path.join(FILE);
        let names = match at::open_regular(top.fd.as_fd(), FILE.as_ref()) {
            Ok(f) => serde_json::from_reader(std::io::BufReader::new(f)).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable ledger; gc keeps every file it does not list");
                Names::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Names::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable ledger; gc keeps every file it does not list");
                Names::new()
            }
        };
        Ledger {
            names: Mutex::new(names),
        }
    }

    pub(super) fn names(&self, area: &str) -> Vec<String> {
        let names = self.names.lock().expect("ledger lock");
        names.get(area).into_iter().flatten().cloned().collect()
    }

    /// Record `name` in `area` (and save) unless it is there already.
    pub(super) fn add(&self, top: &TrustedDir, area: &str, name: &str) -> Result<(), CacheError> {
        let mut names = self.names.lock().expect("ledger lock");
        if names
            .entry(area.to_string())
            .or_default()
            .insert(name.to_string())
        {
            save(top, &names)?;
        }
        Ok(())
    }

    /// Forget names gc removed (or found gone), and save.
    pub(super) fn remove(
        &self,
        top: &TrustedDir,
        area: &str,
        gone: &[String],
    ) -> Result<(), CacheError> {
        let mut names = self.names.lock().expect("ledger lock");
        if let Some(set) = names.get_mut(area) {
            for g in gone {
                set.remove(g);
            }
        }
        save(top, &names)
    }
}

/// Replace the ledger: a new file in the root (through its handle), renamed over the old.
fn save(top: &TrustedDir, names: &Names) -> Result<(), CacheError> {
    let tmp = OsString::from(format!("{TMP_PREFIX}{FILE}-{}", std::process::id()));
    let json = serde_json::to_vec(names).expect("the ledger serializes");
    at::replace(top.fd.as_fd(), &tmp, FILE.as_ref(), &json, 0o644)
        .map_err(io_err("write", &top.path.join(FILE)))
}
