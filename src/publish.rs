//! The agent's one entry point for node labels: hand it every status report, and it
//! publishes the labels the report implies to the Node object (`--node-labels`, through the
//! `kube::Publisher` thread) or to an NFD feature file (`--nfd-features-dir`).
//!
//! Nothing here blocks on the API server or fails the agent: a labelling failure is logged
//! and retried by the publisher thread while the agent keeps repairing entries.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::kube::{KubeError, Publisher, PublisherState, Source, Target};
use crate::labels::{self, Labels, Prefix};
use crate::nfd::{self, FeatureFile, NfdError};
use crate::status::Status;

/// How often the node is re-read at steady state (12 GETs an hour), so a label removed by
/// hand comes back.
pub const RESYNC: Duration = Duration::from_secs(300);

/// After a failed feature-file write, the next try (unless the facts change first).
const NFD_RETRY: Duration = Duration::from_secs(30);

/// Where labels go (plain values; the command line builds them).
#[derive(Debug, Clone)]
pub struct Options {
    pub prefix: Prefix,
    /// `--node-labels`: publish to the Node object from this configuration.
    pub node: Option<(Source, Option<String>)>,
    /// `--nfd-features-dir`: write an NFD local-source feature file there.
    pub nfd_dir: Option<PathBuf>,
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Nfd(#[from] NfdError),
}

pub struct NodeLabels {
    prefix: Prefix,
    kube: Option<Publisher>,
    nfd: Option<FeatureFile>,
    /// After a failed file write, not before this (no warning on every tick).
    nfd_retry: Option<(Labels, Instant)>,
    last: Option<Labels>,
}

impl NodeLabels {
    /// Check the options and start what they ask for. `None` when they ask for nothing.
    /// Errors are the operator's (both modes, an unreadable kubeconfig); no request is sent.
    pub fn start(opts: Options) -> Result<Option<NodeLabels>, PublishError> {
        nfd::check_modes(opts.node.is_some(), opts.nfd_dir.as_deref(), &opts.prefix)?;
        if opts.node.is_none() && opts.nfd_dir.is_none() {
            return Ok(None);
        }
        let kube = match opts.node {
            Some((source, node_name)) => {
                let target = Target {
                    source,
                    node_name,
                    prefix: opts.prefix.clone(),
                };
                Some(Publisher::start(target, opts.resync)?)
            }
            None => None,
        };
        Ok(Some(NodeLabels {
            prefix: opts.prefix,
            kube,
            nfd: opts.nfd_dir.map(FeatureFile::new),
            nfd_retry: None,
            last: None,
        }))
    }

    /// The labels a report implies under this prefix (the agent puts them in its status file).
    pub fn desired(&self, status: &Status) -> Labels {
        labels::desired(&status.formats, &self.prefix)
    }

    /// After a reconcile: publish what the report implies if it changed. Returns at once.
    pub fn report(&mut self, status: &Status) {
        let want = self.desired(status);
        if self.last.as_ref() != Some(&want) {
            if let Some(k) = &self.kube {
                k.publish(want.clone());
            }
            self.last = Some(want);
        }
        self.tick();
    }

    /// On the agent's every tick: refresh the feature file before its expiry. (The publisher
    /// thread keeps its own re-read schedule.)
    pub fn tick(&mut self) {
        let (Some(f), Some(want)) = (&mut self.nfd, &self.last) else {
            return;
        };
        if let Some((failed, at)) = &self.nfd_retry {
            if failed == want && Instant::now() < *at {
                return;
            }
        }
        match f.update(want, SystemTime::now()) {
            Ok(wrote) => {
                self.nfd_retry = None;
                if wrote {
                    tracing::debug!(path = %f.path().display(), "NFD feature file written");
                }
            }
            Err(e) => {
                self.nfd_retry = Some((want.clone(), Instant::now() + NFD_RETRY));
                tracing::warn!(error = %e, "NFD feature file not written; emulation is unaffected");
            }
        }
    }

    /// What the publisher thread has done (None in NFD mode).
    pub fn state(&self) -> Option<PublisherState> {
        self.kube.as_ref().map(Publisher::state)
    }

    /// Stop the publisher thread (a publish in flight gets half a second, then is abandoned).
    pub fn stop(self) {
        if let Some(k) = self.kube {
            k.stop();
        }
    }
}
