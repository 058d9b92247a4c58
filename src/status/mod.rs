//! The status report as data: one row per format, built by a pure function from what
//! was observed, then rendered as a table or as JSON.
//!
//! JSON schema `binfmtd.status/v1` (stable: fields are only ever added; the daemon's
//! labels and health checks consume it):
//!
//! ```text
//! { "schema": "binfmtd.status/v1",
//!   "host": { "arch": "x86_64", "platform": "linux/amd64", "native": ["x86_64", "i386", "i486"],
//!             "native_unknown": { "i386": "why the native probe decided nothing" } },
//!   "binfmt_misc": { "path": "/proc/sys/fs/binfmt_misc", "available": true, "enabled": true, "error": null },
//!   "formats": [ {
//!       "arch": "aarch64", "platform": "linux/arm64", "goarch": "arm64", "debian": ["arm64"],
//!       "state": "native" | "emulated-working" | "registered-failing" | "registered-unproven"
//!                | "foreign" | "absent",
//!       "working": true,                 // native, emulated-working or foreign
//!       "owner": "binfmtd" | "foreign" | null,
//!       "entry": "binfmtd-aarch64" | null, "other_entries": ["qemu-aarch64"],
//!       "enabled": true | null, "flags": "PF" | null, "interpreter": "/path" | null,
//!       "interpreter_present": true | null,   // false: F pinned a file this mount namespace lacks
//!       "sha256": "hex" | null, "qemu_version": "7.2.0 (...)" | null,
//!       "source": "debian-trixie-qemu-user (deb https://...)" | null,  // from binfmtd's cache index
//!       "probe": { "ok": true, "argv0": "preserved"|"replaced"|"shifted"|"unexpected"|null,
//!                  "detail": "ran; argv[0] preserved", "millis": 3 } | null,
//!       "reason": null | "why it does not work", "hint": null | "what to do" } ],
//!   "summary": { "working": ["aarch64", ...], "failing": ["riscv64", ...], "unproven": ["alpha"] },
//!   "labels": { "binfmtd.io/amd64": "native", "binfmtd.io/arm64": "emulated" } }  // node labels it implies
//! ```

mod build;
mod exec;
mod render;

pub use build::{build, untrusted_entry, InterpreterFacts, Observed};
pub use exec::exec_monitor_text;
pub use render::table;

use serde::Serialize;

use crate::prover::ProbeResult;

/// The report the daemon produces after every reconcile (same type as `status --json`).
pub type Report = Status;

pub const SCHEMA: &str = "binfmtd.status/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Native,
    EmulatedWorking,
    RegisteredFailing,
    /// An entry exists but binfmtd has no probe program for this arch.
    RegisteredUnproven,
    /// Another tool's entry handles the format and passes the probe.
    Foreign,
    Absent,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Native => "native",
            State::EmulatedWorking => "emulated-working",
            State::RegisteredFailing => "registered-failing",
            State::RegisteredUnproven => "registered-unproven",
            State::Foreign => "foreign",
            State::Absent => "absent",
        }
    }

    pub fn working(self) -> bool {
        matches!(
            self,
            State::Native | State::EmulatedWorking | State::Foreign
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: &'static str,
    pub host: Host,
    pub binfmt_misc: BinfmtMiscInfo,
    pub formats: Vec<Format>,
    pub summary: Summary,
    /// The node labels this report implies (see `crate::labels`), under the default prefix
    /// unless the caller re-derives them for another.
    pub labels: crate::labels::Labels,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub arch: &'static str,
    pub platform: Option<&'static str>,
    pub native: Vec<&'static str>,
    /// Compat formats whose native probe decided nothing, with why; binfmtd registers none.
    pub native_unknown: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinfmtMiscInfo {
    pub path: String,
    pub available: bool,
    pub enabled: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Format {
    pub arch: &'static str,
    pub platform: Option<&'static str>,
    pub goarch: Option<&'static str>,
    pub debian: &'static [&'static str],
    pub state: State,
    pub working: bool,
    pub owner: Option<&'static str>,
    pub entry: Option<String>,
    pub other_entries: Vec<String>,
    pub enabled: Option<bool>,
    pub flags: Option<String>,
    pub interpreter: Option<String>,
    pub interpreter_present: Option<bool>,
    pub sha256: Option<String>,
    pub qemu_version: Option<String>,
    pub source: Option<String>,
    pub probe: Option<ProbeResult>,
    pub reason: Option<String>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub working: Vec<&'static str>,
    pub failing: Vec<&'static str>,
    /// Registered, but binfmtd has no probe program to prove them.
    pub unproven: Vec<&'static str>,
}
