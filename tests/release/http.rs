//! A static-file HTTP server on the loopback address: the release host that install.sh downloads from.
//! Only GET, one request per connection, no directory listings; enough for curl and wget.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serve the files under `root` at `http://127.0.0.1:<port>/` until the test process exits.
    pub fn start(root: &Path) -> Server {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the test server");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), Arc::clone(&requests));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &root, &log);
            }
        });
        Server { url, requests }
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers; nothing in them changes the answer.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    log.lock().unwrap().push(path.to_string());
    let body = match (method, local_path(root, path)) {
        ("GET", Some(file)) => std::fs::read(file).ok(),
        _ => None,
    };
    let mut out = stream;
    match body {
        Some(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)
        }
        None => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// Map a request path to a file under root, refusing anything that would climb out of it.
fn local_path(root: &Path, request: &str) -> Option<PathBuf> {
    let relative = Path::new(request.trim_start_matches('/'));
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        Some(root.join(relative)).filter(|p| p.is_file())
    } else {
        None
    }
}
