//! The monitor's loop: set up the instance, read its trace_pipe until stopped, and
//! take the instance down again whatever happened in between.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

use super::procfs::ProcFs;
use super::trace::parse_line;
use super::tracefs::{self, Instance};
use super::watch::Watch;
use super::{Event, MonitorError};
use crate::explain::verdict::Node;
use crate::kernel::{BinfmtFs, BinfmtMisc};

/// How often the watched binfmt_misc instance's entries are re-read.
const ENTRIES_EVERY: Duration = Duration::from_secs(5);
/// After a read that found records, wait this long before the next: tracefs wakes a reader
/// on every record, and two wake-ups per exec would cost a busy node more CPU than the
/// parsing. Bounded so a short-lived process can mostly still be attributed.
const BATCH: Duration = Duration::from_millis(25);
/// ENOEXEC watch: sys_exit_* filtered to -ENOEXEC, sys_enter_* for the filename's address.
const SYSCALLS: [&str; 2] = ["execve", "execveat"];

#[derive(Debug, Clone)]
pub struct Options {
    /// tracefs root; None: find or mount it.
    pub tracefs: Option<PathBuf>,
    /// The binfmt_misc instance whose interpreters mark an exec as emulated.
    pub binfmt_misc: PathBuf,
    /// Watch for ENOEXEC. Its syscall tracepoints put every thread of the node on the slow
    /// syscall path (see BENCHMARKS.md), so it can be switched off alone.
    pub exec_format_errors: bool,
    /// The runtime's CRI socket, to name pods (namespace/name); None: pod UIDs only.
    pub cri_socket: Option<PathBuf>,
}

/// What the monitor watches, reported once it is watching.
#[derive(Debug, Clone)]
pub struct Ready {
    pub instance: PathBuf,
    /// `sched_prepare_exec` (Linux >= 6.9) is used; without it every exec's header is read.
    pub prepare_exec: bool,
    /// Ok, or why exec-format errors are not watched ("off: ..." or "unavailable: ...").
    pub exec_format_errors: Result<(), String>,
}

/// Where events go. `binfmtd monitor` prints them; the agent counts and publishes them.
pub trait Sink {
    fn ready(&mut self, ready: &Ready);
    /// An Err (stdout closed) stops the monitor.
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Called on every wake-up of the loop (at least every `ENTRIES_EVERY`): a heartbeat.
    fn tick(&mut self) {}
}

/// Watch until SIGTERM or SIGINT. The instance is removed before returning, also on errors.
pub fn run(opts: &Options, sink: &mut dyn Sink) -> Result<(), MonitorError> {
    // Blocked before the instance exists, so a signal at any point still ends in cleanup.
    let mask = block_signals()?;
    let signals = SignalFd::new(&mask)
        .map_err(|e| MonitorError::io("open a signalfd", "SIGTERM/SIGINT".as_ref(), e.into()))?;
    run_until(opts, sink, signals.as_fd())
}

/// Block SIGTERM and SIGINT in this thread, and so in every thread it starts afterwards (an
/// HTTP server's thread must not take the signal's default action and kill the process
/// before the instance is removed).
pub fn block_signals() -> Result<SigSet, MonitorError> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block()
        .map_err(|e| MonitorError::io("block signals", "SIGTERM/SIGINT".as_ref(), e.into()))?;
    Ok(mask)
}

/// Watch until `stop` becomes readable or hung up (a signalfd; the read end of a pipe whose
/// writer is dropped). The instance is removed before returning, also on errors. The agent
/// runs this on a thread of its own.
pub fn run_until(
    opts: &Options,
    sink: &mut dyn Sink,
    stop: BorrowedFd,
) -> Result<(), MonitorError> {
    let root = tracefs::find_or_mount(opts.tracefs.as_deref())?;
    for name in tracefs::remove_stale(&root) {
        tracing::warn!(instance = %name, "removed the tracefs instance of a monitor that is gone");
    }
    let instance = Instance::create(&root, std::process::id())?;
    let mut named;
    let sink: &mut dyn Sink = match &opts.cri_socket {
        Some(socket) => {
            named = super::cri::Named {
                inner: sink,
                resolver: super::cri::Resolver::new(socket.clone()),
            };
            &mut named
        }
        None => sink,
    };
    let result = setup(&instance, opts.exec_format_errors).and_then(|ready| {
        sink.ready(&ready);
        watch(&instance, opts, sink, stop)
    });
    let dir = instance.dir.clone();
    let removed = instance.remove();
    result?;
    removed.map_err(|e| MonitorError::io("remove the tracefs instance", &dir, e))
}

