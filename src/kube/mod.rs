//! Publishing node labels to the Node object through kube-rs.
//!
//! Cost on the API server is the design constraint (a DaemonSet runs on every node): the
//! labeller keeps the node's labels as last seen (from a GET or a PATCH answer) and writes
//! only when the desired labels differ from them, with one JSON merge patch that touches
//! only keys under the prefix. The caller forgets that copy periodically (`forget`), so a
//! label removed by hand is re-read and comes back. RBAC needed: `get` and `patch` on
//! `nodes` (plus `create` on `selfsubjectreviews`, which every authenticated user has, when
//! the node name is not given).

mod api;
pub mod config;
mod publisher;
pub mod retry;

use ::kube::core::params::{GetParams, Patch, PatchParams, PostParams};
use ::kube::Client;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Node;

pub use api::Counters;
pub use config::Source;
pub use publisher::{Publisher, PublisherState};

use crate::labels::{merge_patch, Labels, Prefix};
use retry::Verdict;

const NODES: &str = "/api/v1/nodes";
const SELF_SUBJECT_REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
/// The field manager named in the node's managedFields for the labels binfmtd sets.
pub const FIELD_MANAGER: &str = "binfmtd";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot load the Kubernetes client configuration from {source_desc}: {detail}. Hint: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account token mounted")]
    Config { source_desc: String, detail: String },
    #[error("cannot tell which node this is: the API server says we are '{user}', not a kubelet (system:node:<name>). Hint: pass --node-name, or set NODE_NAME (in a DaemonSet from the downward API: fieldRef spec.nodeName)")]
    NoNodeName { user: String },
    #[error("node {node}: credentials from {source_desc} were rejected (HTTP 401: {message}). Hint: the token expired or was revoked; for a service account check that it still exists and its token is mounted; for a kubeconfig check its user (exec plugin)")]
    Unauthorized {
        node: String,
        source_desc: String,
        message: String,
    },
    #[error("node {node}: {who} may not {verb} nodes (HTTP 403: {message}). Hint: bind a ClusterRole with the rule {{apiGroups: [\"\"], resources: [\"nodes\"], verbs: [\"get\", \"patch\"]}} to {who} (README, \"Node labels\")")]
    Forbidden {
        node: String,
        verb: &'static str,
        who: String,
        message: String,
    },
    #[error("node {node} does not exist on the API server (HTTP 404). Hint: --node-name/NODE_NAME must be the Node object's name (kubectl get nodes), which can differ from the hostname")]
    NotFound { node: String },
    #[error("{what}: HTTP {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    #[error("{what}: gave up after {attempts} attempts; last: {last}")]
    GaveUp {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{what}: unexpected answer: {detail}")]
    Decode { what: String, detail: String },
}

/// What one publish did.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    /// The node already carried the desired labels: nothing was written.
    Unchanged,
    /// One merge patch was sent; this is it.
    Patched(serde_json::Value),
}

/// Who and where: everything a publish needs besides the labels.
#[derive(Debug, Clone)]
pub struct Target {
    pub source: Source,
    /// `--node-name` or `NODE_NAME`; `None` asks the API server (SelfSubjectReview).
    pub node_name: Option<String>,
    pub prefix: Prefix,
}

pub struct Labeller {
    client: Client,
    target: Target,
    user: Option<String>,
    /// The node's labels as last seen; `None` makes the next publish read them first.
    known: Option<Labels>,
    counters: Counters,
}

