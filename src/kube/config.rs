//! Where the API server and the credentials come from, the way Kubernetes tools find them:
//! `--kubeconfig FILE`, else `$KUBECONFIG` (a `:`-separated list, merged like kubectl does),
//! else the in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and
//! CA under /var/run/secrets/kubernetes.io/serviceaccount). Never `~/.kube/config`: a node
//! agent must not pick up whatever an operator left in root's home.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ::kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use ::kube::Config;

use super::KubeError;

/// Where the client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kubeconfig(Vec<PathBuf>),
    /// The service account. `dir`: where its token and CA are read, when not at
    /// [`SERVICE_ACCOUNT_DIR`] in this namespace: after `--mount-namespace` the pod's
    /// directory, reached through a handle on the pod's root (`/proc/self/fd/<N>/...`).
    InCluster {
        dir: Option<PathBuf>,
    },
}

/// Where Kubernetes mounts a pod's service-account token and cluster CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

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
            Source::InCluster { dir: None }
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
            Source::InCluster { dir: None } => "the in-cluster service account".to_string(),
            Source::InCluster { dir: Some(d) } => format!(
                "the in-cluster service account (the pod's files, read as {})",
                d.display()
            ),
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
            Source::InCluster { dir } => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let kc = in_cluster_kubeconfig(
                    env("KUBERNETES_SERVICE_HOST"),
                    env("KUBERNETES_SERVICE_PORT"),
                    dir.as_deref(),
                )
                .map_err(|e| err(&e))?;
                // The same code path as a kubeconfig with tokenFile: kube-rs re-reads the
                // projected token as the kubelet rotates it.
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| err(&e))?
            }
        };
        // One retry policy, ours (409/429/5xx with jitter, counted), not two stacked.
        config.default_retry = false;
        Ok(config)
    }
}

/// The in-cluster configuration as a kubeconfig held in memory: the API server from
/// `KUBERNETES_SERVICE_HOST`/`_PORT` (an IPv6 address in brackets), the CA and the token file
/// from the service-account directory (`dir`, else [`SERVICE_ACCOUNT_DIR`]). Checks that both files exist,
/// so a missing one is named rather than reported as a TLS or auth failure later.
pub fn in_cluster_kubeconfig(
    host: Option<String>,
    port: Option<String>,
    dir: Option<&Path>,
) -> Result<Kubeconfig, String> {
    const HINT: &str = "in a pod Kubernetes sets it; outside one pass --kubeconfig FILE";
    let host = host.ok_or_else(|| format!("KUBERNETES_SERVICE_HOST is not set ({HINT})"))?;
    let port = port.ok_or_else(|| format!("KUBERNETES_SERVICE_PORT is not set ({HINT})"))?;
    let host = match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host,
    };
    let file = |name: &str| -> Result<String, String> {
        let logical = Path::new(SERVICE_ACCOUNT_DIR).join(name);
        let path = dir.unwrap_or(Path::new(SERVICE_ACCOUNT_DIR)).join(name);
        std::fs::metadata(&path).map_err(|e| {
            format!(
                "service-account {name} {}: {e} (read as {}). Hint: mount the service-account \
                 token (automountServiceAccountToken: true on the pod or its service account)",
                logical.display(),
                path.display()
            )
        })?;
        path.into_os_string()
            .into_string()
            .map_err(|p| format!("{}: not UTF-8", Path::new(&p).display()))
    };
    let (ca, token) = (file("ca.crt")?, file("token")?);
    let name = "in-cluster".to_string();
    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(format!("https://{host}:{port}")),
                certificate_authority: Some(ca),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                token_file: Some(token),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name),
        ..Default::default()
    })
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
        let in_cluster = Source::InCluster { dir: None };
        assert_eq!(Source::resolve(None, Some("".into())), in_cluster);
        assert_eq!(Source::resolve(None, None), in_cluster);
        assert_eq!(
            Source::Kubeconfig(vec![p("/b"), p("/c")]).describe(),
            "kubeconfig /b:/c"
        );
    }

    #[test]
    fn in_cluster_kubeconfig_reads_the_given_dir_and_names_what_is_missing() {
        let root = tempfile::tempdir().unwrap();
        let sa = root.path().join("sa");
        let s = |v: &str| Some(v.to_string());
        let missing = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa));
        let e = missing.unwrap_err();
        assert!(
            e.contains("service-account ca.crt") && e.contains("automount"),
            "{e}"
        );
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("ca.crt"), "ca").unwrap();
        let e = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa)).unwrap_err();
        assert!(e.contains("service-account token"), "{e}");
        std::fs::write(sa.join("token"), "t").unwrap();

        let kc = in_cluster_kubeconfig(s("fd00::1"), s("6443"), Some(&sa)).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://[fd00::1]:6443"));
        let ca = sa.join("ca.crt").display().to_string();
        assert_eq!(cluster.certificate_authority.as_deref(), Some(ca.as_str()));
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        let token = sa.join("token").display().to_string();
        assert_eq!(user.token_file.as_deref(), Some(token.as_str()));
        let kc = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa)).unwrap();
        let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone();
        assert_eq!(server.as_deref(), Some("https://10.0.0.1:443"));

        let e = in_cluster_kubeconfig(None, s("443"), None).unwrap_err();
        assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
        let e = in_cluster_kubeconfig(s("h"), None, None).unwrap_err();
        assert!(e.contains("KUBERNETES_SERVICE_PORT"), "{e}");
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
