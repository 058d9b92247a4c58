//! The status file: the `binfmtd.status/v1` report plus a `daemon` object, replaced
//! atomically (written beside, then renamed) so a reader never sees half a file.
//!
//! ```text
//! "daemon": { "pid": 1234, "started": "2026-01-01T00:00:00Z", "last_reconcile": "...",
//!   "interval_ms": 250, "reproof_interval_s": 600,
//!   "arches": { "aarch64": { "state": "working" | "failing" | "backoff" | "fighting" | "missing",
//!       "repairs": 2, "last_reason": "flushed" | null, "failures": 0,
//!       "retry_at": "..." | null, "fighting_with": ["qemu-aarch64"] } },
//!   "exec_monitor": { "state": "watching" | "unavailable (reason)", "exec_format_errors": "on",
//!       "bounds": {...}, "emulated_total": 3, "exec_format_errors_total": 1,
//!       "containers": [{ "pod_uid", "container_id", "unit", "emulated",
//!           "programs": [{ "path", "arch", "count", "last_seen" }], "last_seen" }],
//!       "recent_failures": [{ "at", "path", "arch", "pid", "pod_uid", "container_id",
//!           "unit", "hint" }] } }   (exec_monitor: with `run --exec-monitor` only)
//! ```

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::path::Path;

use serde::Serialize;

use crate::status::Report;
use crate::trust::{self, at};

#[derive(Debug, Clone, Serialize)]
pub struct Daemon {
    pub pid: u32,
    pub started: String,
    pub last_reconcile: Option<String>,
    pub interval_ms: u64,
    pub reproof_interval_s: u64,
    pub arches: BTreeMap<&'static str, ArchState>,
    /// `--exec-monitor` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_monitor: Option<super::exec_monitor::Report>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchState {
    pub state: &'static str,
    pub repairs: u64,
    pub last_reason: Option<&'static str>,
    pub failures: u32,
    pub retry_at: Option<String>,
    pub fighting_with: Vec<String>,
}

#[derive(Serialize)]
struct File<'a> {
    #[serde(flatten)]
    report: &'a Report,
    daemon: &'a Daemon,
}

/// Replace `path` with the report: write a temporary file beside it, fsync, rename over.
/// Held to the trust rule (src/trust.rs): the directory is walked and created on checked
/// handles, and the temporary file is created new (never an existing name, never through a
/// symlink) and renamed within that handle, so a symlink planted beside the status file
/// cannot point root's write at another file.
pub fn write(path: &Path, report: &Report, daemon: &Daemon) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(&File { report, daemon })?;
    text.push(b'\n');
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::other(format!(
            "{}: not a file path",
            path.display()
        )));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = trust::ensure_dir(parent, 0o755).map_err(std::io::Error::other)?;
    at::replace(dir.fd.as_fd(), &tmp_name(name), name, &text, 0o644)
}

/// The `daemon` object of the status file at `path`, when the agent that wrote it still runs
/// (its pid is alive and is a binfmtd): `binfmtd status` adds it to the live view.
pub fn fresh_daemon(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    let daemon = file.get("daemon")?.clone();
    let pid = daemon.get("pid")?.as_u64()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "binfmtd").then_some(daemon)
}

fn tmp_name(name: &OsStr) -> OsString {
    let mut tmp = name.to_os_string();
    tmp.push(".tmp");
    tmp
}

#[cfg(test)]
mod tests;
