//! The clients: the kubelet's probe, a dripping client and idle connections.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The kubelet's liveness probe timeout in the DaemonSet.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// GET /healthz with the kubelet's timeout: Ok(elapsed) for a 200 `ok` within it.
pub fn probe(addr: SocketAddr) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut conn =
        TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    conn.set_write_timeout(Some(PROBE_TIMEOUT)).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = PROBE_TIMEOUT
            .checked_sub(t0.elapsed())
            .filter(|d| !d.is_zero());
        let Some(left) = left else {
            return Err(format!(
                "no answer within {PROBE_TIMEOUT:?} (got {} bytes)",
                answer.len()
            ));
        };
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("\r\n\r\nok\n") {
        Ok(t0.elapsed())
    } else {
        Err(format!("answer {answer:?}"))
    }
}

/// Sleep `d` in short steps, returning early once `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sends its request one byte every 1.5 s and never finishes it; when the
/// server closes the connection it connects again. Returns how long each connection lasted.
pub fn dripper(addr: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Duration>> {
    thread::spawn(move || {
        let mut lasted = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut conn) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
                nap(Duration::from_millis(100), &stop);
                continue;
            };
            let t0 = Instant::now();
            let request = b"GET /healthz".iter().chain(std::iter::repeat(&b'a'));
            for byte in request {
                // The second write after the server closed fails (the first draws the reset).
                if conn.write_all(&[*byte]).is_err() || stop.load(Ordering::Relaxed) {
                    break;
                }
                nap(Duration::from_millis(1500), &stop);
            }
            if !stop.load(Ordering::Relaxed) {
                lasted.push(t0.elapsed());
            }
        }
        lasted
    })
}

/// `n` connections that send nothing; each one the server closes is opened again. `open`
/// counts those currently open.
pub fn idlers(
    addr: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (stop, open) = (stop.clone(), open.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut conn) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
                        nap(Duration::from_millis(100), &stop);
                        continue;
                    };
                    open.fetch_add(1, Ordering::Relaxed);
                    conn.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        match conn.read(&mut buf) {
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                                ) => {}
                            _ => break,
                        }
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}
