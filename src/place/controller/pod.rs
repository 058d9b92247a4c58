//! One gated pod: pull-secret credentials, its images' platforms (within the per-pod
//! deadline), the decision, the JSON patch that applies it and lifts the gate, the Event.
//! Every path ends with the gate removed, unless the API server refuses even that (the pod
//! is then retried by the loop).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource as _};

use super::super::registry::{auth, Credential, Fetch, RegistryError, Resolver};
use crate::labels::Prefix;
use crate::placement::decide::{self, containers, Decision, Outcome};
use crate::placement::nodes::{capabilities, NodeCaps};
use crate::placement::patch::patch;
use crate::placement::platforms::PlatformSet;
use crate::placement::GATE;

/// The field manager named in the pod's managedFields for what placement changes.
pub const FIELD_MANAGER: &str = "binfmtd-placement";
/// An Event note is at most 1 kB.
const NOTE_MAX: usize = 1024;

pub struct Ctx<F> {
    pub client: Client,
    pub resolver: Resolver<F>,
    pub nodes: Store<Node>,
    pub recorder: Recorder,
    pub prefix: Prefix,
    pub registry_timeout: Duration,
}

pub fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == GATE))
}

/// What happened to one pod.
#[derive(Debug)]
pub enum Done {
    /// Patched (gate removed) with this decision.
    Decided(Box<Decision>),
    /// Gone, or no longer gated by us: nothing to do.
    Gone,
}

#[derive(Debug, thiserror::Error)]
#[error("pod {namespace}/{name}: {what}: {source}. Hint: check the controller's RBAC (patch on pods) and the API server's log; the pod is retried")]
pub struct PodError {
    pub namespace: String,
    pub name: String,
    pub what: &'static str,
    pub source: kube::Error,
}

/// The pull-secret credentials of the pod and of its service account, in that order.
/// Missing or unreadable secrets are skipped, as the kubelet skips them.
async fn credentials(client: &Client, pod: &Pod) -> Vec<(String, Credential)> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut names: Vec<String> = spec
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    let sa = spec
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    match Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get_opt(&sa)
        .await
    {
        Ok(Some(a)) => names.extend(a.image_pull_secrets.into_iter().flatten().map(|r| r.name)),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(namespace = %ns, service_account = %sa, error = %e, "cannot read the service account's pull secrets")
        }
    }
    let mut out = Vec::new();
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let mut seen = std::collections::BTreeSet::new();
    for name in names.into_iter().filter(|n| seen.insert(n.clone())) {
        let data = match secrets.get_opt(&name).await {
            Ok(Some(s)) => s.data.unwrap_or_default(),
            Ok(None) => {
                tracing::warn!(namespace = %ns, secret = %name, "pull secret does not exist; resolving without it");
                continue;
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, secret = %name, error = %e, "cannot read pull secret; resolving without it. Hint: the controller needs get on secrets");
                continue;
            }
        };
        let data: BTreeMap<String, Vec<u8>> = data.into_iter().map(|(k, v)| (k, v.0)).collect();
        match auth::parse_secret(&data) {
            Ok(entries) => out.extend(entries),
            Err(why) => {
                tracing::warn!(namespace = %ns, secret = %name, "pull secret is not usable: {why}")
            }
        }
    }
    out
}

/// The platform set of every distinct image of the pod, or the first error.
async fn platforms<F: Fetch>(
    ctx: &Ctx<F>,
    pod: &Pod,
    secrets: &[(String, Credential)],
) -> Result<BTreeMap<String, PlatformSet>, RegistryError> {
    let mut out = BTreeMap::new();
    let mut images: Vec<String> = containers(pod).into_iter().map(|c| c.image).collect();
    images.sort();
    images.dedup();
    let all = futures::future::join_all(images.iter().map(|i| ctx.resolver.resolve(i, secrets)));
    let results = match tokio::time::timeout(ctx.registry_timeout, all).await {
        Ok(r) => r,
        Err(_) => {
            return Err(RegistryError::Deadline {
                image: images.join(", "),
                seconds: ctx.registry_timeout.as_secs(),
            })
        }
    };
    for (image, r) in images.into_iter().zip(results) {
        out.insert(image, PlatformSet::clone(&*r?));
    }
    Ok(out)
}

/// The decision when the images could not be resolved: nothing changes, the gate goes.
pub fn unresolved(image: &str, why: &str) -> Decision {
    Decision {
        outcome: Outcome::Unresolved {
            image: image.to_string(),
        },
        changes: None,
        message: format!("the platforms of the images are unknown ({why}): nothing changed"),
    }
}

