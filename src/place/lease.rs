//! Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
//! every `retry` the candidate reads the Lease and, when `step` says so, writes it with the
//! resourceVersion it read (the API server lets one writer win; a loser's write conflicts and
//! it stays a follower). The leader renews; a Lease not renewed for its duration is taken over;
//! a leader that cannot renew for `renew_deadline` steps down before its Lease can expire
//! under it; on shutdown the leader releases the Lease (empty holder) so a follower takes over
//! at its next round rather than after the duration.
//!
//! The decision `step` is a plain function of (lease, now, identity); the API is behind
//! `LeaseStore` (`KubeLeases` is the real one). Expiry is judged by the Lease's renewTime
//! against this process's clock: node clocks must agree to well within the duration (15 s),
//! which NTP on cluster nodes gives.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use super::PlaceError;

/// client-go's defaults (kube-controller-manager's --leader-elect-* flags).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// What a candidate should write this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Free (released) or expired: take it (a new holder; transitions + 1).
    TakeOver,
    /// Another holder's, valid until `expires`.
    Wait { holder: String, expires: Timestamp },
}

/// Decide from the Lease as read.
pub fn step(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Step::TakeOver;
    }
    if holder == identity {
        return Step::Renew;
    }
    let secs = spec.lease_duration_seconds.unwrap_or(0).max(0);
    let expires = spec
        .renew_time
        .or(spec.acquire_time)
        .and_then(|t| t.0.checked_add(SignedDuration::from_secs(secs.into())).ok());
    match expires {
        Some(expires) if expires > now => Step::Wait { holder, expires },
        // Expired, or a Lease without times (written by hand): nobody is renewing it.
        _ => Step::TakeOver,
    }
}

/// The Lease to write for `step` (None for Wait), from the one read.
pub fn next(
    read: Option<&Lease>,
    step: &Step,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> Option<Lease> {
    let mut lease = read.cloned().unwrap_or_default();
    let mut spec = lease.spec.take().unwrap_or_default();
    match step {
        Step::Wait { .. } => return None,
        Step::Renew => {}
        Step::Create | Step::TakeOver => {
            spec.holder_identity = Some(identity.to_string());
            spec.acquire_time = Some(MicroTime(now));
            if *step == Step::TakeOver {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            } else {
                spec.lease_transitions = Some(0);
            }
        }
    }
    spec.lease_duration_seconds = Some(duration.as_secs().max(1) as i32);
    spec.renew_time = Some(MicroTime(now));
    lease.spec = Some(spec);
    Some(lease)
}

/// The released form of a Lease we hold: no holder, so a follower takes it at once.
pub fn released(read: &Lease, now: Timestamp) -> Lease {
    let mut lease = read.clone();
    let mut spec = lease.spec.take().unwrap_or_default();
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    lease.spec = Some(spec);
    lease
}

/// The Lease API, one named Lease.
pub trait LeaseStore: Send + Sync {
    fn get(&self) -> impl Future<Output = Result<Option<Lease>, kube::Error>> + Send;
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
    /// Replace with the resourceVersion the Lease carries (409 when someone wrote since).
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
    /// "get Lease ns/name", for errors.
    fn describe(&self) -> String;
}

/// A Lease on the API server.
pub struct KubeLeases {
    api: Api<Lease>,
    ns: String,
    name: String,
}

impl KubeLeases {
    pub fn new(client: Client, ns: &str, name: &str) -> KubeLeases {
        KubeLeases {
            api: Api::namespaced(client, ns),
            ns: ns.into(),
            name: name.into(),
        }
    }
}

impl LeaseStore for KubeLeases {
    async fn get(&self) -> Result<Option<Lease>, kube::Error> {
        self.api.get_opt(&self.name).await
    }
    async fn create(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let mut lease = lease.clone();
        lease.metadata.name = Some(self.name.clone());
        lease.metadata.namespace = Some(self.ns.clone());
        self.api.create(&PostParams::default(), &lease).await
    }
    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        self.api
            .replace(&self.name, &PostParams::default(), lease)
            .await
    }
    fn describe(&self) -> String {
        format!("Lease {}/{}", self.ns, self.name)
    }
}

