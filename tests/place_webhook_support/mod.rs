//! What tests/place_webhook.rs and benches/placement_webhook.rs share: a kube client, an
//! HTTPS client for the webhook (rustls, trusting the generated CA), AdmissionReviews, and the
//! component's MutatingWebhookConfiguration re-pointed at a webhook on loopback.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client as cluster-admin from `kubeconfig`.
pub fn client(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> kube::Client {
    let source = binfmtd::kube::Source::Kubeconfig(vec![kubeconfig.to_path_buf()]);
    let config = rt.block_on(source.load()).unwrap();
    let _guard = rt.enter();
    kube::Client::try_from(config).unwrap()
}

/// A TLS client that trusts only `ca_pem`.
pub fn tls_client(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTPS request to `addr` as `name` (status, body), on a connection of its own that the
/// server closes after answering (`Connection: close`; `Kept` reuses one).
pub fn https(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut sock = TcpStream::connect(addr)?;
    // As Go's clients (the API server's) do: no Nagle delay on the handshake's last flight.
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let server = ServerName::try_from(name.to_string()).unwrap();
    let mut conn =
        rustls::ClientConnection::new(tls.clone(), server).map_err(std::io::Error::other)?;
    let mut s = rustls::Stream::new(&mut conn, &mut sock);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)?;
    s.flush()?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify: what was read is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| out[i + 4..].to_vec())
        .unwrap_or_default();
    Ok((code, body))
}

/// Reads one HTTP/1.1 response with a Content-Length body off `s`: (status, head, body).
pub fn response(s: &mut impl Read) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let closed =
        |what: &str| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_string());
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
            while data.len() < end + 4 + len {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(closed("closed in the middle of a body"));
                }
                data.extend_from_slice(&buf[..n]);
            }
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return Ok((code, head, data[end + 4..end + 4 + len].to_vec()));
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(closed("closed before a response head"));
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// One TLS connection kept open for many requests (HTTP/1.1 keep-alive), as the API server's
/// client keeps its connections to a webhook.
pub struct Kept {
    sock: TcpStream,
    conn: rustls::ClientConnection,
}

impl Kept {
    pub fn connect(
        tls: &Arc<rustls::ClientConfig>,
        addr: SocketAddr,
        name: &str,
    ) -> std::io::Result<Kept> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let server = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
        let conn =
            rustls::ClientConnection::new(tls.clone(), server).map_err(std::io::Error::other)?;
        Ok(Kept { sock, conn })
    }

    /// The connection as a stream, for requests `post` would not send.
    pub fn stream(&mut self) -> rustls::Stream<'_, rustls::ClientConnection, TcpStream> {
        rustls::Stream::new(&mut self.conn, &mut self.sock)
    }

    /// POST `body` as JSON to `path` on this connection: (status, head, body).
    pub fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, String, Vec<u8>)> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let mut s = self.stream();
        s.write_all(&req)?;
        s.flush()?;
        response(&mut s)
    }
}

/// An AdmissionReview for creating pod `name` in `ns`.
pub fn review(ns: &str, name: &str, uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "operation": "CREATE", "namespace": ns,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}
        }
    }))
    .unwrap()
}

/// The component's MutatingWebhookConfiguration (daemonset/components/placement/webhook.yaml,
/// as kubectl reads it), renamed to `name`, calling `url`, with its own namespace `own` and
/// limited to namespaces labelled `suite=<name>` so the tests of one binary do not meet.
pub fn mwc(component_json: &Value, name: &str, url: &str, own: &str) -> Value {
    let mut m = component_json.clone();
    m["metadata"] = json!({"name": name});
    let w = &mut m["webhooks"][0];
    w["clientConfig"] = json!({"url": url});
    let exprs = w["namespaceSelector"]["matchExpressions"]
        .as_array_mut()
        .unwrap();
    for e in exprs.iter_mut() {
        if e["key"] == "kubernetes.io/metadata.name" {
            e["values"] = json!(["kube-system", own]);
        }
    }
    exprs.push(json!({"key": "suite", "operator": "In", "values": [name]}));
    m
}

/// A port nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The component's MutatingWebhookConfiguration (daemonset/components/placement/webhook.yaml)
/// as the cluster's kubectl reads it.
pub fn component_webhook(c: &crate::common::cluster::Cluster) -> Value {
    let out = c
        .kubectl(
            &[
                "create",
                "--dry-run=client",
                "-o",
                "json",
                "-f",
                "daemonset/components/placement/webhook.yaml",
            ],
            None,
        )
        .success();
    serde_json::from_str(&out.stdout).unwrap()
}
