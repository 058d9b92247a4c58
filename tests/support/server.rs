//! An HTTPS server on 127.0.0.1 with a CA generated at test time, serving real files and
//! misbehaving on request: 404, 5xx, reset mid-body, stall, lying sizes, redirects.
//! Plain std threads and rustls: every connection is one request then close.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the server does for one request to a path.
#[derive(Clone)]
pub enum Behavior {
    /// 200 with the bytes and a Content-Length.
    Serve(Arc<Vec<u8>>),
    /// 200 with the bytes, no Content-Length: the body ends when the connection closes.
    ServeUntilClose(Arc<Vec<u8>>),
    /// 200, sent in `chunk`-byte pieces with `pause` between them (crash tests need time).
    Throttled(Arc<Vec<u8>>, usize, Duration),
    Status(u16),
    /// Headers and the first `n` bytes, then a TCP reset.
    ResetAfter(Arc<Vec<u8>>, usize),
    /// Headers and the first `n` bytes, then silence for `hold` (bounded; the test stops).
    StallAfter(Arc<Vec<u8>>, usize, Duration),
    /// 302 to this location.
    Redirect(String),
}

pub struct Server {
    pub port: u16,
    /// PEM of the test CA, written to a file the client is told to trust.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    routes: Arc<Mutex<HashMap<String, Vec<Behavior>>>>,
    /// Every request path, in arrival order.
    pub hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, chain, key) = test_pki();
        let ca_file = dir.path().join("test-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Vec<Behavior>>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (config, r, h, s) = (config.clone(), r.clone(), h.clone(), s.clone());
                thread::spawn(move || handle(conn, config, r, h, s));
            }
        });
        Server {
            port,
            ca_file,
            _dir: dir,
            routes,
            hits,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Requests to `path` get these behaviors in turn; the last one repeats.
    pub fn route(&self, path: &str, behaviors: Vec<Behavior>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), behaviors);
    }

    pub fn hits_for(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A CA, and a leaf for 127.0.0.1/localhost signed by it.
pub fn test_pki() -> (
    String,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "binfmtd test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca_cert.pem(), vec![leaf_cert.der().clone()], key)
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn handle(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: Arc<Mutex<HashMap<String, Vec<Behavior>>>>,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let Some(path) = read_request(&mut tls) else {
        return;
    };
    let behavior = {
        let mut hits = hits.lock().unwrap();
        let n = hits.iter().filter(|p| **p == path).count();
        hits.push(path.clone());
        let routes = routes.lock().unwrap();
        routes.get(&path).map(|b| b[n.min(b.len() - 1)].clone())
    };
    let _ = respond(&mut tls, behavior.unwrap_or(Behavior::Status(404)), &stop);
}

fn read_request(tls: &mut Tls) -> Option<String> {
    let mut reader = BufReader::new(tls);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
    }
    first.split_whitespace().nth(1).map(str::to_string)
}

fn head(tls: &mut Tls, status: u16, len: Option<usize>, extra: &str) -> std::io::Result<()> {
    let length = len
        .map(|l| format!("Content-Length: {l}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "HTTP/1.1 {status} X\r\n{length}{extra}Connection: close\r\n\r\n"
    )
}

fn respond(tls: &mut Tls, b: Behavior, stop: &AtomicBool) -> std::io::Result<()> {
    match b {
        Behavior::Serve(data) => {
            head(tls, 200, Some(data.len()), "")?;
            tls.write_all(&data)?;
        }
        Behavior::ServeUntilClose(data) => {
            head(tls, 200, None, "")?;
            tls.write_all(&data)?;
        }
        Behavior::Throttled(data, chunk, pause) => {
            head(tls, 200, Some(data.len()), "")?;
            for piece in data.chunks(chunk) {
                tls.write_all(piece)?;
                tls.flush()?;
                thread::sleep(pause);
            }
        }
        Behavior::Status(code) => head(tls, code, Some(0), "")?,
        Behavior::Redirect(to) => head(tls, 302, Some(0), &format!("Location: {to}\r\n"))?,
        Behavior::ResetAfter(data, n) => {
            head(tls, 200, Some(data.len()), "")?;
            tls.write_all(&data[..n])?;
            tls.flush()?;
            reset(&tls.sock);
            return Ok(());
        }
        Behavior::StallAfter(data, n, hold) => {
            head(tls, 200, Some(data.len()), "")?;
            tls.write_all(&data[..n])?;
            tls.flush()?;
            let until = Instant::now() + hold;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    let mut rest = [0u8; 64];
    let _ = tls.sock.read(&mut rest);
    Ok(())
}

/// SO_LINGER 0: closing the socket then sends RST instead of FIN.
fn reset(sock: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a live socket fd with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // The caller drops the socket next; with linger 0 that close() is the RST.
}