fn failing_image(e: &RegistryError) -> String {
    match e {
        RegistryError::NotFound { image }
        | RegistryError::DigestMismatch { image, .. }
        | RegistryError::Refused { image, .. }
        | RegistryError::Deadline { image, .. } => image.clone(),
        RegistryError::Unreachable { registry, .. }
        | RegistryError::Status { registry, .. }
        | RegistryError::TooLarge { registry, .. } => registry.clone(),
        RegistryError::AuthRefused {
            registry,
            repository,
            ..
        } => format!("{registry}/{repository}"),
        RegistryError::Reference(r) => r.clone(),
    }
}

/// Decide for `pod` from the registry and the nodes as now known.
pub async fn decision<F: Fetch>(ctx: &Ctx<F>, pod: &Pod) -> Decision {
    let secrets = credentials(&ctx.client, pod).await;
    match platforms(ctx, pod, &secrets).await {
        Ok(images) => {
            let nodes: Vec<NodeCaps> = ctx
                .nodes
                .state()
                .iter()
                .map(|n| capabilities(n, &ctx.prefix))
                .collect();
            decide::decide(pod, &images, &nodes, &ctx.prefix)
        }
        Err(e) => unresolved(&failing_image(&e), &e.to_string()),
    }
}

async fn apply(
    api: &Api<Pod>,
    name: &str,
    ops: Vec<serde_json::Value>,
) -> Result<Pod, kube::Error> {
    let p: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .expect("placement::patch builds RFC 6902 operations");
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Json::<()>(p)).await
}

fn refused(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 404)
}

/// Decide, patch and tell. A patch the API server refuses (the pod changed since it was
/// read, or it rejects the change) is tried again on the pod read afresh; the last try
/// removes only the gate and says why.
pub async fn place<F: Fetch>(ctx: &Ctx<F>, pod: Pod) -> Result<Done, PodError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let err = |what, source| PodError {
        namespace: ns.clone(),
        name: name.clone(),
        what,
        source,
    };
    let mut pod = pod;
    let mut decided = decision(ctx, &pod).await;
    let mut last_refusal = None;
    for attempt in 0..3 {
        if attempt > 0 {
            match api
                .get_opt(&name)
                .await
                .map_err(|e| err("read the pod again", e))?
            {
                Some(p) => pod = p,
                None => return Ok(Done::Gone),
            }
        }
        if !gated(&pod) {
            return Ok(Done::Gone);
        }
        if attempt == 2 {
            let why: &kube::Error = last_refusal.as_ref().expect("set by the refused attempts");
            decided = Decision {
                outcome: decided.outcome.clone(),
                changes: None,
                message: format!(
                    "{}; but the API server refused the change ({why}): only the gate was removed",
                    decided.message
                ),
            };
        } else if attempt == 1 {
            decided = decision(ctx, &pod).await;
        }
        match apply(&api, &name, patch(&pod, &decided, &ctx.prefix)).await {
            Ok(_) => {
                tell(ctx, &pod, &decided).await;
                return Ok(Done::Decided(Box::new(decided)));
            }
            Err(e) if refused(&e) && attempt < 2 => last_refusal = Some(e),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Done::Gone),
            Err(e) => return Err(err("remove the scheduling gate", e)),
        }
    }
    unreachable!("the third attempt returns")
}

/// The Event reason for an outcome.
pub fn reason(o: &Outcome) -> (&'static str, EventType) {
    match o {
        Outcome::Placed { .. } => ("Placed", EventType::Normal),
        Outcome::Covered { .. } | Outcome::Constrained { .. } => {
            ("PlacementNotNeeded", EventType::Normal)
        }
        Outcome::Unresolved { .. } => ("PlatformsUnknown", EventType::Warning),
        Outcome::NoCommonArch
        | Outcome::NoCapableNode { .. }
        | Outcome::BadReference { .. }
        | Outcome::NoNodes => ("NotPlaced", EventType::Warning),
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

async fn tell<F>(ctx: &Ctx<F>, pod: &Pod, d: &Decision) {
    let (reason, type_) = reason(&d.outcome);
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(&d.message, NOTE_MAX)),
        action: "Place".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &pod.object_ref(&())).await {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        tracing::warn!(pod = %pod_name, error = %e, "cannot record the placement Event (the decision stands). Hint: the controller needs create on events.k8s.io events");
    }
}
