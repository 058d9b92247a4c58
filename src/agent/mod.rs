//! `binfmtd run`: the node agent. Converge once, then keep it true: poll binfmt_misc
//! cheaply (it has no change notification), converge only the arches whose format changed,
//! re-prove every arch now and then, back off from failures and fights, re-read the config
//! on SIGHUP or when the file changes, and report through a status file, sd_notify, and
//! optionally HTTP health and metrics endpoints.
//!
//! | file        | what it holds                                                          |
//! |-------------|------------------------------------------------------------------------|
//! | `decide`    | pure: what changed between polls, backoff and fight verdicts            |
//! | `pass`      | the loop's state and one reconcile over the arches that need it        |
//! | `publish`   | after a pass: metrics, readiness, STATUS=, the status file           |
//! | `report`    | the status file (report + daemon fields), written atomically           |
//! | `signals`   | SIGTERM/SIGINT/SIGHUP blocked and awaited as the loop's sleep          |
//! | `notify`    | sd_notify: READY, STATUS, WATCHDOG                                     |
//! | `http`      | `--listen`: /healthz, /readyz, /metrics; deadline, cap, backoff        |
//! | `metrics`   | the Prometheus metrics                                                 |
//! | `exec_monitor` | `--exec-monitor`: the exec watcher's thread, counters, status tables |
//! | `pod_events`| Kubernetes Events on the pod for what the exec monitor saw             |

pub mod decide;
mod exec_monitor;
pub(crate) mod http;
mod metrics;
mod notify;
mod pass;
mod pod_events;
mod publish;
pub mod report;
mod signals;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::converge::{ConvergeError, InstanceLock, LockError, Request};
use crate::kernel::KernelError;
use crate::prover::Prover;

pub use decide::Policy;
pub use http::{serve, Health, Shared};
pub use metrics::Metrics;

/// How the loop runs (plain values; the command line builds them).
#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    pub reproof_interval: Duration,
    pub status_file: PathBuf,
    /// The single-instance lock (by default beside the status file).
    pub lock_file: PathBuf,
    pub listen: Option<SocketAddr>,
    pub uninstall_on_exit: bool,
    /// The config file to watch; a change is a reload, like SIGHUP.
    pub config_file: PathBuf,
    pub policy: Policy,
    /// How long a pass waits for another binfmtd (an `install`) to finish.
    pub lock_wait: Duration,
    /// Where the node labels go (nowhere unless `--node-labels` or `--nfd-features-dir`).
    pub labels: crate::publish::Options,
    /// `--exec-monitor`: watch execs (the binfmt_misc path in it is the agent's).
    pub exec_monitor: Option<crate::monitor::Options>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Converge(#[from] ConvergeError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("--listen {addr}: cannot listen: {source}. Hint: pick a free port, or an address this host has")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("blocking signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Labels(#[from] crate::publish::PublishError),
}

/// Re-reads the config and command line into a request (the cli's closure); an Err is
/// the validation error to log while the running state is kept.
pub type Loader<'a> = &'a dyn Fn() -> Result<Request, String>;

/// Run the agent until SIGTERM/SIGINT. Registrations stay in place on exit unless
/// `uninstall_on_exit`. Call before any other thread starts (signal mask).
pub fn run(
    root: &Path,
    prover: &dyn Prover,
    load: Loader,
    req: Request,
    opts: &Options,
) -> Result<(), AgentError> {
    let _instance = InstanceLock::acquire(&opts.lock_file)?;
    signals::block().map_err(AgentError::Signals)?;
    let shared = Arc::new(http::Shared::new("starting"));
    if let Some(addr) = opts.listen {
        let bound = http::serve(addr, shared.clone())
            .map_err(|source| AgentError::Listen { addr, source })?;
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
    }
    let mut agent = pass::Agent::start(root, prover, req, opts, shared)?;
    // After signals::block: the publisher thread inherits the blocked mask.
    agent.labels = crate::publish::NodeLabels::start(opts.labels.clone())?;
    agent.exec = opts.exec_monitor.clone().map(|m| {
        let events = pod_events(opts, &m);
        exec_monitor::ExecMonitor::start(m, agent.shared.clone(), events)
    });
    agent.first_pass()?;
    let mut config = stamp(&opts.config_file);
    loop {
        match signals::wait(opts.interval) {
            Some(signals::Signal::Terminate) => break,
            Some(signals::Signal::Reload) => {
                tracing::info!("SIGHUP: re-reading the config");
                // Stamp first: a change made while the reload runs is seen next time.
                config = stamp(&opts.config_file);
                agent.reload(load);
            }
            None => {}
        }
        let now = stamp(&opts.config_file);
        if now != config {
            tracing::info!(path = %opts.config_file.display(), "config file changed: re-reading it");
            config = now;
            agent.reload(load);
        }
        agent.tick();
        agent.publish_exec();
        if let Some(l) = &mut agent.labels {
            l.tick();
        }
    }
    agent.stop();
    if let Some(l) = agent.labels.take() {
        l.stop();
    }
    // Takes the tracefs instance down before the process exits.
    if let Some(m) = agent.exec.take() {
        m.stop();
    }
    Ok(())
}

/// With `--node-labels`: Events on the pods the exec monitor saw. They need the node's name
/// (to list its pods); without it, or when the client cannot start, the monitor still
/// counts (logged once).
fn pod_events(opts: &Options, m: &crate::monitor::Options) -> Option<pod_events::PodEvents> {
    let (source, node) = opts.labels.node.clone()?;
    let Some(node) = node else {
        tracing::warn!("exec-monitor: no Kubernetes Events: the node's name is not known. Hint: pass --node-name, or set NODE_NAME (fieldRef spec.nodeName)");
        return None;
    };
    let target = pod_events::Target {
        source,
        node,
        binfmt_misc: m.binfmt_misc.clone(),
        native: crate::monitor::tally::native_here(),
    };
    match pod_events::PodEvents::start(target) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("exec-monitor: no Kubernetes Events: {e}");
            None
        }
    }
}

/// What identifies a version of the config file (a ConfigMap update swaps a symlink, so
/// the inode changes; an edit in place changes mtime or size).
fn stamp(path: &Path) -> Option<(u64, u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}
