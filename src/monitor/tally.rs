//! What the status file shows of the exec stream: the most-run emulated programs per
//! container and the recent exec-format failures, each with the hint `binfmtd explain`
//! gives for such a file. Pure: events and the time in, a bounded table out.
//!
//! Bounds (the table never grows past them, whatever the node runs):
//! - `CONTAINERS_MAX` containers (pods' containers, systemd units, `host`); a new one
//!   replaces the one quiet the longest.
//! - `PROGRAMS_MAX` programs per container; a new one replaces the least-run (ties: the
//!   one seen longest ago), so a program run often stays listed.
//! - `FAILURES_MAX` failures, the newest kept.
//!
//! With paths capped at PATH_MAX (4096 bytes), that is at most
//! (64 x 16 + 32) x ~4.2 KB, about 4.5 MB, and in practice a few KB.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Event, Kind};
use crate::explain::verdict::Problem;

pub const CONTAINERS_MAX: usize = 64;
pub const PROGRAMS_MAX: usize = 16;
pub const FAILURES_MAX: usize = 32;

/// Who ran it, as the status file and `binfmtd status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    pub pod_uid: Option<String>,
    /// From the runtime's CRI socket; null without one (or before it answered).
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_id: Option<String>,
    /// The systemd unit or "host" outside pods; null when the process was gone.
    pub unit: Option<String>,
}

impl Who {
    pub fn of(e: &Event) -> Who {
        Who {
            pod_uid: e.pod_uid.clone(),
            pod_namespace: e.pod_namespace.clone(),
            pod_name: e.pod_name.clone(),
            container_id: e.container_id.clone(),
            unit: e.unit.clone(),
        }
    }

    /// The owner of `e`'s process, compared without copying (every emulated exec asks). The
    /// pod's name may be learnt later, so it is not compared.
    fn owns(&self, e: &Event) -> bool {
        (&self.pod_uid, &self.container_id, &self.unit) == (&e.pod_uid, &e.container_id, &e.unit)
    }

    /// `namespace/name` when the runtime named the pod, else its UID.
    fn pod(&self, uid: &str) -> String {
        match (&self.pod_namespace, &self.pod_name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            _ => uid.to_string(),
        }
    }

    /// `pod shop/web-0 container 9b1e2a3c4d5e` (`pod 2f0c...` without a CRI socket),
    /// `kubelet.service`, `host`, `unknown`.
    pub fn describe(&self) -> String {
        match (&self.pod_uid, &self.container_id, &self.unit) {
            (Some(p), Some(c), _) => {
                format!("pod {} container {}", self.pod(p), &c[..12.min(c.len())])
            }
            (Some(p), None, _) => format!("pod {}", self.pod(p)),
            (None, _, Some(u)) => u.clone(),
            (None, _, None) => "unknown (exited before attribution)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Program {
    pub path: String,
    pub arch: Option<&'static str>,
    pub count: u64,
    /// Unix seconds.
    pub last_seen: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    #[serde(flatten)]
    pub who: Who,
    /// Emulated execs counted here, also of programs no longer listed.
    pub emulated: u64,
    /// Most-run first.
    pub programs: Vec<Program>,
    pub last_seen: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Unix seconds.
    pub at: u64,
    pub path: Option<String>,
    /// The file's own arch from its ELF header; null when not an ELF of a known arch or
    /// unreadable.
    pub arch: Option<&'static str>,
    pub pid: i32,
    #[serde(flatten)]
    pub who: Who,
    pub hint: String,
}

/// The arches this machine's CPU runs itself (qemu names), as the hints name them.
pub fn native_here() -> Vec<&'static str> {
    crate::explain::verdict::Node::default_native(crate::arch::host())
        .iter()
        .map(|a| a.qemu)
        .collect()
}

/// The aggregate; `record` each event, `view` for the status file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The instance the hints name.
    binfmt_misc: PathBuf,
    /// Arches this CPU runs itself (qemu names).
    native: Vec<&'static str>,
    /// Most recently active last.
    pub containers: Vec<Container>,
    /// Oldest first.
    pub failures: VecDeque<Failure>,
    pub emulated_total: u64,
    pub failures_total: u64,
}

impl Tally {
    pub fn new(binfmt_misc: &Path, native: Vec<&'static str>) -> Tally {
        Tally {
            binfmt_misc: binfmt_misc.to_path_buf(),
            native,
            ..Tally::default()
        }
    }

