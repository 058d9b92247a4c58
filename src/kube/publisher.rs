//! The labeller on a thread of its own, so the agent's loop never waits on the API server
//! and a labelling failure never stops emulation: the agent hands over the labels it wants
//! (`Publisher::publish`, never blocks, the latest wins) and carries on.
//!
//! The thread publishes each new set at once, re-reads the node every `resync` (so a label
//! removed by hand comes back), and after a failure tries again on a doubling schedule up to
//! 5 minutes (`retry::next_round`) — or at once when the labels change.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{retry, Counters, KubeError, Labeller, Published, Target};
use crate::labels::Labels;

/// What the publishing thread has done so far (for status, metrics and tests).
#[derive(Debug, Clone, Default)]
pub struct PublisherState {
    /// The node's name, once known.
    pub node: Option<String>,
    /// The labels last published successfully (the node carries them under the prefix).
    pub published: Option<Labels>,
    /// The last failure, until the next success.
    pub last_error: Option<String>,
    /// Consecutive failed rounds.
    pub failures: u32,
    /// Successful rounds (with or without a write).
    pub rounds: u64,
    pub counters: Counters,
}

pub struct Publisher {
    tx: Option<Sender<Labels>>,
    state: Arc<Mutex<PublisherState>>,
    thread: Option<JoinHandle<()>>,
    /// Closed by the thread when it returns.
    done: Receiver<()>,
}

/// How long `stop` waits for a publish in flight: the agent must exit within 1 s of SIGTERM,
/// and a PATCH being retried after a Retry-After may take longer; it is then abandoned.
const STOP_WAIT: Duration = Duration::from_millis(500);

impl Publisher {
    /// Load the client configuration now (a bad kubeconfig is the operator's error, reported
    /// at start), then publish on a thread of its own. Sends no request before the first
    /// `publish`.
    pub fn start(target: Target, resync: Duration) -> Result<Publisher, KubeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KubeError::Config {
                source_desc: target.source.describe(),
                detail: format!("cannot start the async runtime: {e}"),
            })?;
        let labeller = rt.block_on(Labeller::connect(target))?;
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel::<()>();
        let state = Arc::new(Mutex::new(PublisherState::default()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("binfmtd-labels".into())
            .spawn(move || {
                run(rt, labeller, rx, resync, shared);
                drop(done_tx);
            })
            .map_err(|e| KubeError::Config {
                source_desc: "binfmtd".into(),
                detail: format!("cannot start the labelling thread: {e}"),
            })?;
        Ok(Publisher {
            tx: Some(tx),
            state,
            thread: Some(thread),
            done,
        })
    }

    /// Ask for these labels. Returns at once; the thread converges the node to them.
    pub fn publish(&self, desired: Labels) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(desired);
        }
    }

    pub fn state(&self) -> PublisherState {
        self.state.lock().expect("publisher state").clone()
    }

    /// Stop the thread: an idle one ends at once; a publish in flight gets `STOP_WAIT` to
    /// finish, then is abandoned (the process is exiting).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        let Some(t) = self.thread.take() else { return };
        match self.done.recv_timeout(STOP_WAIT) {
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!("a node-label publish was still in flight at exit; abandoned")
            }
            _ => {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    rt: tokio::runtime::Runtime,
    mut labeller: Labeller,
    rx: Receiver<Labels>,
    resync: Duration,
    state: Arc<Mutex<PublisherState>>,
) {
    let mut desired: Option<Labels> = None;
    let mut next_resync = Instant::now() + resync;
    let mut retry_at: Option<Instant> = None;
    loop {
        let wake = retry_at.map_or(next_resync, |r| r.min(next_resync));
        match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(mut labels) => {
                // Only the newest set matters.
                while let Ok(newer) = rx.try_recv() {
                    labels = newer;
                }
                desired = Some(labels);
            }
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= next_resync {
                    labeller.forget();
                    next_resync = Instant::now() + resync;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(want) = &desired else { continue };
        let result = rt.block_on(async {
            let node = labeller.node_name().await?;
            labeller.publish(want).await.map(|p| (node, p))
        });
        let mut s = state.lock().expect("publisher state");
        s.counters = labeller.counters();
        match result {
            Ok((node, published)) => {
                if let Published::Patched(patch) = &published {
                    tracing::info!(node = %node, patch = %patch, "node labels updated");
                }
                s.node = Some(node);
                s.published = Some(want.clone());
                s.last_error = None;
                s.failures = 0;
                s.rounds += 1;
                retry_at = None;
            }
            Err(e) => {
                let wait = retry::next_round(s.failures);
                tracing::warn!(error = %e, retry_in = ?wait, "node labels not published; emulation is unaffected");
                s.last_error = Some(e.to_string());
                s.failures += 1;
                retry_at = Some(Instant::now() + wait);
            }
        }
    }
}
