//! The admission endpoint: HTTPS, POST /mutate, answered by `placement::admission::admit`
//! (no I/O in the admission path). It runs on every replica.
//!
//! The server is the agent's hardened one (`agent::http::accept`): a thread per connection,
//! one absolute deadline per connection covering the TLS handshake, the request and the
//! answer, at most 64 open connections (a new one closes the oldest), a capped head and a
//! capped body, and backoff when file descriptors run out. A client that drips bytes (or
//! never finishes its handshake) holds only its own connection until the deadline.
//!
//! The namespace opt-in is the MutatingWebhookConfiguration's namespaceSelector, so every
//! request that reaches here is from an opted-in namespace. A request that is not an
//! AdmissionReview gets 400 (the API server applies failurePolicy Ignore: the pod is created
//! ungated).
//!
//! | file   | what it holds                                          |
//! |--------|--------------------------------------------------------|
//! | `body` | Content-Length, the capped body read by the deadline   |

pub mod body;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::cert::{cert_err, ServingCert};
use super::PlaceError;
use crate::agent::http::accept::{self, Handler};
use crate::agent::http::request::{self, HeadError, Socket, Wire};
use body::BodyError;

/// From accepting a connection (or from the first bytes of a later request on a kept-alive
/// one) to the last byte of the answer. The API server's call times out after the
/// configuration's timeoutSeconds (2 s); nothing useful happens after that.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// How long a kept-alive connection waits for its next request. The API server reuses its
/// connections (a TLS handshake per review cost more than the review, and under load the
/// calls timed out and pods went ungated); it closes idle ones after 90 s (Go's transport),
/// so the client, not this server, ends an idle connection: a server-side close can race a
/// review being sent, which fails that pod open.
pub const IDLE: Duration = Duration::from_secs(120);

/// Counters since start: the component hands in those its /metrics serves (shared atomics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Admission reviews answered.
    pub reviews: Counter,
    /// ... of which added the gate.
    pub gated: Counter,
    /// Requests refused (not an AdmissionReview, bad length, wrong path or method).
    pub refused: Counter,
}

/// A running webhook server.
#[derive(Clone)]
pub struct WebhookHandle {
    /// Where it listens (the port, when 0 was asked for).
    pub addr: SocketAddr,
    tls: Arc<RwLock<Arc<ServerConfig>>>,
    pub stats: Arc<Stats>,
}

impl WebhookHandle {
    /// Serve `cert` from the next connection on (after a renewal).
    pub fn reload(&self, cert: &ServingCert) -> Result<(), PlaceError> {
        let config = tls_config(cert)?;
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }
}

/// The rustls server configuration (ring) for `cert`.
pub fn tls_config(cert: &ServingCert) -> Result<Arc<ServerConfig>, PlaceError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err("read the serving certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| cert_err("read the serving key", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| cert_err("use the serving certificate and key", e))?;
    Ok(Arc::new(config))
}

/// Bind `listen` now (a bad address fails at start) and serve POST /mutate over TLS with
/// `cert` on a thread. `own_namespace` is never gated.
pub fn spawn(
    listen: SocketAddr,
    cert: &ServingCert,
    own_namespace: String,
) -> Result<WebhookHandle, PlaceError> {
    spawn_counting(listen, cert, own_namespace, Stats::default())
}

/// `spawn`, counting into `stats`.
pub fn spawn_counting(
    listen: SocketAddr,
    cert: &ServingCert,
    own_namespace: String,
    stats: Stats,
) -> Result<WebhookHandle, PlaceError> {
    let tls = Arc::new(RwLock::new(tls_config(cert)?));
    let listener = TcpListener::bind(listen).map_err(|source| PlaceError::Listen {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| PlaceError::Listen {
        addr: listen,
        source,
    })?;
    let handle = WebhookHandle {
        addr,
        tls,
        stats: Arc::new(stats),
    };
    let h = handle.clone();
    let own = Arc::new(own_namespace);
    let handler: Handler = Arc::new(move |conn, accepted| {
        // The shared loop's deadline is the agent's 5 s; admission wants less.
        let deadline = accepted.min(Instant::now() + DEADLINE);
        serve_one(conn, &h, &own, deadline)
    });
    std::thread::Builder::new()
        .name("webhook".into())
        .spawn(move || accept::run(listener, addr, "--webhook-listen", handler))
        .map_err(|source| PlaceError::Listen {
            addr: listen,
            source,
        })?;
    Ok(handle)
}

/// A TLS session over one connection, readable and writable as a `Wire`.
struct Tls<'a> {
    session: rustls::ServerConnection,
    sock: Socket<'a>,
}

/// Reads and writes drive the TLS session one socket operation at a time, so the caller's
/// deadline is checked between them. (rustls::Stream finishes a handshake in one call, and a
/// client that sends a byte now and then would keep that call, and the connection, alive.)
impl Read for Tls<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.session.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        // Handshake messages to send first (ServerHello and the rest).
        self.send_pending()?;
        if self.session.read_tls(&mut self.sock)? == 0 {
            return Ok(0);
        }
        if let Err(e) = self.session.process_new_packets() {
            // Tell the client why (the alert), then give up on the connection.
            let _ = self.send_pending();
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        match self.session.reader().read(buf) {
            Ok(n) => Ok(n),
            // No plaintext yet: back to the caller, which checks its deadline and reads again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(e),
            Err(e) => Err(e),
        }
    }
}

