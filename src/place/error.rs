//! The placement component's error: the object, what failed, and what to do.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// An API call failed (after what retrying the caller does).
    #[error("{what}: {detail}. Hint: {hint}")]
    Kube {
        /// The verb and object, e.g. "create Secret binfmtd/binfmtd-placement-tls".
        what: String,
        detail: String,
        hint: String,
    },
    /// A certificate or key could not be generated, read or used.
    #[error("{what}: {detail}. Hint: {hint}")]
    Cert {
        what: String,
        detail: String,
        hint: String,
    },
    #[error("--webhook-listen {addr}: cannot listen: {source}. Hint: another process holds the port, or the address is not this host's")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl PlaceError {
    /// A failed API call on `what`, with the hint that fits its status code.
    pub fn kube(what: impl Into<String>, e: &kube::Error) -> PlaceError {
        let hint = match e {
            kube::Error::Api(s) if s.code == 403 => {
                "the component's ServiceAccount lacks this permission: apply the RBAC of daemonset/components/placement (README, \"Placement\")"
            }
            kube::Error::Api(s) if s.code == 401 => {
                "the credentials were refused: check the ServiceAccount token is mounted, or --kubeconfig"
            }
            kube::Error::Api(s) if s.code == 404 => {
                "the object or its namespace does not exist: apply daemonset/components/placement, or check --namespace"
            }
            _ => "the API server is unreachable or overloaded; the call is retried on the next round",
        };
        PlaceError::Kube {
            what: what.into(),
            detail: e.to_string(),
            hint: hint.into(),
        }
    }
}
