//! `--listen`: a minimal HTTP/1.1 server for health checks and metrics. GET /healthz (200
//! `ok` while the loop is alive), GET /readyz (200 when every requested arch works, else
//! 503), GET /metrics (Prometheus text). One request per connection.
//!
//! Hostile clients are the design constraint: the kubelet's liveness probe must get its
//! answer while others hold connections open or drip their requests. So each connection has
//! its own thread and one absolute deadline for reading the request and writing the answer,
//! at most `MAX_CONNECTIONS` are open (a new one closes the oldest rather than wait), the
//! request head is capped, and running out of file descriptors pauses accepting instead of
//! spinning. The accept loop and the request reader are shared with the placement webhook
//! (`place::webhook`), which answers over TLS through the same protections.
//!
//! | file      | what it holds                                                          |
//! |-----------|------------------------------------------------------------------------|
//! | `accept`  | the accept loop: connection table, shedding, accept-error backoff      |
//! | `request` | reading one request head within the deadline; the request line         |

pub mod accept;
pub mod request;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use request::HeadError;

/// What the server answers from: the loop's health and the metrics text. The agent's
/// `Shared` is one; `binfmtd place` has its own.
pub trait Report: Send + Sync + 'static {
    fn health(&self) -> Health;
    fn metrics_text(&self) -> String;
}

impl Report for Shared {
    fn health(&self) -> Health {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn metrics_text(&self) -> String {
        self.metrics.text()
    }
}

/// What the server reports, updated by the loop.
pub struct Shared {
    pub metrics: Metrics,
    pub state: Mutex<Health>,
}

impl Shared {
    /// Fresh counters, not ready yet for the reason `not_ready`.
    pub fn new(not_ready: &str) -> Shared {
        Shared {
            metrics: Metrics::new(),
            state: Mutex::new(Health {
                heartbeat: std::time::Instant::now(),
                ready: false,
                not_ready: vec![not_ready.into()],
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Health {
    /// When the loop last came round (or started a converge pass).
    pub heartbeat: Instant,
    pub ready: bool,
    /// One line per arch: why it is not ready.
    pub not_ready: Vec<String>,
}

/// How long the loop may go without a heartbeat before /healthz fails. Generous: a first
/// converge pass downloads interpreters.
const ALIVE: Duration = Duration::from_secs(600);

/// From accepting a connection to the last byte of the answer. A probe or a scrape sends
/// its request at once; a client still sending after this is cut off.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Connections open at once; one more closes the oldest.
pub const MAX_CONNECTIONS: usize = 64;

/// Bind now (so a bad address fails at start), serve on a thread.
pub fn serve<R: Report>(addr: SocketAddr, shared: Arc<R>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let handler: accept::Handler =
                Arc::new(move |conn, deadline| answer(conn, &*shared, deadline));
            accept::run(listener, bound, "--listen", handler)
        })?;
    Ok(bound)
}

/// Read one request and answer it, all before `deadline`.
fn answer<R: Report>(conn: &TcpStream, shared: &R, deadline: Instant) -> std::io::Result<()> {
    let mut wire = request::Socket(conn);
    let response = match request::read_head(&mut wire, deadline) {
        Ok(head) => {
            let (method, path) = request::request_line(&head);
            let (code, ctype, body) = route(method, path, shared);
            render(code, ctype, &body, method == "HEAD")
        }
        Err(HeadError::TooLarge) => {
            let body = format!("request head over {} bytes\n", request::MAX_HEAD);
            render(431, TEXT, &body, false)
        }
        // Gone or too slow: nobody to answer.
        Err(HeadError::Closed) => return Ok(()),
        Err(HeadError::TimedOut) => return Err(std::io::ErrorKind::TimedOut.into()),
        Err(HeadError::Io(e)) => return Err(e),
    };
    request::write_by(&mut wire, &response, deadline)
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The whole response: status line, headers and (unless HEAD) the body.
fn render(code: u16, ctype: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

fn route<R: Report>(method: &str, path: &str, shared: &R) -> (u16, &'static str, String) {
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "only GET\n".into());
    }
    let health = shared.health();
    match path.split('?').next().unwrap_or("") {
        "/healthz" if health.heartbeat.elapsed() < ALIVE => (200, TEXT, "ok\n".into()),
        "/healthz" => (503, TEXT, "the main loop has stalled\n".into()),
        "/readyz" if health.ready => (200, TEXT, "ready\n".into()),
        "/readyz" => (
            503,
            TEXT,
            format!("not ready\n{}\n", health.not_ready.join("\n")),
        ),
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics_text(),
        ),
        _ => (
            404,
            TEXT,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}
