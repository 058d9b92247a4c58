//! Running a child process with a deadline: the one wait loop that probes, `--version`
//! queries and the supply chain share.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The exit status, or None after killing (and reaping) a child that ran too long. With
/// `own_group`, the child leads its own process group and the whole group is killed when
/// the child ends or times out, so nothing it started outlives it.
pub fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    own_group: bool,
) -> io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        // Not reaped yet: until `wait` the pid (and so the group id) cannot be reused, so
        // the group kill below reaches only what this child started.
        let exited = has_exited(child)?;
        let elapsed = start.elapsed();
        if exited || elapsed >= timeout {
            if own_group {
                // SAFETY: kill(2) with a negative pid signals that group; no memory involved.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            }
            if exited {
                return child.wait().map(Some);
            }
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        sleep(nap.min(timeout - elapsed));
        nap = (nap * 2).min(Duration::from_millis(25));
    }
}

/// Has the child exited? Leaves it a zombie (WNOWAIT) for `Child::wait` to reap.
fn has_exited(child: &Child) -> io::Result<bool> {
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid, which only writes it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid on our own child's pid with a valid siginfo_t pointer.
    let r = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info`; si_pid is 0 when no child has changed state.
    Ok(unsafe { info.si_pid() } != 0)
}

/// A command's stdout (at most 64 KiB) if it exits 0 within `timeout`; None otherwise.
///
/// The child leads its own process group, killed when the child ends: a grandchild it
/// left holding stdout would otherwise keep the pipe open and the read waiting long past
/// the deadline.
pub fn stdout_within(cmd: &mut Command, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    // Read on a thread: a child that fills the pipe would otherwise block before it exits.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.take(64 * 1024).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let status = wait_with_timeout(&mut child, timeout, true).ok()??;
    // A process that left the group (setsid) may still hold the pipe: stop at the deadline.
    let out = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()?;
    status.success().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--version` child that forks a sleeping grandchild holding stdout, then exits.
    #[test]
    fn a_grandchild_holding_stdout_does_not_outlast_the_deadline() {
        let start = Instant::now();
        let out = stdout_within(
            Command::new("sh").args(["-c", "sleep 20 & echo \"$!\"; echo version 1"]),
            Duration::from_secs(3),
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited {:?} for a grandchild's pipe",
            start.elapsed()
        );
        let out = String::from_utf8(out.expect("the child exited 0")).unwrap();
        assert!(out.ends_with("version 1\n"), "{out:?}");
        let pid: i32 = out.lines().next().unwrap().parse().unwrap();
        // SAFETY: signal 0 only checks existence.
        let gone = (0..100).any(|_| {
            let dead = unsafe { libc::kill(pid, 0) } != 0
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "));
            dead || {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        });
        assert!(gone, "grandchild {pid} still runs");
    }

    #[test]
    fn a_child_past_the_deadline_is_killed_with_its_group() {
        let start = Instant::now();
        let out = stdout_within(
            Command::new("sh").args(["-c", "sleep 20 & sleep 20"]),
            Duration::from_millis(300),
        );
        assert_eq!(out, None);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
