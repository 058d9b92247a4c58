//! Where the API server and the credentials come from, the way Kubernetes tools find them:
//! `--kubeconfig FILE`, else `$KUBECONFIG` (a `:`-separated list, merged like kubectl does),
//! else the in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and
//! CA under /var/run/secrets/kubernetes.io/serviceaccount). Never `~/.kube/config`: a node
//! agent must not pick up whatever an operator left in root's home.
//!
//! A kubeconfig tells root which program to run (exec plugins) and whom to trust (CAs), so
//! every kubeconfig, and every file the chosen context names (CA, client certificate and
//! key, token file, exec command), is opened by the trust rule (`crate::trust`) before
//! kube-rs sees it; the kubeconfig is parsed from the checked handle. kube-rs then reads the
//! referenced files by their resolved paths (the token file by its own path, so a rotated
//! token is picked up), which only root can change.

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
                    let kc = read_kubeconfig(p).map_err(|detail| KubeError::Config {
                        source_desc: format!("kubeconfig {}", p.display()),
                        detail,
                    })?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m.merge(kc).map_err(|e| err(&e))?,
                    });
                }
                let mut kc = merged.ok_or_else(|| err(&"no file given"))?;
                check_references(&mut kc).map_err(|e| err(&e))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| err(&e))?
            }
            Source::InCluster { dir } => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let mut kc = in_cluster_kubeconfig(
                    env("KUBERNETES_SERVICE_HOST"),
                    env("KUBERNETES_SERVICE_PORT"),
                    dir.as_deref(),
                )
                .map_err(|e| err(&e))?;
                check_references(&mut kc).map_err(|e| err(&e))?;
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

/// A kubeconfig file, opened by the trust rule and parsed from that handle; relative paths
/// in it (CA, client certificate and key, token file, an exec command with a `/`) are made
/// absolute against its directory, as kubectl and kube-rs do.
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    crate::trust::open_file(path)
        .map_err(|e| e.to_string())?
        .file
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut kc =
        Kubeconfig::from_yaml(text.trim_start_matches('\u{feff}')).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let abs = |p: &mut Option<String>| {
        if let Some(rel) = p.as_ref().filter(|r| Path::new(r).is_relative()) {
            *p = Some(dir.join(rel).to_string_lossy().into_owned());
        }
    };
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        abs(&mut c.certificate_authority);
    }
    for a in kc
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        abs(&mut a.client_certificate);
        abs(&mut a.client_key);
        abs(&mut a.token_file);
        if let Some(exec) = a.exec.as_mut() {
            if exec.command.as_deref().is_some_and(|c| c.contains('/')) {
                abs(&mut exec.command);
            }
        }
    }
    Ok(kc)
}

/// Hold every file the current context names to the trust rule: the cluster's CA, the
/// user's client certificate, key and token file, and the program of its exec plugin or
/// auth provider (looked up in `PATH` here when it has no `/`, as exec would). Each is replaced by the path the
/// trusted walk resolved, except the token file, which keeps its own path so that kube-rs
/// follows its rotation (only root can change that path, so the check holds).
fn check_references(kc: &mut Kubeconfig) -> Result<(), String> {
    let Some(ctx_name) = kc.current_context.clone() else {
        return Ok(()); // kube-rs reports the missing context
    };
    let Some(ctx) = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
    else {
        return Ok(());
    };
    let checked = |what: &str, p: &str| -> Result<String, String> {
        let f = crate::trust::open_file(Path::new(p)).map_err(|e| format!("{what}: {e}"))?;
        f.path
            .into_os_string()
            .into_string()
            .map_err(|p| format!("{what} {}: not UTF-8", Path::new(&p).display()))
    };
    let cluster = kc.clusters.iter_mut().find(|c| c.name == ctx.cluster);
    if let Some(c) = cluster.and_then(|c| c.cluster.as_mut()) {
        if let Some(ca) = &c.certificate_authority {
            c.certificate_authority = Some(checked("certificate-authority", ca)?);
        }
    }
    let user = ctx.user.as_deref();
    let auth = kc
        .auth_infos
        .iter_mut()
        .find(|a| Some(a.name.as_str()) == user);
    let Some(a) = auth.and_then(|a| a.auth_info.as_mut()) else {
        return Ok(());
    };
    for (what, field) in [
        ("client-certificate", &mut a.client_certificate),
        ("client-key", &mut a.client_key),
    ] {
        if let Some(p) = field.as_deref() {
            *field = Some(checked(what, p)?);
        }
    }
    if let Some(t) = &a.token_file {
        checked("tokenFile", t)?;
    }
    if let Some(cmd) = a.exec.as_mut().and_then(|e| e.command.as_mut()) {
        *cmd = checked("exec command", &program(cmd)?)?;
    }
    // The legacy gcp auth provider runs `cmd-path` too.
    if let Some(cmd) = a
        .auth_provider
        .as_mut()
        .and_then(|p| p.config.get_mut("cmd-path"))
    {
        *cmd = checked("auth-provider cmd-path", &program(cmd)?)?;
    }
    Ok(())
}

fn program(cmd: &str) -> Result<String, String> {
    find_program(cmd, std::env::var_os("PATH"))
        .ok_or_else(|| format!("command {cmd}: not found in PATH"))
}

/// Where exec would find `cmd`: itself when it has a `/`, else the first `PATH` entry that
/// holds a file of that name.
fn find_program(cmd: &str, path: Option<OsString>) -> Option<String> {
    if cmd.contains('/') {
        return Some(cmd.to_string());
    }
    std::env::split_paths(&path.unwrap_or_default())
        .filter(|d| d.is_absolute())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .and_then(|p| p.into_os_string().into_string().ok())
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
mod tests;
