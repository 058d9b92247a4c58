//! The client side for tests of the labeller: a server with the binfmtd service account and
//! node n1, kubeconfigs, targets, a runtime.

use std::path::{Path, PathBuf};

use binfmtd::kube::{Labeller, Source, Target};
use binfmtd::labels::{Labels, Prefix};

use super::ApiServer;

pub const TOKEN: &str = "t0ken-for-binfmtd";
pub const SA: &str = "system:serviceaccount:kube-system:binfmtd";

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An API server knowing TOKEN (as the binfmtd service account) and node n1.
pub fn server(node_labels: &[(&str, &str)]) -> ApiServer {
    let s = ApiServer::start();
    s.add_token(TOKEN, SA);
    s.add_node("n1", node_labels);
    s
}

pub fn write_kubeconfig(dir: &Path, s: &ApiServer, user_yaml: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, s.kubeconfig(user_yaml)).unwrap();
    path
}

pub fn target(kubeconfig: PathBuf, node: Option<&str>) -> Target {
    Target {
        source: Source::Kubeconfig(vec![kubeconfig]),
        node_name: node.map(str::to_string),
        prefix: Prefix::default(),
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A labeller for n1 authenticating with TOKEN.
pub fn labeller(rt: &tokio::runtime::Runtime, dir: &Path, s: &ApiServer) -> Labeller {
    let kc = write_kubeconfig(dir, s, &format!("    token: {TOKEN}"));
    rt.block_on(Labeller::connect(target(kc, Some("n1"))))
        .unwrap()
}
