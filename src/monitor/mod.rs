//! Exec visibility: which programs run emulated, and which execs fail with ENOEXEC, per
//! container. Reads the kernel's tracepoints through a tracefs instance of its own.
//!
//! | module    | what it holds                                                          | effects |
//! |-----------|------------------------------------------------------------------------|---------|
//! | `trace`   | trace_pipe lines -> records                                            | none    |
//! | `judge`   | "ran emulated": registered interpreter, or a foreign ELF that exec'd   | none    |
//! | `cgroup`  | /proc/PID/cgroup text -> pod UID + container ID, or systemd unit/host  | none    |
//! | `watch`   | records paired per pid -> events, over the `Procs` trait               | none    |
//! | `procfs`  | the real `Procs` (/proc/PID/cgroup, root, cwd, mem)                    | files   |
//! | `tracefs` | find/mount tracefs, the instance, stale-instance removal               | kernel  |
//! | `tally`   | the status file's tables: top emulated programs per container, recent failures | none |
//! | `ratelimit` | once per window per (kind, container, program), for Kubernetes Events | none |
//! | `cri`     | pod namespace/name from the runtime's CRI socket (ListPodSandbox)     | socket  |
//! | `run`     | the loop: events enabled, pipe read until stopped, instance removed    | all     |
//!
//! Events leave through the `Sink` trait, so the agent, metrics and Kubernetes Events can
//! consume the same stream as the `binfmtd monitor` printer.

pub mod cgroup;
pub mod cri;
pub mod judge;
pub mod procfs;
pub mod ratelimit;
pub mod run;
pub mod tally;
pub mod trace;
pub mod tracefs;
pub mod watch;

use std::path::{Path, PathBuf};

pub use run::{run, run_until, Options, Sink};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A successful exec whose program ran through a binfmt_misc interpreter.
    Emulated,
    /// An exec that failed with ENOEXEC.
    ExecFormatError,
}

/// One event, as printed by `binfmtd monitor --json-events`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub kind: Kind,
    /// The program's arch (qemu name), from the entry or the file's ELF header; for an
    /// exec-format error the file's own arch; null when unknown.
    pub arch: Option<&'static str>,
    /// The program as exec'd (in the process's own filesystem); null when it could not be read.
    pub path: Option<String>,
    /// In the host's pid namespace.
    pub pid: i32,
    pub pod_uid: Option<String>,
    /// The pod's namespace and name, from the runtime's CRI socket; null without one.
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_id: Option<String>,
    /// The systemd unit, or "host", for a process outside pods; null when the process was
    /// gone before it could be attributed.
    pub unit: Option<String>,
}

/// Why the monitor cannot run. All of these are the environment's (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("tracefs is not available at {}: {reason}. Hint: run as root in the host's mount namespace (a DaemonSet needs privileged: true and /sys from the host), or mount it (`mount -t tracefs tracefs /sys/kernel/tracing`) and pass --tracefs", path.display())]
    NoTracefs { path: PathBuf, reason: String },
    #[error("the kernel has no {event} tracepoint (looked in {}). Hint: it needs CONFIG_TRACEPOINTS and a kernel that defines it; binfmtd monitor cannot see execs without it", dir.display())]
    MissingEvent { event: &'static str, dir: PathBuf },
    #[error("cannot {what} {}: {source}{}", path.display(), hint(source))]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MonitorError {
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> MonitorError {
        MonitorError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            ". Hint: tracefs needs root of the host (CAP_SYS_ADMIN, no lockdown; an SELinux domain such as Bottlerocket's may forbid it)"
        }
        _ => "",
    }
}
