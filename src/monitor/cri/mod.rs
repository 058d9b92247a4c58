//! Pod namespace/name for exec events, from the node's container runtime over CRI
//! (`runtime.v1.RuntimeService/ListPodSandbox` on its unix socket, e.g. containerd's
//! /run/containerd/containerd.sock). gRPC here is HTTP/2 (h2) with a 5-byte frame per message;
//! the protobuf is decoded by hand, so no protoc and no gRPC stack.
//!
//! | module  | what it holds                                                    | effects      |
//! |---------|------------------------------------------------------------------|--------------|
//! | `proto` | ListPodSandboxResponse decoder, gRPC message frames              | none         |
//! | `cache` | pod UID -> namespace/name, when to ask the runtime again         | none         |
//! | (here)  | the call over the socket; `Resolver`; `Named`, a `Sink` adapter  | socket       |

pub mod cache;
pub mod proto;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use cache::PodName;
pub use proto::Sandbox;

use super::run::{Ready, Sink};
use super::Event;

/// containerd's CRI socket, used when it exists and no other is named.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// A response larger than this is refused (a node's pod list is far smaller).
pub const MAX_RESPONSE: usize = 16 << 20;
/// How long one call may take, connect to last byte; the exec watch waits for it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const METHOD: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

#[derive(Debug, thiserror::Error)]
#[error("CRI ListPodSandbox on {}: {what}. Hint: {hint}", socket.display())]
pub struct CriError {
    pub socket: PathBuf,
    pub what: String,
    pub hint: &'static str,
}

const HINT_SOCKET: &str = "pass the runtime's CRI socket with --cri-socket (containerd: /run/containerd/containerd.sock; CRI-O: /var/run/crio/crio.sock), mounted into the pod in a DaemonSet, and run as root";
const HINT_RUNTIME: &str =
    "the runtime must serve CRI v1 (containerd 1.6+ with its CRI plugin enabled, CRI-O 1.20+)";

fn err(socket: &Path, what: impl Into<String>, hint: &'static str) -> CriError {
    CriError {
        socket: socket.to_path_buf(),
        what: what.into(),
        hint,
    }
}

/// Lists the runtime's pod sandboxes (ready and not ready), within `timeout`.
pub fn list_pod_sandboxes(socket: &Path, timeout: Duration) -> Result<Vec<Sandbox>, CriError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| {
            err(
                socket,
                format!("cannot start an I/O runtime: {e}"),
                HINT_SOCKET,
            )
        })?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, call(socket)).await {
            Ok(r) => r,
            Err(_) => Err(err(
                socket,
                format!("no answer within {timeout:?}"),
                "check that the runtime is alive (crictl pods)",
            )),
        }
    })
}

