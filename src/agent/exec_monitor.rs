//! `run --exec-monitor`: the `binfmtd monitor` watcher on a thread of the agent. Its events
//! feed the /metrics counters, the status file's tables (`monitor::tally`) and, with
//! `--node-labels`, Kubernetes Events on the pod (`pod_events`).
//!
//! It never stops the agent: when tracefs, permission or the kernel's events are missing,
//! or the watch fails later, `exec-monitor: unavailable (reason)` is logged once, the
//! status file says so, and the agent (and /readyz) carry on.

use std::io::PipeWriter;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::http::Shared;
use super::pod_events::PodEvents;
use crate::monitor::run::Ready;
use crate::monitor::tally::{Tally, View};
use crate::monitor::{self, Event};

/// What the status file says of the watcher.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `starting`, `watching`, or `unavailable (reason)`.
    pub state: String,
    /// `on`, or why not (`off: ...`, `unavailable: ...`).
    pub exec_format_errors: String,
    #[serde(flatten)]
    pub tables: View,
}

struct State {
    state: String,
    exec_format_errors: String,
    tally: Tally,
    /// Something to write since the status file was last written.
    changed: bool,
}

pub struct ExecMonitor {
    stop: Option<PipeWriter>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
}

impl ExecMonitor {
    /// Start watching on a thread of its own (after the agent blocked its signals: the
    /// thread inherits the mask). Never fails: a thread that cannot start is "unavailable".
    pub fn start(
        opts: monitor::Options,
        shared: Arc<Shared>,
        events: Option<PodEvents>,
    ) -> ExecMonitor {
        let native = crate::monitor::tally::native_here();
        let state = Arc::new(Mutex::new(State {
            state: "starting".into(),
            exec_format_errors: "starting".into(),
            tally: Tally::new(&opts.binfmt_misc, native),
            changed: true,
        }));
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => {
                unavailable(&state, &format!("cannot create its stop pipe: {e}"));
                return ExecMonitor {
                    stop: None,
                    thread: None,
                    state,
                };
            }
        };
        let mut sink = Counting {
            shared,
            state: state.clone(),
            events,
        };
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("exec-monitor".into())
            .spawn(move || {
                if let Err(e) = monitor::run::run_until(&opts, &mut sink, reader.as_fd()) {
                    unavailable(&st, &e.to_string());
                }
                if let Some(ev) = sink.events.take() {
                    ev.stop();
                }
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                unavailable(&state, &format!("cannot start its thread: {e}"));
                None
            }
        };
        ExecMonitor {
            stop: Some(writer),
            thread,
            state,
        }
    }

    /// The status file's `exec_monitor` object (it is then no longer `changed`).
    pub fn report(&self) -> Report {
        let mut s = lock(&self.state);
        s.changed = false;
        Report {
            state: s.state.clone(),
            exec_format_errors: s.exec_format_errors.clone(),
            tables: s.tally.view(),
        }
    }

    /// Something new since the last `report`.
    pub fn changed(&self) -> bool {
        lock(&self.state).changed
    }

    /// Stop the watch and wait for its instance to be removed.
    pub fn stop(mut self) {
        // Closing the write end hangs up the pipe the loop polls.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Logged once: the watch ends here for this agent's life.
fn unavailable(state: &Mutex<State>, reason: &str) {
    tracing::warn!("exec-monitor: unavailable ({reason}); the agent carries on without it");
    let mut s = lock(state);
    s.state = format!("unavailable ({reason})");
    s.exec_format_errors = "unavailable".into();
    s.changed = true;
}

/// The agent's sink: counters, the tally, and Events.
struct Counting {
    shared: Arc<Shared>,
    state: Arc<Mutex<State>>,
    events: Option<PodEvents>,
}

impl monitor::Sink for Counting {
    fn ready(&mut self, r: &Ready) {
        let enoexec = match &r.exec_format_errors {
            Ok(()) => "on".to_string(),
            Err(why) => why.clone(),
        };
        tracing::info!(
            instance = %r.instance.display(),
            sched_prepare_exec = r.prepare_exec,
            exec_format_errors = %enoexec,
            "exec-monitor: watching execs"
        );
        let mut s = lock(&self.state);
        s.state = "watching".into();
        s.exec_format_errors = enoexec;
        s.changed = true;
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        self.shared.metrics.count_exec(e);
        {
            let mut s = lock(&self.state);
            s.tally.record(e, unix_now());
            s.changed = true;
        }
        if let Some(ev) = &mut self.events {
            ev.offer(e);
        }
        Ok(())
    }
}

/// How often at most the status file is rewritten for the tables alone.
pub const WRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