fn setup(inst: &Instance, enoexec: bool) -> Result<Ready, MonitorError> {
    let exec = "sched/sched_process_exec";
    if !inst.has_event(exec) {
        return Err(MonitorError::MissingEvent {
            event: "sched/sched_process_exec",
            dir: inst.dir.join("events"),
        });
    }
    let prepare = "sched/sched_prepare_exec";
    let prepare_exec = inst.has_event(prepare);
    if prepare_exec {
        inst.enable(prepare, None)?;
    }
    inst.enable(exec, None)?;
    let missing: Vec<String> = SYSCALLS
        .iter()
        .flat_map(|s| {
            [
                format!("syscalls/sys_enter_{s}"),
                format!("syscalls/sys_exit_{s}"),
            ]
        })
        .filter(|e| !inst.has_event(e))
        .collect();
    let exec_format_errors = if !enoexec {
        Err("off: --no-exec-format-errors".to_string())
    } else if missing.is_empty() {
        for s in SYSCALLS {
            inst.enable(&format!("syscalls/sys_exit_{s}"), Some("ret == -8"))?;
            inst.enable(&format!("syscalls/sys_enter_{s}"), None)?;
        }
        Ok(())
    } else {
        Err(format!(
            "unavailable: the kernel lacks {} (syscall tracepoints need CONFIG_FTRACE_SYSCALLS)",
            missing.join(", ")
        ))
    };
    Ok(Ready {
        instance: inst.dir.clone(),
        prepare_exec,
        exec_format_errors,
    })
}

fn watch(
    inst: &Instance,
    opts: &Options,
    sink: &mut dyn Sink,
    stop: BorrowedFd,
) -> Result<(), MonitorError> {
    let path = inst.pipe_path();
    let mut pipe = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| MonitorError::io("open", &path, e))?;
    let binfmt = BinfmtFs::unchecked(&opts.binfmt_misc);
    let mut state = Watch::new(
        binfmt.entries().unwrap_or_default(),
        Node::default_native(crate::arch::host()),
    );
    let mut refreshed = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial = Vec::new();
    while wait(&pipe, stop)? {
        sink.tick();
        if refreshed.elapsed() > ENTRIES_EVERY {
            state.set_entries(binfmt.entries().unwrap_or_default());
            refreshed = Instant::now();
        }
        let lines = read_lines(&mut pipe, &mut buf, &mut partial, &path)?;
        let busy = !lines.is_empty();
        for line in lines {
            let Some(record) = parse_line(&line) else {
                continue;
            };
            if let Some(event) = state.feed(record, &ProcFs) {
                if sink.event(&event).is_err() {
                    return Ok(());
                }
            }
        }
        if busy {
            std::thread::sleep(BATCH);
        }
    }
    Ok(())
}

/// Wait for trace data; false once `stop` is readable or hung up.
fn wait(pipe: &File, stop: BorrowedFd) -> Result<bool, MonitorError> {
    let mut fds = [
        libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // A timeout so the entries refresh even on a quiet node.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ENTRIES_EVERY.as_millis() as i32) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(true);
        }
        return Err(MonitorError::io("poll", "trace_pipe".as_ref(), e));
    }
    Ok(fds[1].revents == 0)
}

/// Whatever whole lines the pipe has now; a trailing partial line waits for the next read.
fn read_lines(
    pipe: &mut File,
    buf: &mut [u8],
    partial: &mut Vec<u8>,
    path: &std::path::Path,
) -> Result<Vec<String>, MonitorError> {
    match pipe.read(buf) {
        Ok(n) => partial.extend_from_slice(&buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Vec::new()),
        Err(e) => return Err(MonitorError::io("read", path, e)),
    }
    let Some(end) = partial.iter().rposition(|&b| b == b'\n') else {
        return Ok(Vec::new());
    };
    let lines = String::from_utf8_lossy(&partial[..end])
        .lines()
        .map(str::to_string)
        .collect();
    partial.drain(..=end);
    Ok(lines)
}