async fn call(socket: &Path) -> Result<Vec<Sandbox>, CriError> {
    let io = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| err(socket, format!("cannot connect: {e}"), HINT_SOCKET))?;
    let h2e = |what: &str, e: h2::Error| err(socket, format!("{what}: {e}"), HINT_RUNTIME);
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 20)
        .max_header_list_size(64 << 10)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| h2e("HTTP/2 handshake failed", e))?;
    // The connection is driven beside the request; it ends when the client is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client
        .ready()
        .await
        .map_err(|e| h2e("the connection closed", e))?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{METHOD}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| {
            err(
                socket,
                format!("cannot build the request: {e}"),
                HINT_RUNTIME,
            )
        })?;
    let (resp, mut send) = client
        .send_request(req, false)
        .map_err(|e| h2e("cannot send the request", e))?;
    // ListPodSandboxRequest without a filter: the empty message.
    send.send_data(Bytes::from(proto::frame(&[])), true)
        .map_err(|e| h2e("cannot send the request", e))?;
    let resp = resp.await.map_err(|e| h2e("no response", e))?;
    let (head, mut body) = resp.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(err(
            socket,
            format!("HTTP status {}", head.status),
            HINT_RUNTIME,
        ));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| h2e("the response broke off", e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > MAX_RESPONSE + 5 {
            return Err(err(
                socket,
                format!("the response is larger than {MAX_RESPONSE} bytes"),
                HINT_RUNTIME,
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| h2e("the response broke off", e))?;
    // A failed call may answer with headers only ("trailers-only"); else the status trails.
    let status = |m: &http::HeaderMap| {
        m.get("grpc-status")
            .map(|v| v.to_str().unwrap_or("?").to_string())
    };
    let message = |m: &http::HeaderMap| {
        m.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (code, msg) = match trailers
        .as_ref()
        .and_then(|t| status(t).map(|s| (s, message(t))))
    {
        Some(s) => s,
        None => match status(&head.headers) {
            Some(s) => (s, message(&head.headers)),
            None => return Err(err(socket, "no grpc-status in the response", HINT_RUNTIME)),
        },
    };
    if code != "0" {
        // 12 = UNIMPLEMENTED: the socket serves gRPC but not CRI v1 (e.g. the CRI plugin is off).
        return Err(err(
            socket,
            format!("gRPC status {code} {msg}"),
            HINT_RUNTIME,
        ));
    }
    let msg = proto::unframe(&buf).ok_or_else(|| {
        err(
            socket,
            format!("the response is not one gRPC message ({} bytes)", buf.len()),
            HINT_RUNTIME,
        )
    })?;
    proto::list_pod_sandbox_response(msg).map_err(|e| {
        err(
            socket,
            format!("cannot decode the response: {e}"),
            HINT_RUNTIME,
        )
    })
}

/// Names pods by UID through the runtime, asking at most once per `cache::MIN_REFRESH`.
pub struct Resolver {
    socket: PathBuf,
    names: cache::Names,
    /// The last failure was reported; said once until a call works again.
    warned: bool,
}

impl Resolver {
    pub fn new(socket: PathBuf) -> Resolver {
        Resolver {
            socket,
            names: cache::Names::default(),
            warned: false,
        }
    }

    pub fn name(&mut self, uid: &str) -> Option<&PodName> {
        let now = Instant::now();
        if self.names.should_refresh(uid, now) {
            match list_pod_sandboxes(&self.socket, CALL_TIMEOUT) {
                Ok(s) => {
                    self.names.refreshed(now, s);
                    self.warned = false;
                }
                Err(e) => {
                    self.names.failed(now);
                    if !self.warned {
                        tracing::warn!("{e}; pods are named by UID only until it answers");
                        self.warned = true;
                    }
                }
            }
        }
        self.names.get(uid)
    }
}

/// The socket to use: the one named, else containerd's when it exists, else none (events
/// then carry the pod UID only; `why` says so once).
pub fn choose_socket(named: Option<PathBuf>) -> (Option<PathBuf>, Option<String>) {
    match named {
        Some(p) => (Some(p), None),
        None if Path::new(DEFAULT_SOCKET).exists() => (Some(PathBuf::from(DEFAULT_SOCKET)), None),
        None => (
            None,
            Some(format!(
                "no CRI socket at {DEFAULT_SOCKET}: pods are named by UID only. Hint: pass --cri-socket, and in a DaemonSet mount the runtime's socket"
            )),
        ),
    }
}

/// A `Sink` that fills in `pod_namespace`/`pod_name` before passing each event on.
pub struct Named<'a> {
    pub inner: &'a mut dyn Sink,
    pub resolver: Resolver,
}

impl Sink for Named<'_> {
    fn ready(&mut self, ready: &Ready) {
        self.inner.ready(ready)
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        let Some(uid) = event.pod_uid.as_deref() else {
            return self.inner.event(event);
        };
        let Some(p) = self.resolver.name(uid) else {
            return self.inner.event(event);
        };
        let mut e = event.clone();
        e.pod_namespace = Some(p.namespace.clone());
        e.pod_name = Some(p.name.clone());
        self.inner.event(&e)
    }

    fn tick(&mut self) {
        self.inner.tick()
    }
}