impl Write for Tls<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.send_pending()?;
        self.session.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send_pending()
    }
}

impl Wire for Tls<'_> {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.sock.set_timeout(timeout)
    }
}

impl Tls<'_> {
    /// Send what rustls holds, one socket write at a time (a timeout is the caller's to judge).
    fn send_pending(&mut self) -> std::io::Result<()> {
        while self.session.wants_write() {
            self.session.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    /// Send what rustls still holds (the end of the answer, close_notify) by `deadline`.
    fn finish(&mut self, deadline: Instant) -> std::io::Result<()> {
        self.session.send_close_notify();
        self.flush_by(deadline)
    }

    /// Send what rustls still holds (the end of the answer) by `deadline`.
    fn flush_by(&mut self, deadline: Instant) -> std::io::Result<()> {
        while self.session.wants_write() {
            let remaining = request::left(deadline).ok_or(std::io::ErrorKind::TimedOut)?;
            self.sock.set_timeout(remaining)?;
            match self.session.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if request::is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Answer requests on one connection: the first by `deadline`, later ones (HTTP/1.1
/// keep-alive, after a 200) each within `DEADLINE` of their first bytes, waiting at most
/// `IDLE` for them. A dripping client holds only its own connection, and at the cap the
/// oldest connection makes room, as for a one-request connection.
fn serve_one(
    conn: &TcpStream,
    handle: &WebhookHandle,
    own: &str,
    mut deadline: Instant,
) -> std::io::Result<()> {
    let config = handle.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
    let session = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = Tls {
        session,
        sock: Socket(conn),
    };
    loop {
        let (code, ctype, body, keep) = match request::read_head_and_rest(&mut tls, deadline) {
            Ok((head, rest)) => {
                let keep = body::keep_alive(&head);
                let (code, ctype, body) = answer(&mut tls, &head, rest, handle, own, deadline)?;
                (code, ctype, body, keep && code == 200)
            }
            Err(HeadError::TooLarge) => (431, TEXT, b"request head too large\n".to_vec(), false),
            Err(HeadError::Closed) => return Ok(()),
            Err(HeadError::TimedOut) => return Err(std::io::ErrorKind::TimedOut.into()),
            Err(HeadError::Io(e)) => return Err(e),
        };
        if code != 200 {
            handle.stats.refused.inc();
        }
        let response = render(code, ctype, &body, keep);
        request::write_by(&mut tls, &response, deadline)?;
        if !keep {
            return tls.finish(deadline);
        }
        tls.flush_by(deadline)?;
        if !next_request(conn)? {
            return tls.finish(Instant::now() + Duration::from_secs(1));
        }
        deadline = Instant::now() + DEADLINE;
    }
}

/// Wait up to `IDLE` for the client's next bytes: false when it closed or stayed idle.
fn next_request(conn: &TcpStream) -> std::io::Result<bool> {
    conn.set_read_timeout(Some(IDLE))?;
    match conn.peek(&mut [0u8; 1]) {
        Ok(n) => Ok(n > 0),
        Err(e) if request::is_timeout(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Route one request; for POST /mutate read the body and admit it.
fn answer(
    tls: &mut Tls<'_>,
    head: &[u8],
    rest: Vec<u8>,
    handle: &WebhookHandle,
    own: &str,
    deadline: Instant,
) -> std::io::Result<(u16, &'static str, Vec<u8>)> {
    let (method, path) = request::request_line(head);
    let path = path.split('?').next().unwrap_or("");
    let text = |code, s: String| Ok((code, TEXT, s.into_bytes()));
    match (method, path) {
        ("GET", "/healthz") => return text(200, "ok\n".into()),
        ("POST", "/mutate") => {}
        (_, "/mutate") => return text(405, "only POST /mutate\n".into()),
        _ => {
            return text(
                404,
                "not found: the admission endpoint is POST /mutate\n".into(),
            )
        }
    }
    let len = match body::content_length(head) {
        Ok(n) => n,
        Err(BodyError::NoLength) => return text(411, "a Content-Length is required\n".into()),
        Err(BodyError::TooLarge(n)) => {
            return text(
                413,
                format!("a body of {n} bytes is over {} bytes\n", body::MAX_BODY),
            )
        }
        Err(BodyError::Bad(why)) => return text(400, format!("{why}\n")),
    };
    let review = body::read_body(tls, rest, len, deadline)?;
    Ok(mutate(&review, own, &handle.stats))
}

/// The answer to one review body.
pub fn mutate(review: &[u8], own: &str, stats: &Stats) -> (u16, &'static str, Vec<u8>) {
    match crate::placement::admission::admit(review, true, own) {
        Ok(v) => {
            stats.reviews.inc();
            if v.pointer("/response/patch").is_some() {
                stats.gated.inc();
            }
            (
                200,
                "application/json",
                serde_json::to_vec(&v).unwrap_or_default(),
            )
        }
        Err(e) => (400, TEXT, format!("{e}\n").into_bytes()),
    }
}

fn render(code: u16, ctype: &str, body: &[u8], keep: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        _ => "Request Header Fields Too Large",
    };
    let connection = if keep { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