    /// Count one event seen at `now` (unix seconds).
    pub fn record(&mut self, e: &Event, now: u64) {
        match e.kind {
            Kind::Emulated => self.emulated(e, now),
            Kind::ExecFormatError => {
                self.failures_total += 1;
                if self.failures.len() == FAILURES_MAX {
                    self.failures.pop_front();
                }
                self.failures.push_back(Failure {
                    at: now,
                    path: e.path.clone(),
                    arch: e.arch,
                    pid: e.pid,
                    who: Who::of(e),
                    hint: hint(e.arch, e.path.as_deref(), &self.native, &self.binfmt_misc),
                });
            }
        }
    }

    fn emulated(&mut self, e: &Event, now: u64) {
        self.emulated_total += 1;
        let i = match self.containers.iter().position(|c| c.who.owns(e)) {
            Some(i) => {
                // The pod's name, learnt later than its UID (or renamed with a new sandbox).
                let who = &mut self.containers[i].who;
                if e.pod_name.is_some()
                    && (who.pod_name != e.pod_name || who.pod_namespace != e.pod_namespace)
                {
                    *who = Who::of(e);
                }
                i
            }
            None => {
                if self.containers.len() == CONTAINERS_MAX {
                    let quiet = (0..self.containers.len())
                        .min_by_key(|&i| self.containers[i].last_seen)
                        .unwrap_or(0);
                    self.containers.remove(quiet);
                }
                self.containers.push(Container {
                    who: Who::of(e),
                    emulated: 0,
                    programs: Vec::new(),
                    last_seen: now,
                });
                self.containers.len() - 1
            }
        };
        let c = &mut self.containers[i];
        c.emulated += 1;
        c.last_seen = now;
        let path = e.path.as_deref().unwrap_or("(path unknown)");
        match c.programs.iter_mut().find(|p| p.path == path) {
            Some(p) => {
                p.count += 1;
                p.last_seen = now;
                p.arch = e.arch.or(p.arch);
            }
            None => {
                if c.programs.len() == PROGRAMS_MAX {
                    let least = (0..c.programs.len())
                        .min_by_key(|&i| (c.programs[i].count, c.programs[i].last_seen))
                        .unwrap_or(0);
                    c.programs.remove(least);
                }
                c.programs.push(Program {
                    path: path.to_string(),
                    arch: e.arch,
                    count: 1,
                    last_seen: now,
                });
            }
        }
        // Most-run first, so the view is the table as kept.
        c.programs
            .sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
    }

    /// The table for the status file: containers most emulated first, failures newest first.
    pub fn view(&self) -> View {
        let mut containers = self.containers.clone();
        containers.sort_by(|a, b| {
            b.emulated
                .cmp(&a.emulated)
                .then(b.last_seen.cmp(&a.last_seen))
        });
        View {
            bounds: Bounds {
                containers: CONTAINERS_MAX,
                programs_per_container: PROGRAMS_MAX,
                failures: FAILURES_MAX,
            },
            emulated_total: self.emulated_total,
            exec_format_errors_total: self.failures_total,
            containers,
            recent_failures: self.failures.iter().rev().cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub containers: usize,
    pub programs_per_container: usize,
    pub failures: usize,
}

/// The `exec_monitor` tables of the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub bounds: Bounds,
    pub emulated_total: u64,
    pub exec_format_errors_total: u64,
    pub containers: Vec<Container>,
    pub recent_failures: Vec<Failure>,
}

/// What `binfmtd explain` says of a file the kernel refused with ENOEXEC: a known foreign
/// arch has no enabled entry (its fix); a native one is damaged; anything else is no
/// program for a CPU binfmtd knows.
pub fn hint(
    arch: Option<&'static str>,
    path: Option<&str>,
    native: &[&'static str],
    binfmt_misc: &Path,
) -> String {
    let path = path.unwrap_or("PATH");
    match arch {
        Some(a) if native.contains(&a) => format!(
            "a program for this CPU ({a}) that the kernel still refused: a truncated or damaged \
             file? `binfmtd explain --root /proc/PID/root {path}` tells what is wrong with it"
        ),
        Some(a) => Problem::NoEmulator {
            arch: a.to_string(),
            binfmt_misc: binfmt_misc.to_path_buf(),
            disabled: Vec::new(),
        }
        .to_string(),
        None => format!(
            "not an ELF program of a CPU binfmtd knows, nor a #! script (or it could not be read): \
             check what was downloaded; `binfmtd explain --root /proc/PID/root {path}` tells what it is"
        ),
    }
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
