//! The controller: watches Nodes (their labels say what each runs and emulates) and
//! unscheduled Pods; each pod carrying the `binfmtd.io/placement` gate is decided and
//! patched on its own task, at most `CONCURRENT` at once, only while this replica leads.
//!
//! | file  | what it holds                                                             |
//! |-------|---------------------------------------------------------------------------|
//! | `pod` | one pod: credentials, platforms within the deadline, decision, patch, Event |
//! | `queue` | which pods are in flight, done, or waiting to be retried (pure)          |
//!
//! RBAC: list/watch nodes; list/watch/get/patch pods; get secrets and serviceaccounts (pull
//! secrets); create/patch events.k8s.io events.

pub mod pod;
pub mod queue;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;

use super::leader::Leader;
use super::metrics::Shared;
use super::registry::{Fetch, Resolver};
use crate::labels::Prefix;
pub use pod::{gated, Ctx, Done};
use queue::Queue;

/// Pods decided at once (each waits mostly on a registry).
pub const CONCURRENT: usize = 32;
/// How often gated pods in the store are looked at again (retries, leadership gained).
const TICK: Duration = Duration::from_secs(1);
/// The reporting controller named in Events.
pub const CONTROLLER: &str = "binfmtd-placement";

pub struct Options {
    pub prefix: Prefix,
    pub registry_timeout: Duration,
    /// Names this replica in Events (`reportingInstance`).
    pub identity: String,
}

/// Run until the watches end (they do not, short of the process ending).
pub async fn run<F: Fetch + 'static>(
    client: Client,
    resolver: Resolver<F>,
    leader: Arc<dyn Leader>,
    shared: Arc<Shared>,
    opts: Options,
) {
    let (nodes, node_writer) = reflector::store::<Node>();
    let node_events = reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(node_events);
        while let Some(e) = node_events.next().await {
            if let Err(e) = e {
                tracing::warn!(error = %e, "watching nodes failed; retrying with backoff");
            }
        }
    });
    // Gated pods are unscheduled: the API server filters the rest out.
    let (pods, pod_writer) = reflector::store::<Pod>();
    let pod_events = reflector(
        pod_writer,
        watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields("spec.nodeName="),
        ),
    )
    .default_backoff()
    .touched_objects();
    let reporter = Reporter {
        controller: CONTROLLER.into(),
        instance: Some(opts.identity.clone()),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        resolver,
        nodes: nodes.clone(),
        prefix: opts.prefix,
        registry_timeout: opts.registry_timeout,
    });
    let queue = Arc::new(Mutex::new(Queue::default()));
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let mut ready = false;
    let mut tick = tokio::time::interval(TICK);
    futures::pin_mut!(pod_events);
    loop {
        let event = tokio::select! {
            e = pod_events.next() => match e {
                Some(e) => Some(e),
                None => return,
            },
            _ = tick.tick() => None,
        };
        let is_leader = leader.is_leader();
        shared.metrics.leader.set(i64::from(is_leader));
        if !ready {
            ready = nodes.wait_until_ready().now_or_never_ready() && pods.wait_until_ready().now_or_never_ready();
        }
        shared.beat(ready);
        if !ready || !is_leader {
            continue;
        }
        let candidates: Vec<Arc<Pod>> = match event {
            Some(Ok(p)) => vec![Arc::new(p)],
            Some(Err(e)) => {
                tracing::warn!(error = %e, "watching pods failed; retrying with backoff");
                continue;
            }
            None => pods.state(),
        };
        let now = Instant::now();
        for p in candidates.into_iter().filter(|p| gated(p)) {
            let Some(uid) = p.metadata.uid.clone() else {
                continue;
            };
            if !lock(&queue).take(&uid, now) {
                continue;
            }
            let (ctx, queue, limit, shared) = (ctx.clone(), queue.clone(), limit.clone(), shared.clone());
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let seen = Instant::now();
                let result = pod::place(&ctx, Pod::clone(&p)).await;
                let now = Instant::now();
                match result {
                    Ok(Done::Decided(d)) => {
                        shared.metrics.decided(d.outcome.label());
                        shared.metrics.gate_seconds.observe((now - seen).as_secs_f64());
                        lock(&queue).done(&uid, now);
                        tracing::info!(pod = %pod_name(&p), outcome = d.outcome.label(), "{}", d.message);
                    }
                    Ok(Done::Gone) => lock(&queue).done(&uid, now),
                    Err(e) => {
                        shared.metrics.patch_failures.inc();
                        let wait = lock(&queue).failed(&uid, now);
                        tracing::warn!(retry_in = ?wait, "{e}");
                    }
                }
                let (tags, digests) = ctx.resolver.cached();
                shared.metrics.cached.set((tags + digests) as i64);
            });
        }
        lock(&queue).forget(now);
    }
}

fn pod_name(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default()
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Store::wait_until_ready` as a check that does not wait.
trait NowOrNever {
    fn now_or_never_ready(self) -> bool;
}

impl<T: std::future::Future<Output = Result<(), reflector::store::WriterDropped>>> NowOrNever for T {
    fn now_or_never_ready(self) -> bool {
        futures::FutureExt::now_or_never(self).is_some_and(|r| r.is_ok())
    }
}