/// One candidate. Cheap to share by reference; `run` drives it.
pub struct Elector<S: LeaseStore = KubeLeases> {
    store: S,
    identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
    leader: watch::Sender<bool>,
}

impl Elector<KubeLeases> {
    /// A candidate for Lease `lease` in `ns` under `identity` (the pod's name), with
    /// client-go's timing.
    pub fn new(client: Client, ns: &str, lease: &str, identity: &str) -> Elector<KubeLeases> {
        Elector::with_store(KubeLeases::new(client, ns, lease), identity)
    }
}

impl<S: LeaseStore> Elector<S> {
    pub fn with_store(store: S, identity: &str) -> Elector<S> {
        Elector {
            store,
            identity: identity.into(),
            duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry: RETRY_PERIOD,
            leader: watch::channel(false).0,
        }
    }

    /// Shorter timing (tests). The renew deadline stays below the duration.
    pub fn with_timing(mut self, duration: Duration, retry: Duration) -> Elector<S> {
        self.duration = duration;
        self.renew_deadline = duration * 2 / 3;
        self.retry = retry;
        self
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership as it changes (the controller runs while it is true).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    fn set_leader(&self, leader: bool) {
        self.leader.send_if_modified(|l| {
            let changed = *l != leader;
            if changed {
                tracing::info!(identity = %self.identity, lease = %self.store.describe(), leader, "leadership changed");
            }
            *l = leader;
            changed
        });
    }

    /// "VERB" and the store's description, for errors.
    fn what(&self, verb: &str) -> String {
        format!("{verb} {}", self.store.describe())
    }

    async fn read(&self) -> Result<Option<Lease>, PlaceError> {
        self.store
            .get()
            .await
            .map_err(|e| PlaceError::kube(self.what("get"), &e))
    }

    /// One round: read, decide, write. True when we hold the Lease afterwards.
    pub async fn try_once(&self) -> Result<bool, PlaceError> {
        let what = |verb: &str| self.what(verb);
        let read = self.read().await?;
        let now = Timestamp::now();
        let step = step(read.as_ref(), &self.identity, now);
        let Some(lease) = next(read.as_ref(), &step, &self.identity, self.duration, now) else {
            return Ok(false);
        };
        let written = if step == Step::Create {
            self.store
                .create(&lease)
                .await
                .map_err(|e| (what("create"), e))
        } else {
            self.store
                .replace(&lease)
                .await
                .map_err(|e| (what("update"), e))
        };
        match written {
            Ok(_) => Ok(true),
            // Another candidate wrote first: theirs this round.
            Err((_, kube::Error::Api(s))) if s.code == 409 => Ok(false),
            Err((w, e)) => Err(PlaceError::kube(w, &e)),
        }
    }

    /// Give the Lease up if we hold it.
    pub async fn release(&self) -> Result<(), PlaceError> {
        self.set_leader(false);
        let Some(read) = self.read().await? else {
            return Ok(());
        };
        let ours = read
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if ours {
            match self.store.replace(&released(&read, Timestamp::now())).await {
                Ok(_) => {
                    tracing::info!(identity = %self.identity, "released {}", self.store.describe())
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(PlaceError::kube(self.what("release"), &e)),
            }
        }
        Ok(())
    }

    /// Campaign until `shutdown` completes, then release. Errors are logged and retried.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut renewed: Option<Instant> = None;
        loop {
            match self.try_once().await {
                Ok(true) => {
                    renewed = Some(Instant::now());
                    self.set_leader(true);
                }
                Ok(false) => {
                    renewed = None;
                    self.set_leader(false);
                }
                Err(e) => {
                    tracing::warn!("leader election: {e}");
                    // Keep leading only while the Lease cannot have expired under us.
                    if renewed.is_none_or(|t| t.elapsed() >= self.renew_deadline) {
                        self.set_leader(false);
                    }
                }
            }
            if tokio::time::timeout(self.retry, &mut shutdown)
                .await
                .is_ok()
            {
                break;
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!("leader election: {e}; the Lease expires by itself");
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
