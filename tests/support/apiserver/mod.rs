//! A Kubernetes API server for the parts the node labeller relies on, over HTTPS with a test
//! CA: Node GET and LIST (fieldSelector metadata.name), JSON merge-patch PATCH with
//! resourceVersion bumps and preconditions, bearer-token authentication (401), per-user RBAC
//! denials (403), 404, injected 409/429(+Retry-After)/5xx, Status error bodies shaped like the
//! real server's, SelfSubjectReview, and the discovery documents kubectl asks for.
//! Every request is logged (method, path, query, user, body, time) so tests count them.
//! Scripts in a sandbox steer it through `POST /_test/deny` and `/_test/allow`
//! (`?user=U&verb=V`), paths no real API server has.

pub mod client;
mod http;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub user: Option<String>,
    /// The bearer token presented, if any.
    pub token: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    pub code: u16,
    pub at: Instant,
}

/// An answer forced on the next request with this method (consumed in order).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub code: u16,
    pub retry_after: Option<u32>,
}

#[derive(Default)]
pub struct State {
    pub nodes: BTreeMap<String, Value>,
    /// Bearer token -> user name.
    pub tokens: HashMap<String, String>,
    /// (user, verb) pairs RBAC refuses.
    pub denied: HashSet<(String, String)>,
    pub faults: VecDeque<Fault>,
    pub log: Vec<Logged>,
    resource_version: u64,
}

pub struct ApiServer {
    pub port: u16,
    pub ca_pem: String,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (ca_pem, chain, key) = super::server::test_pki();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<State>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, s) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (config, st) = (config.clone(), st.clone());
                thread::spawn(move || http::serve_connection(conn, config, st));
            }
        });
        ApiServer {
            port,
            ca_pem,
            state,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn add_token(&self, token: &str, user: &str) {
        let mut s = self.state.lock().unwrap();
        s.tokens.insert(token.into(), user.into());
    }

    /// A node with these labels and an annotation, at a fresh resourceVersion.
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)]) {
        let mut s = self.state.lock().unwrap();
        s.resource_version += 1;
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name, "uid": format!("uid-{name}"),
                "resourceVersion": s.resource_version.to_string(),
                "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}
            },
            "spec": {"podCIDR": "10.0.0.0/24"},
            "status": {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"}}
        });
        s.nodes.insert(name.to_string(), node);
    }

    /// The node's labels now.
    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        let s = self.state.lock().unwrap();
        let labels = &s.nodes[name]["metadata"]["labels"];
        serde_json::from_value(labels.clone()).unwrap_or_default()
    }

    /// Remove a label as `kubectl label node N key-` would (bumps resourceVersion).
    pub fn remove_label(&self, name: &str, key: &str) {
        let mut s = self.state.lock().unwrap();
        s.resource_version += 1;
        let rv = s.resource_version.to_string();
        let node = s.nodes.get_mut(name).unwrap();
        node["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(key);
        node["metadata"]["resourceVersion"] = Value::String(rv);
    }

    pub fn revoke_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.remove(token);
    }

    pub fn deny(&self, user: &str, verb: &str) {
        let mut s = self.state.lock().unwrap();
        s.denied.insert((user.into(), verb.into()));
    }

    pub fn allow(&self, user: &str, verb: &str) {
        let mut s = self.state.lock().unwrap();
        s.denied.remove(&(user.to_string(), verb.to_string()));
    }

    pub fn fault(&self, method: &'static str, code: u16, retry_after: Option<u32>) {
        let mut s = self.state.lock().unwrap();
        s.faults.push_back(Fault {
            method,
            code,
            retry_after,
        });
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many logged requests had this method.
    pub fn count(&self, method: &str) -> usize {
        self.log().iter().filter(|l| l.method == method).count()
    }

    /// A kubeconfig that trusts the test CA and authenticates with `user_yaml` (the body of
    /// the `user:` mapping, indented by 4 spaces).
    pub fn kubeconfig(&self, user_yaml: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\nusers:\n- name: test\n  user:\n{user_yaml}\n",
            self.url()
        )
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
