//! NFD mode: the same facts as the node labels, written as a Node Feature Discovery
//! local-source feature file, for clusters that run NFD and want binfmtd without RBAC.
//!
//! NFD reads every file in `features.d` (dot-files excepted) at each rediscovery (60 s by
//! default), one `name=value` per line, and labels the node with them. binfmtd writes
//! `.binfmtd`, then renames it to `binfmtd`, so NFD never reads half a file. An
//! `# +expiry-time=` line makes the facts lapse if binfmtd dies: the file is rewritten
//! before half its lifetime has passed, and at once whenever the facts change. Facts that
//! stopped being true are simply not in the next file; with none left the file is removed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::labels::{Labels, Prefix};
use crate::timefmt::rfc3339;

pub const DEFAULT_DIR: &str = "/etc/kubernetes/node-feature-discovery/features.d";
/// The feature file's name in the directory (NFD ignores names starting with a dot).
pub const FILE_NAME: &str = "binfmtd";
/// How long NFD keeps the facts after the last rewrite.
pub const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum NfdError {
    #[error("--node-labels and --nfd-features-dir would both publish the labels under {prefix}/ on this node (binfmtd through the API, nfd-master from {dir}); the two would fight over the same keys. Use one: --nfd-features-dir needs no RBAC, --node-labels needs `get` and `patch` on nodes")]
    BothModes { prefix: String, dir: String },
    #[error("cannot write NFD feature file {path}: {action}: {source}. Hint: the directory must be NFD's features.d on the host (mount it into the pod as a hostPath)")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

/// Refuse publishing the same keys two ways. Every key binfmtd publishes is under the one
/// `--label-prefix`, so the two modes always overlap.
pub fn check_modes(
    node_labels: bool,
    nfd_dir: Option<&Path>,
    prefix: &Prefix,
) -> Result<(), NfdError> {
    match nfd_dir {
        Some(dir) if node_labels => Err(NfdError::BothModes {
            prefix: prefix.to_string(),
            dir: dir.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// The file's text: a comment, the expiry, then one `key=value` per label, sorted.
pub fn render(labels: &Labels, expires: SystemTime) -> String {
    let mut out = String::from(
        "# Written by binfmtd: the CPU architectures this node runs (native) or emulates.\n\
         # Rewritten on every change; the facts lapse at the expiry if binfmtd stops.\n",
    );
    out.push_str(&format!("# +expiry-time={}\n", rfc3339(expires)));
    for (k, v) in labels {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// Writes the feature file, only when the facts changed or the expiry is getting close.
#[derive(Debug)]
pub struct FeatureFile {
    dir: PathBuf,
    last: Option<(Labels, SystemTime)>,
}

impl FeatureFile {
    pub fn new(dir: impl Into<PathBuf>) -> FeatureFile {
        FeatureFile {
            dir: dir.into(),
            last: None,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Whether `labels` at `now` need a write: first call, changed facts, or half the
    /// lifetime gone.
    pub fn due(&self, labels: &Labels, now: SystemTime) -> bool {
        match &self.last {
            None => true,
            Some((l, at)) => l != labels || now.duration_since(*at).unwrap_or_default() >= TTL / 2,
        }
    }

    /// Bring the file in line with `labels`; returns whether it wrote. No facts: no file.
    pub fn update(&mut self, labels: &Labels, now: SystemTime) -> Result<bool, NfdError> {
        if !self.due(labels, now) {
            return Ok(false);
        }
        let path = self.path();
        if labels.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io(&path, "remove", source)),
            }
        } else {
            write_atomic(&self.dir, &render(labels, now + TTL))?;
        }
        self.last = Some((labels.clone(), now));
        Ok(true)
    }
}

fn io(path: &Path, action: &'static str, source: std::io::Error) -> NfdError {
    NfdError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// `.binfmtd` written and synced, then renamed over `binfmtd`: a reader sees the old file
/// or the new one. O_NOFOLLOW: a symlink planted at the temporary name is not followed.
fn write_atomic(dir: &Path, text: &str) -> Result<(), NfdError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, "create the directory", e))?;
    let tmp = dir.join(format!(".{FILE_NAME}"));
    let dest = dir.join(FILE_NAME);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| io(&tmp, "create", e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, "write", e))?;
    std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, "rename into place", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[path = "nfd_tests.rs"]
mod tests;
