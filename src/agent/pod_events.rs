//! Kubernetes Events on the pod for what the exec monitor saw (`--exec-monitor` with
//! `--node-labels`): `EmulatedExecution` (Normal) and `ExecFormatError` (Warning), once per
//! container and program per `WINDOW` (`monitor::ratelimit`), so `kubectl describe pod`
//! shows them beside the pod's own events.
//!
//! The pod's namespace and name come with the event when the monitor has the runtime's CRI
//! socket (`--cri-socket`); else from listing this node's pods (field selector
//! `spec.nodeName`; at most once per `RELIST` on a cache miss). Sending runs on a thread of
//! its own with a bounded queue: the monitor never waits on the API server, and a full
//! queue drops the Event (the counters and the status file still have it). RBAC: `list` on
//! pods, `create` on events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event as KubeEvent, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use crate::kube::{KubeError, Source};
use crate::monitor::ratelimit::{Key, RateLimit};
use crate::monitor::tally;
use crate::monitor::{Event, Kind};

/// One Event per (kind, container, program) per window.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Keys the rate limiter remembers (bounded memory; see `monitor::ratelimit`).
pub const KEYS_MAX: usize = 4096;
/// Events waiting for the sender thread.
const QUEUE: usize = 256;
/// A pod UID not in the cache lists the node's pods again, at most this often.
const RELIST: Duration = Duration::from_secs(5);

/// What the Events need that the monitor's events lack.
#[derive(Debug, Clone)]
pub struct Target {
    pub source: Source,
    pub node: String,
    pub binfmt_misc: PathBuf,
    pub native: Vec<&'static str>,
}

pub struct PodEvents {
    tx: Option<SyncSender<Event>>,
    limit: RateLimit,
    origin: Instant,
    thread: Option<JoinHandle<()>>,
    /// Closed by the thread when it returns.
    done: Receiver<()>,
}

/// How long `stop` waits for Events in flight: the agent exits within a second of SIGTERM;
/// what is still queued then is dropped.
const STOP_WAIT: Duration = Duration::from_millis(500);

impl PodEvents {
    /// Load the client configuration now (an error is the operator's, reported at start).
    pub fn start(target: Target) -> Result<PodEvents, KubeError> {
        let desc = target.source.describe();
        let err = |detail: String| KubeError::Config {
            source_desc: desc.clone(),
            detail,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(format!("cannot start the async runtime: {e}")))?;
        // The client spawns its request buffer: it must be built inside the runtime.
        let client = rt.block_on(async {
            let config = target.source.load().await?;
            Client::try_from(config).map_err(|e| err(e.to_string()))
        })?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pod-events".into())
            .spawn(move || {
                rt.block_on(Sender::new(client, target).run(rx));
                drop(done_tx);
            })
            .map_err(|e| err(format!("cannot start the Events thread: {e}")))?;
        Ok(PodEvents {
            tx: Some(tx),
            limit: RateLimit::new(WINDOW, KEYS_MAX),
            origin: Instant::now(),
            thread: Some(thread),
            done,
        })
    }

    /// An event of a pod, unless its kind/container/program had one within the window.
    /// Never blocks.
    pub fn offer(&mut self, e: &Event) {
        if e.pod_uid.is_none() || !self.limit.allow(Key::of(e), self.origin.elapsed()) {
            return;
        }
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(e.clone()) {
                tracing::debug!("pod Events queue full: Event dropped");
            }
        }
    }

    /// Let the thread send what is queued within `STOP_WAIT`, then leave it (the process
    /// is exiting).
    pub fn stop(mut self) {
        self.tx.take();
        let Some(t) = self.thread.take() else { return };
        match self.done.recv_timeout(STOP_WAIT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::debug!("pod Events still being sent at exit; abandoned")
            }
            _ => {
                let _ = t.join();
            }
        }
    }
}

struct Sender {
    client: Client,
    target: Target,
    /// Pod UID -> (namespace, name), for this node's pods.
    pods: HashMap<String, (String, String)>,
    listed: Option<Instant>,
    warned: bool,
}

impl Sender {
    fn new(client: Client, target: Target) -> Sender {
        Sender {
            client,
            target,
            pods: HashMap::new(),
            listed: None,
            warned: false,
        }
    }

    async fn run(mut self, rx: Receiver<Event>) {
        // recv blocks this runtime's only thread, which has nothing else to do meanwhile.
        while let Ok(e) = rx.recv() {
            let Some(uid) = e.pod_uid.clone() else {
                continue;
            };
            let named = named(&e);
            let found = match named {
                Some(p) => Some(p),
                None => self.pod(&uid).await,
            };
            let Some((ns, name)) = found else {
                tracing::debug!(pod_uid = %uid, "no pod with this UID on the node: no Event");
                continue;
            };
            let ev = kube_event(&e, &uid, &ns, &name, &self.target);
            let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &ns);
            match api.create(&PostParams::default(), &ev).await {
                Ok(_) => {
                    tracing::debug!(pod = %format!("{ns}/{name}"), reason = ?ev.reason, "Event created")
                }
                Err(err) => self.warn(format!("cannot create an Event on pod {ns}/{name}: {err}")),
            }
        }
    }

    /// Logged once at warn, then at debug: a missing RBAC rule must not flood the log.
    fn warn(&mut self, msg: String) {
        if std::mem::replace(&mut self.warned, true) {
            tracing::debug!("{msg}");
        } else {
            tracing::warn!("exec-monitor: {msg}. Hint: the agent needs RBAC `create` on events and `list` on pods (see daemonset/base/rbac.yaml); further failures are logged at debug");
        }
    }

    /// The pod's namespace and name; a UID not seen yet lists the node's pods again, no
    /// sooner than `RELIST` after the last list (a new pod waits that long at most).
    async fn pod(&mut self, uid: &str) -> Option<(String, String)> {
        if let Some(p) = self.pods.get(uid) {
            return Some(p.clone());
        }
        if let Some(t) = self.listed {
            tokio::time::sleep(RELIST.saturating_sub(t.elapsed())).await;
        }
        self.list().await;
        self.pods.get(uid).cloned()
    }

    async fn list(&mut self) {
        self.listed = Some(Instant::now());
        let api: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", self.target.node));
        match api.list(&lp).await {
            Ok(list) => {
                self.pods = list
                    .items
                    .into_iter()
                    .filter_map(|p| {
                        let m = p.metadata;
                        Some((m.uid?, (m.namespace?, m.name?)))
                    })
                    .collect();
            }
            Err(e) => self.warn(format!(
                "cannot list the pods of node {}: {e}",
                self.target.node
            )),
        }
    }
}

