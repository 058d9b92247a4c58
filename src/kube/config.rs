//! Where the API server and the credentials come from, the way Kubernetes tools find them:
//! `--kubeconfig FILE`, else `$KUBECONFIG` (a `:`-separated list, merged like kubectl does),
//! else the in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and
//! CA under /var/run/secrets/kubernetes.io/serviceaccount). Never `~/.kube/config`: a node
//! agent must not pick up whatever an operator left in root's home.

use std::ffi::OsString;
use std::path::PathBuf;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::Config;

use super::KubeError;

/// Where the client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kubeconfig(Vec<PathBuf>),
    InCluster,
}

impl Source {
    /// The flag wins; an empty `KUBECONFIG` counts as unset.
    pub fn resolve(flag: Option<PathBuf>, env: Option<OsString>) -> Source {
        if let Some(f) = flag {
            return Source::Kubeconfig(vec![f]);
        }
        let paths: Vec<PathBuf> = env
            .as_deref()
            .map(std::env::split_paths)
            .into_iter()
            .flatten()
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if paths.is_empty() {
            Source::InCluster
        } else {
            Source::Kubeconfig(paths)
        }
    }

    /// What an error message calls this source.
    pub fn describe(&self) -> String {
        match self {
            Source::Kubeconfig(p) => {
                let list: Vec<String> = p.iter().map(|p| p.display().to_string()).collect();
                format!("kubeconfig {}", list.join(":"))
            }
            Source::InCluster => "the in-cluster service account".to_string(),
        }
    }

    /// Load the client configuration. kube-rs does the hard parts: exec credential plugins
    /// (re-run when their credential expires) and the in-cluster token file (re-read at
    /// least once a minute, so a rotated projected token is picked up).
    pub async fn load(&self) -> Result<Config, KubeError> {
        let err = |e: &dyn std::fmt::Display| KubeError::Config {
            source_desc: self.describe(),
            detail: e.to_string(),
        };
        let mut config = match self {
            Source::Kubeconfig(paths) => {
                let mut merged: Option<Kubeconfig> = None;
                for p in paths {
                    let kc = Kubeconfig::read_from(p).map_err(|e| KubeError::Config {
                        source_desc: format!("kubeconfig {}", p.display()),
                        detail: e.to_string(),
                    })?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m.merge(kc).map_err(|e| err(&e))?,
                    });
                }
                let kc = merged.ok_or_else(|| err(&"no file given"))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| err(&e))?
            }
            Source::InCluster => Config::incluster().map_err(|e| err(&e))?,
        };
        // One retry policy, ours (409/429/5xx with jitter, counted), not two stacked.
        config.default_retry = false;
        Ok(config)
    }
}

/// The node to label: `--node-name`, else `NODE_NAME` (the CLI passes both as one value),
/// else whoever the API server says we are, when that is a kubelet (`system:node:<name>`).
/// Never the hostname: on EKS the node name can be the instance id.
pub fn node_from_user(username: &str) -> Option<&str> {
    username
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_resolution() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            Source::resolve(Some(p("/a")), Some("/b".into())),
            Source::Kubeconfig(vec![p("/a")])
        );
        assert_eq!(
            Source::resolve(None, Some("/b:/c".into())),
            Source::Kubeconfig(vec![p("/b"), p("/c")])
        );
        assert_eq!(Source::resolve(None, Some("".into())), Source::InCluster);
        assert_eq!(Source::resolve(None, None), Source::InCluster);
        assert_eq!(
            Source::Kubeconfig(vec![p("/b"), p("/c")]).describe(),
            "kubeconfig /b:/c"
        );
    }

    #[test]
    fn node_names_come_only_from_kubelet_users() {
        assert_eq!(node_from_user("system:node:i-0abc123"), Some("i-0abc123"));
        assert_eq!(node_from_user("system:node:"), None);
        assert_eq!(
            node_from_user("system:serviceaccount:kube-system:binfmtd"),
            None
        );
        assert_eq!(node_from_user("admin"), None);
    }
}
