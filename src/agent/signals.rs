//! Signals without handlers: SIGTERM, SIGINT and SIGHUP are blocked in every thread (the
//! mask is set before any thread starts and inherited), and the loop's sleep is a
//! `sigtimedwait`, so a signal ends the sleep at once and nothing runs in signal context.
//! Children get a clean mask: std resets it before exec.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Reload,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the signals the loop waits for. Call before any thread starts.
pub fn block() -> std::io::Result<()> {
    let set = set();
    // SAFETY: a valid set; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Sleep up to `timeout`, returning early with the first signal that arrives.
pub fn wait(timeout: Duration) -> Option<Signal> {
    let set = set();
    // `as _`: time_t's width differs between libcs (and naming it is deprecated on musl);
    // an hour bounds the value for any of them.
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(3600) as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid set and timespec; siginfo is not needed.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    match sig {
        libc::SIGTERM | libc::SIGINT => Some(Signal::Terminate),
        libc::SIGHUP => Some(Signal::Reload),
        _ => None,
    }
}