/// The pod's namespace and name when the event has them from the runtime (no API call).
fn named(e: &Event) -> Option<(String, String)> {
    Some((e.pod_namespace.clone()?, e.pod_name.clone()?))
}

/// The Event for one monitor event on pod ns/name (pure).
pub fn kube_event(e: &Event, uid: &str, ns: &str, name: &str, t: &Target) -> KubeEvent {
    let (reason, type_, message) = reason_and_message(e, t);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    KubeEvent {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        type_: Some(type_.into()),
        message: Some(message),
        source: Some(EventSource {
            component: Some("binfmtd".into()),
            host: Some(t.node.clone()),
        }),
        reporting_component: Some("binfmtd".into()),
        reporting_instance: Some(t.node.clone()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    }
}

/// (reason, type, message) of the Event; the message says what to do about it.
pub fn reason_and_message(e: &Event, t: &Target) -> (&'static str, &'static str, String) {
    let path = e.path.as_deref().unwrap_or("(path unknown)");
    let container = e
        .container_id
        .as_deref()
        .map(|c| format!(" in container {}", &c[..12.min(c.len())]))
        .unwrap_or_default();
    match e.kind {
        Kind::Emulated => (
            "EmulatedExecution",
            "Normal",
            format!(
                "{path} ran emulated as {}{container} (qemu-user through binfmt_misc, typically 2-5x slower); \
                 an image or download built for {} runs natively",
                e.arch.unwrap_or("a foreign arch"),
                t.native.first().copied().unwrap_or("this node's CPU")
            ),
        ),
        Kind::ExecFormatError => (
            "ExecFormatError",
            "Warning",
            format!(
                "exec of {path} failed with \"exec format error\"{container}{}: {}",
                e.arch.map(|a| format!(" (the file is for {a})")).unwrap_or_default(),
                tally::hint(e.arch, e.path.as_deref(), &t.native, &t.binfmt_misc)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            source: Source::resolve(None, None),
            node: "node-a".into(),
            binfmt_misc: PathBuf::from("/proc/sys/fs/binfmt_misc"),
            native: vec!["x86_64", "i386"],
        }
    }

    fn event(kind: Kind, arch: Option<&'static str>) -> Event {
        Event {
            kind,
            arch,
            path: Some("/usr/local/bin/tool".into()),
            pid: 9,
            pod_uid: Some("u-1".into()),
            pod_namespace: None,
            pod_name: None,
            container_id: Some("0123456789abcdef".into()),
            unit: None,
        }
    }

    #[test]
    fn events_name_the_pod_the_program_and_the_fix() {
        let t = target();
        let ev = kube_event(
            &event(Kind::Emulated, Some("aarch64")),
            "u-1",
            "ns",
            "web-0",
            &t,
        );
        assert_eq!(ev.reason.as_deref(), Some("EmulatedExecution"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        let o = &ev.involved_object;
        assert_eq!(
            (
                o.kind.as_deref(),
                o.namespace.as_deref(),
                o.name.as_deref(),
                o.uid.as_deref()
            ),
            (Some("Pod"), Some("ns"), Some("web-0"), Some("u-1"))
        );
        let m = ev.message.unwrap();
        assert!(
            m.contains("/usr/local/bin/tool ran emulated as aarch64 in container 0123456789ab"),
            "{m}"
        );
        assert!(m.contains("built for x86_64"), "{m}");

        let (reason, type_, m) =
            reason_and_message(&event(Kind::ExecFormatError, Some("s390x")), &t);
        assert_eq!((reason, type_), ("ExecFormatError", "Warning"));
        assert!(
            m.contains("(the file is for s390x)") && m.contains("binfmtd install --arch s390x"),
            "{m}"
        );
    }

    /// Both names from the runtime skip the API server; half a name does not.
    #[test]
    fn the_runtimes_names_are_used_only_when_complete() {
        type Name<'a> = Option<(&'a str, &'a str)>;
        let cases: &[(Option<&str>, Option<&str>, Name)] = &[
            (Some("shop"), Some("web-0"), Some(("shop", "web-0"))),
            (None, None, None),
            (Some("shop"), None, None),
            (None, Some("web-0"), None),
        ];
        for (ns, name, want) in cases {
            let mut e = event(Kind::Emulated, Some("aarch64"));
            e.pod_namespace = ns.map(str::to_string);
            e.pod_name = name.map(str::to_string);
            let got = named(&e);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                *want,
                "{ns:?} {name:?}"
            );
        }
    }
}
