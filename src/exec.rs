//! Running a child process with a deadline: the one wait loop that probes, `--version`
//! queries and the supply chain share.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The exit status, or None after killing (and reaping) a child that ran too long. With
/// `own_group`, the child leads its own process group and the whole group is killed, so
/// nothing it started outlives the timeout.
pub fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    own_group: bool,
) -> io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            if own_group {
                // SAFETY: kill(2) with a negative pid signals that group; no memory involved.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            }
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        sleep(nap.min(timeout - elapsed));
        nap = (nap * 2).min(Duration::from_millis(25));
    }
}

/// A command's stdout (at most 64 KiB) if it exits 0 within `timeout`; None otherwise.
pub fn stdout_within(cmd: &mut Command, timeout: Duration) -> Option<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    // Read on a thread: a child that fills the pipe would otherwise block before it exits.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let status = wait_with_timeout(&mut child, timeout, false).ok()??;
    let out = reader.join().ok()?;
    status.success().then_some(out)
}