impl Labeller {
    /// Load the configuration and build the client. Sends no request.
    pub async fn connect(target: Target) -> Result<Labeller, KubeError> {
        let config = target.source.load().await?;
        let client = Client::try_from(config).map_err(|e| KubeError::Config {
            source_desc: target.source.describe(),
            detail: e.to_string(),
        })?;
        Ok(Labeller {
            client,
            target,
            user: None,
            known: None,
            counters: Counters::default(),
        })
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Drop the remembered labels: the next publish reads the node again (periodic re-read,
    /// so labels changed by hand are put back).
    pub fn forget(&mut self) {
        self.known = None;
    }

    /// The node's name, asking the API server once when it was not given.
    pub async fn node_name(&mut self) -> Result<String, KubeError> {
        if let Some(n) = &self.target.node_name {
            return Ok(n.clone());
        }
        let user = self.whoami().await?;
        let node = config::node_from_user(&user)
            .ok_or(KubeError::NoNodeName { user: user.clone() })?
            .to_string();
        self.target.node_name = Some(node.clone());
        Ok(node)
    }

    /// Make the node carry `desired` under the prefix: at most one merge patch, none when
    /// the labels as last seen already match.
    pub async fn publish(&mut self, desired: &Labels) -> Result<Published, KubeError> {
        let node = self.node_name().await?;
        let what = format!("patch labels of node {node}");
        for attempt in 0..retry::ATTEMPTS {
            let current = match &self.known {
                Some(k) => k.clone(),
                None => self.read(&node).await?,
            };
            let Some(patch) = merge_patch(&current, desired, &self.target.prefix) else {
                return Ok(Published::Unchanged);
            };
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            };
            let req = ::kube::core::Request::new(NODES)
                .patch(&node, &params, &Patch::Merge(&patch))
                .map_err(|e| decode(&what, e))?;
            let answer =
                api::with_retries(&self.client, &mut self.counters, &what, || req.clone()).await?;
            match retry::classify(answer.code) {
                Verdict::Done => {
                    self.known = Some(labels_of(&what, &answer.body)?);
                    return Ok(Published::Patched(patch));
                }
                Verdict::Reread => {
                    // The node changed under us: read it again and recompute the patch.
                    self.known = None;
                    let wait = retry::delay(attempt, rand::random::<f64>(), answer.retry_after);
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(self.refusal(&node, "patch", answer).await),
            }
        }
        Err(KubeError::GaveUp {
            what,
            attempts: retry::ATTEMPTS,
            last: "HTTP 409 Conflict on every attempt".into(),
        })
    }

    /// GET the node and remember its labels.
    async fn read(&mut self, node: &str) -> Result<Labels, KubeError> {
        let what = format!("read node {node}");
        let req = ::kube::core::Request::new(NODES)
            .get(node, &GetParams::default())
            .map_err(|e| decode(&what, e))?;
        let answer =
            api::with_retries(&self.client, &mut self.counters, &what, || req.clone()).await?;
        if retry::classify(answer.code) != Verdict::Done {
            return Err(self.refusal(node, "get", answer).await);
        }
        let labels = labels_of(&what, &answer.body)?;
        self.known = Some(labels.clone());
        Ok(labels)
    }

    /// Ask the API server who these credentials are (SelfSubjectReview).
    async fn whoami(&mut self) -> Result<String, KubeError> {
        if let Some(u) = &self.user {
            return Ok(u.clone());
        }
        let what = "ask the API server who we are (SelfSubjectReview)".to_string();
        let body = serde_json::to_vec(&SelfSubjectReview::default()).expect("serializable");
        let req = ::kube::core::Request::new(SELF_SUBJECT_REVIEWS)
            .create(&PostParams::default(), body)
            .map_err(|e| decode(&what, e))?;
        let answer =
            api::with_retries(&self.client, &mut self.counters, &what, || req.clone()).await?;
        if retry::classify(answer.code) != Verdict::Done {
            return Err(KubeError::Api {
                what,
                code: answer.code,
                message: answer.message(),
            });
        }
        let review: SelfSubjectReview =
            serde_json::from_slice(&answer.body).map_err(|e| decode(&what, e))?;
        let user = review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| decode(&what, "no status.userInfo.username"))?;
        self.user = Some(user.clone());
        Ok(user)
    }

    /// The error for a non-retryable answer, naming the RBAC rule for 403.
    async fn refusal(&mut self, node: &str, verb: &'static str, answer: api::Answer) -> KubeError {
        let message = answer.message();
        match answer.code {
            401 => KubeError::Unauthorized {
                node: node.to_string(),
                source_desc: self.target.source.describe(),
                message,
            },
            403 => {
                let who = match self.whoami().await {
                    Ok(u) => format!("user '{u}'"),
                    Err(_) => format!("the identity from {}", self.target.source.describe()),
                };
                KubeError::Forbidden {
                    node: node.to_string(),
                    verb,
                    who,
                    message,
                }
            }
            404 => KubeError::NotFound {
                node: node.to_string(),
            },
            code => KubeError::Api {
                what: format!("{verb} node {node}"),
                code,
                message,
            },
        }
    }
}

fn decode(what: &str, e: impl std::fmt::Display) -> KubeError {
    KubeError::Decode {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

fn labels_of(what: &str, body: &[u8]) -> Result<Labels, KubeError> {
    let node: Node = serde_json::from_slice(body).map_err(|e| decode(what, e))?;
    Ok(node.metadata.labels.unwrap_or_default())
}
