//! Node labels as data: which labels a status report implies, and the one JSON merge patch
//! that turns a node's current labels into them. Pure: no clock, no I/O.
//!
//! Scheme: `<prefix>/<arch>` = `native` | `emulated` for every format the node runs, where
//! `<arch>` is the Kubernetes/GOARCH name when the arch has one (`amd64`, `arm64`, `386`, ...)
//! and the qemu name otherwise (`i486`, `sparc64`). `emulated` means the probe passed
//! (binfmtd's own entry or a working foreign one). A format that does not work has no label,
//! so one nodeAffinity term `<prefix>/amd64 In [native, emulated]` selects every node that can
//! run an amd64 image. Keys under the prefix that are not desired are deleted; keys outside
//! it are never touched.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::status::{Format, State};

/// The prefix used when `--label-prefix` is not given.
pub const DEFAULT_PREFIX: &str = "binfmtd.io";

/// Label key -> value, ordered so patches and files are stable byte for byte.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("label prefix '{prefix}' is not a DNS subdomain: {why} (example: binfmtd.io or emulation.example.com)")]
    BadPrefix { prefix: String, why: String },
    #[error("label prefix '{0}' is reserved for Kubernetes itself (the NodeRestriction admission plugin refuses kubelet credentials there); use a domain you own, such as binfmtd.io")]
    ReservedPrefix(String),
}

/// A validated label prefix (a DNS subdomain outside kubernetes.io and k8s.io).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Default for Prefix {
    fn default() -> Self {
        Prefix(DEFAULT_PREFIX.to_string())
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Prefix {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, LabelError> {
        Prefix::parse(s)
    }
}

impl Prefix {
    /// Validate a prefix the way the API server validates the prefix of a label key
    /// (RFC 1123 subdomain: at most 253 characters, dot-separated lowercase alphanumeric
    /// words that may contain `-` inside).
    pub fn parse(s: &str) -> Result<Prefix, LabelError> {
        let bad = |why: &str| LabelError::BadPrefix {
            prefix: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > 253 {
            return Err(bad("it is longer than 253 characters"));
        }
        for word in s.split('.') {
            if word.is_empty() {
                return Err(bad("it has an empty part between dots"));
            }
            if word.len() > 63 {
                return Err(bad("a part between dots is longer than 63 characters"));
            }
            let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if !word.chars().all(ok_char) {
                return Err(bad(
                    "only lowercase letters, digits, '-' and '.' are allowed",
                ));
            }
            if word.starts_with('-') || word.ends_with('-') {
                return Err(bad("a part between dots starts or ends with '-'"));
            }
        }
        let reserved = ["kubernetes.io", "k8s.io"];
        if reserved
            .iter()
            .any(|r| s == *r || s.ends_with(&format!(".{r}")))
        {
            return Err(LabelError::ReservedPrefix(s.to_string()));
        }
        Ok(Prefix(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a label key lies under this prefix (and so is binfmtd's to set or delete).
    pub fn owns(&self, key: &str) -> bool {
        key.strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

/// Whether `name` is valid as the name part of a label key, or as a label value when
/// non-empty: at most 63 characters, alphanumeric at both ends, `-`, `_`, `.` inside.
pub fn valid_name(name: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(inner)
}

/// The name an arch's label carries: its GOARCH name when it has one, else the qemu name.
pub fn arch_name(f: &Format) -> &'static str {
    f.goarch.unwrap_or(f.arch)
}

/// `native`, `emulated`, or nothing for a format that does not run here.
pub fn value(state: State) -> Option<&'static str> {
    match state {
        State::Native => Some("native"),
        State::EmulatedWorking | State::Foreign => Some("emulated"),
        State::RegisteredFailing | State::RegisteredUnproven | State::Absent => None,
    }
}

/// The labels a node with these formats should carry.
pub fn desired(formats: &[Format], prefix: &Prefix) -> Labels {
    formats
        .iter()
        .filter_map(|f| value(f.state).map(|v| (prefix.key(arch_name(f)), v.to_string())))
        .collect()
}

/// The JSON merge patch (`application/merge-patch+json`) that makes `current` carry
/// `desired` under `prefix`: changed or missing keys set, keys under the prefix that are
/// not desired set to null (deleted). Keys outside the prefix are left out of the patch, so
/// the server keeps them as they are. `None` when nothing differs: no write at all.
pub fn merge_patch(current: &Labels, desired: &Labels, prefix: &Prefix) -> Option<Value> {
    let mut changes = Map::new();
    for (k, v) in desired {
        if prefix.owns(k) && current.get(k) != Some(v) {
            changes.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for k in current.keys() {
        if prefix.owns(k) && !desired.contains_key(k) {
            changes.insert(k.clone(), Value::Null);
        }
    }
    if changes.is_empty() {
        return None;
    }
    Some(json!({ "metadata": { "labels": changes } }))
}

/// The labels under `prefix` among a node's labels: what binfmtd published before.
pub fn owned(current: &Labels, prefix: &Prefix) -> Labels {
    current
        .iter()
        .filter(|(k, _)| prefix.owns(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
