//! `--listen`: a minimal HTTP/1.1 server for health checks and metrics, on its own thread.
//! GET /healthz (200 `ok` while the loop is alive), GET /readyz (200 when every requested
//! arch works, else 503), GET /metrics (Prometheus text). One request per connection, with
//! short timeouts, so a slow client cannot hold the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;

/// What the server reports, updated by the loop.
pub struct Shared {
    pub metrics: Metrics,
    pub state: Mutex<Health>,
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

/// Bind now (so a bad address fails at start), serve on a thread.
pub fn serve(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Err(e) = answer(conn, &shared) {
                    tracing::debug!(error = %e, "http request failed");
                }
            }
        })?;
    Ok(bound)
}

fn answer(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(Read::take(&conn, 8192)).read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (code, ctype, body) = route(method, path, shared);
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    if method != "HEAD" {
        conn.write_all(body.as_bytes())?;
    }
    Ok(())
}

fn route(method: &str, path: &str, shared: &Shared) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "only GET\n".into());
    }
    let health = shared
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match path.split('?').next().unwrap_or("") {
        "/healthz" if health.heartbeat.elapsed() < ALIVE => (200, TEXT, "ok\n".into()),
        "/healthz" => (503, TEXT, "the agent loop has stalled\n".into()),
        "/readyz" if health.ready => (200, TEXT, "ready\n".into()),
        "/readyz" => (
            503,
            TEXT,
            format!("not ready\n{}\n", health.not_ready.join("\n")),
        ),
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.text(),
        ),
        _ => (
            404,
            TEXT,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}
