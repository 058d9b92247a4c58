//! A minimal HTTP CONNECT proxy on 127.0.0.1 that records the targets it tunnels to:
//! enough to prove that HTTPS_PROXY is honoured, end to end through TLS.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Proxy {
    pub port: u16,
    /// `host:port` of every CONNECT request, in order.
    pub tunnels: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = tunnels.clone();
        thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let log = log.clone();
                thread::spawn(move || tunnel(conn, log));
            }
        });
        Proxy { port, tunnels }
    }
}

fn tunnel(client: TcpStream, log: Arc<Mutex<Vec<String>>>) -> Option<()> {
    let mut reader = BufReader::new(client.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut words = first.split_whitespace();
    if words.next()? != "CONNECT" {
        return None;
    }
    let target = words.next()?.to_string();
    log.lock().unwrap().push(target.clone());
    let upstream = TcpStream::connect(&target).ok()?;
    let mut client_w = client.try_clone().ok()?;
    client_w
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .ok()?;
    // Bytes the client sent after the CONNECT head (none in practice) sit in `reader`.
    let mut up_w = upstream.try_clone().ok()?;
    let down = thread::spawn(move || {
        let mut up_r = upstream;
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut reader, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = down.join();
    Some(())
}
