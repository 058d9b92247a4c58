//! binfmtd's own tracefs instance: find or mount tracefs, create
//! `instances/binfmtd-monitor-<pid>`, enable the events, remove it again; and remove the
//! instances of monitors that died without cleaning up (SIGKILL), on every start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::MonitorError;

pub const DEFAULT_TRACEFS: &str = "/sys/kernel/tracing";
/// Where tracefs also shows up on kernels that mount debugfs (`/sys/kernel/debug/tracing`).
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";
pub const INSTANCE_PREFIX: &str = "binfmtd-monitor-";
/// statfs f_type of tracefs.
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// The tracefs root: `wanted` if given, else /sys/kernel/tracing (mounted there if nothing
/// is), else the debugfs path.
pub fn find_or_mount(wanted: Option<&Path>) -> Result<PathBuf, MonitorError> {
    if let Some(p) = wanted {
        return if is_tracefs(p) {
            Ok(p.to_path_buf())
        } else {
            Err(MonitorError::NoTracefs {
                path: p.to_path_buf(),
                reason: "not a tracefs mount".into(),
            })
        };
    }
    let default = Path::new(DEFAULT_TRACEFS);
    if is_tracefs(default) {
        return Ok(default.to_path_buf());
    }
    let mounted = nix::mount::mount(
        Some("tracefs"),
        default,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    match mounted {
        Ok(()) => Ok(default.to_path_buf()),
        Err(_) if is_tracefs(Path::new(DEBUGFS_TRACING)) => Ok(PathBuf::from(DEBUGFS_TRACING)),
        Err(e) => Err(MonitorError::NoTracefs {
            path: default.to_path_buf(),
            reason: format!("not mounted and mounting it failed ({e})"),
        }),
    }
}

// f_type's integer type differs between libcs: keep the cast.
#[allow(clippy::unnecessary_cast)]
fn is_tracefs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 as i64 == TRACEFS_MAGIC)
}

/// Instances named by binfmtd monitors whose process is gone (pure over the names and a
/// liveness test, so the rule is testable).
pub fn stale(names: &[String], alive: impl Fn(i32) -> bool) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            n.strip_prefix(INSTANCE_PREFIX)
                .and_then(|pid| pid.parse::<i32>().ok())
                .is_some_and(|pid| !alive(pid))
        })
        .cloned()
        .collect()
}

/// A pid is a live monitor if it exists and runs binfmtd (a recycled pid of another program
/// does not keep a dead monitor's instance).
fn monitor_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "binfmtd")
}

/// Remove every stale instance; the names removed.
pub fn remove_stale(root: &Path) -> Vec<String> {
    let names: Vec<String> = fs::read_dir(root.join("instances"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let gone = stale(&names, monitor_alive);
    gone.into_iter()
        .filter(|n| remove_dir(&root.join("instances").join(n)).is_ok())
        .collect()
}

/// One instance of ours. `remove` takes it down; nothing else does (after SIGKILL the next
/// start's `remove_stale` does).
#[derive(Debug)]
pub struct Instance {
    pub dir: PathBuf,
}

impl Instance {
    pub fn create(root: &Path, pid: u32) -> Result<Instance, MonitorError> {
        let dir = root
            .join("instances")
            .join(format!("{INSTANCE_PREFIX}{pid}"));
        fs::create_dir(&dir)
            .map_err(|e| MonitorError::io("create the tracefs instance", &dir, e))?;
        Ok(Instance { dir })
    }

    pub fn has_event(&self, event: &str) -> bool {
        self.dir.join("events").join(event).join("enable").exists()
    }

    /// Enable `group/event`, with a filter set first so nothing unfiltered is recorded.
    pub fn enable(&self, event: &str, filter: Option<&str>) -> Result<(), MonitorError> {
        let dir = self.dir.join("events").join(event);
        if let Some(f) = filter {
            let p = dir.join("filter");
            fs::write(&p, f).map_err(|e| MonitorError::io("set the filter", &p, e))?;
        }
        let p = dir.join("enable");
        fs::write(&p, "1").map_err(|e| MonitorError::io("enable the event", &p, e))
    }

    pub fn pipe_path(&self) -> PathBuf {
        self.dir.join("trace_pipe")
    }

    /// Disable everything, then remove the directory (the pipe must be closed by now).
    pub fn remove(self) -> io::Result<()> {
        remove_dir(&self.dir)
    }
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    // An instance with enabled events can still be removed, but disabling first stops the
    // cost on every exec and syscall at once, even if rmdir then fails.
    let _ = fs::write(dir.join("events/enable"), "0");
    fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_monitors_instances_are_stale() {
        let names: Vec<String> = [
            "binfmtd-monitor-10",
            "binfmtd-monitor-11",
            "binfmtd-monitor-x",
            "someone-else-12",
            "binfmtd-monitor-",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(stale(&names, |pid| pid == 11), vec!["binfmtd-monitor-10"]);
    }
}
