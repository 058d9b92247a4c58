//! Trace records in, events out: the pairing of records per pid and the judgement, over a
//! `Procs` trait so tests hand in their own /proc.

use std::collections::HashMap;

use super::cgroup::{self, Owner};
use super::judge::{self, Verdict};
use super::trace::Record;
use super::{Event, Kind};
use crate::arch::Arch;
use crate::entry::Entry;

/// What the monitor reads about a live process. Each returns None once the process is gone.
pub trait Procs {
    /// The text of /proc/PID/cgroup.
    fn cgroup(&self, pid: i32) -> Option<String>;
    /// The first bytes of `filename` as the process sees it (its root and cwd).
    fn header(&self, pid: i32, filename: &str) -> Option<Vec<u8>>;
    /// A NUL-terminated string at `addr` in the process's memory.
    fn string_at(&self, pid: i32, addr: u64) -> Option<String>;
}

/// Records seen but not yet paired. Bounded: a pid whose second record never comes (the
/// process died, or records were lost) must not grow the maps forever.
const PENDING_MAX: usize = 4096;

/// The monitor's state between records.
pub struct Watch {
    entries: Vec<Entry>,
    native: Vec<&'static Arch>,
    /// pid -> interp from sched_prepare_exec, until its sched_process_exec.
    interp: HashMap<i32, String>,
    /// pid -> filename address from sys_enter_execve, until its sys_exit_execve.
    filename_addr: HashMap<i32, u64>,
}

impl Watch {
    pub fn new(entries: Vec<Entry>, native: Vec<&'static Arch>) -> Watch {
        Watch {
            entries,
            native,
            interp: HashMap::new(),
            filename_addr: HashMap::new(),
        }
    }

    /// The watched instance's entries changed (re-read by the caller now and then).
    pub fn set_entries(&mut self, entries: Vec<Entry>) {
        self.entries = entries;
    }

    /// Feed one record; an event when it completes one.
    pub fn feed(&mut self, record: Record, procs: &dyn Procs) -> Option<Event> {
        match record {
            Record::Prepare { pid, interp, .. } => {
                bounded_insert(&mut self.interp, pid, interp);
                None
            }
            Record::Enter { pid, filename_addr } => {
                bounded_insert(&mut self.filename_addr, pid, filename_addr);
                None
            }
            Record::Exec {
                pid,
                old_pid,
                filename,
            } => {
                self.filename_addr.remove(&old_pid);
                let interp = self.interp.remove(&old_pid);
                self.exec(pid, filename, interp.as_deref(), procs)
            }
            Record::ExecFormatError { pid } => {
                let path = self
                    .filename_addr
                    .remove(&pid)
                    .and_then(|addr| procs.string_at(pid, addr));
                // The file's own arch, for the status file's hint (null: not a known ELF).
                let arch = path
                    .as_deref()
                    .and_then(|p| procs.header(pid, p))
                    .and_then(|h| crate::arch::from_header(&h));
                Some(event(Kind::ExecFormatError, arch, path, pid, procs))
            }
        }
    }

    fn exec(
        &self,
        pid: i32,
        filename: String,
        interp: Option<&str>,
        procs: &dyn Procs,
    ) -> Option<Event> {
        let verdict = match judge::from_interp(&filename, interp, &self.entries) {
            Verdict::NeedHeader => judge::from_header(&procs.header(pid, &filename)?, &self.native),
            v => v,
        };
        match verdict {
            Verdict::Emulated(arch) => {
                Some(event(Kind::Emulated, arch, Some(filename), pid, procs))
            }
            _ => None,
        }
    }
}

fn bounded_insert<V>(map: &mut HashMap<i32, V>, pid: i32, value: V) {
    if map.len() >= PENDING_MAX {
        map.clear();
    }
    map.insert(pid, value);
}

fn event(
    kind: Kind,
    arch: Option<&'static Arch>,
    path: Option<String>,
    pid: i32,
    procs: &dyn Procs,
) -> Event {
    // A process gone before we looked cannot be attributed: all three stay null.
    let owner = procs
        .cgroup(pid)
        .map(|text| cgroup::owner(&text))
        .unwrap_or_default();
    let Owner {
        pod_uid,
        container_id,
        unit,
    } = owner;
    Event {
        kind,
        arch: arch.map(|a| a.qemu),
        path,
        pid,
        pod_uid,
        pod_namespace: None,
        pod_name: None,
        container_id,
        unit,
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
