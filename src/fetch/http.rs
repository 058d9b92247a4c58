//! The real transport: reqwest over rustls (ring), driven by a private current-thread
//! runtime so callers stay blocking. Proxy variables (HTTPS_PROXY, NO_PROXY, ...) are
//! honoured by reqwest's defaults. `file://` URLs are read from disk when a source allows,
//! through the trust rule, as is `download.extra-ca-bundle`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{AttemptError, Deadline, Progress, Transport};
use crate::config::DownloadOptions;

pub struct HttpTransport {
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    read_timeout: Duration,
    connect_timeout: Duration,
    min_rate: u64,
}

/// Building the client failed: bad CA bundle, or no TLS roots at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up HTTPS{}: {what}. Hint: download.extra-ca-bundle must be a PEM file of CA certificates", path.as_ref().map(|p| format!(" with CA bundle {}", p.display())).unwrap_or_default())]
pub struct SetupError {
    pub path: Option<PathBuf>,
    pub what: String,
}

impl HttpTransport {
    /// `allow_http` also governs redirects: an https URL that redirects to http is refused.
    pub fn new(opts: &DownloadOptions, allow_http: bool) -> Result<HttpTransport, SetupError> {
        let setup = |what: String| SetupError {
            path: opts.extra_ca_bundle.clone(),
            what,
        };
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(opts.connect_timeout)
            .https_only(!allow_http)
            .user_agent(concat!("binfmtd/", env!("CARGO_PKG_VERSION")));
        // After --mount-namespace, names resolve with the pod's resolv.conf (see resolve.rs).
        if let Some(resolver) = super::resolve::pod_resolver() {
            b = b.dns_resolver(resolver);
        }
        if let Some(path) = &opts.extra_ca_bundle {
            for cert in read_bundle(path).map_err(setup)? {
                b = b.add_root_certificate(cert);
            }
        }
        let client = b.build().map_err(|e| setup(chain(&e)))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start the I/O runtime: {e}")))?;
        Ok(HttpTransport {
            client,
            rt,
            read_timeout: opts.read_timeout,
            connect_timeout: opts.connect_timeout,
            min_rate: opts.min_rate,
        })
    }

    async fn get_http(
        &self,
        url: &str,
        sink: &mut dyn Write,
        limit: u64,
        progress: &mut Progress,
        deadline: Deadline,
    ) -> Result<u64, AttemptError> {
        let wait = (self.connect_timeout + self.read_timeout).min(deadline.left());
        let resp = tokio::time::timeout(wait, self.client.get(url).send())
            .await
            .map_err(|_| match deadline.left().is_zero() {
                true => deadline.error(0),
                false => AttemptError::Timeout(format!("no response headers within {wait:?}")),
            })?
            .map_err(|e| classify(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(AttemptError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|l| l > limit) {
            return Err(AttemptError::TooLarge { limit });
        }
        let mut resp = resp;
        let mut n = 0u64;
        let mut rate = RateCheck::new(self.min_rate, self.read_timeout);
        loop {
            let chunk = tokio::time::timeout(self.read_timeout.min(deadline.left()), resp.chunk())
                .await
                .map_err(|_| match deadline.left().is_zero() {
                    true => deadline.error(n),
                    false => AttemptError::Timeout(format!(
                        "no data for {:?} after {n} bytes",
                        self.read_timeout
                    )),
                })?
                .map_err(|e| AttemptError::Broken(format!("after {n} bytes: {}", chain(&e))))?;
            let Some(chunk) = chunk else { return Ok(n) };
            n += chunk.len() as u64;
            if n > limit {
                return Err(AttemptError::TooLarge { limit });
            }
            sink.write_all(&chunk)
                .map_err(|e| AttemptError::Local(e.to_string()))?;
            progress.advance(n);
            rate.check(n)?;
        }
    }
}

/// A mirror that trickles bytes (each read well within the read timeout) is as stuck as
/// one that sends nothing: over each window the average must reach `min` bytes/s.
struct RateCheck {
    min: u64,
    window: Duration,
    since: Instant,
    at_start: u64,
}

impl RateCheck {
    fn new(min: u64, window: Duration) -> RateCheck {
        RateCheck {
            min,
            window,
            since: Instant::now(),
            at_start: 0,
        }
    }

    fn check(&mut self, n: u64) -> Result<(), AttemptError> {
        let took = self.since.elapsed();
        if self.min == 0 || took < self.window {
            return Ok(());
        }
        let rate = (n - self.at_start) as f64 / took.as_secs_f64();
        if rate < self.min as f64 {
            return Err(AttemptError::Timeout(format!(
                "{rate:.0} bytes/s over the last {took:.1?} after {n} bytes, below download.min-bytes-per-sec = {}",
                self.min
            )));
        }
        (self.since, self.at_start) = (Instant::now(), n);
        Ok(())
    }
}

impl Transport for HttpTransport {
    fn get(
        &self,
        url: &str,
        sink: &mut dyn Write,
        limit: u64,
        progress: &mut Progress,
        deadline: Deadline,
    ) -> Result<u64, AttemptError> {
        if let Some(path) = url.strip_prefix("file://") {
            return get_file(Path::new(path), sink, limit, progress);
        }
        self.rt
            .block_on(self.get_http(url, sink, limit, progress, deadline))
    }
}

fn get_file(
    path: &Path,
    sink: &mut dyn Write,
    limit: u64,
    progress: &mut Progress,
) -> Result<u64, AttemptError> {
    // The bytes are pinned, but the pin and the file may come from the same person: a
    // file:// source is read only when no other user can change it (the trust rule).
    let mut f = match crate::trust::open_file(path) {
        Ok(f) => f.file,
        Err(e @ crate::trust::TrustError::Unsafe { .. }) => {
            return Err(AttemptError::Refused(e.to_string()))
        }
        Err(e) => return Err(AttemptError::Connect(e.to_string())),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| AttemptError::Broken(e.to_string()))?;
        if k == 0 {
            return Ok(n);
        }
        n += k as u64;
        if n > limit {
            return Err(AttemptError::TooLarge { limit });
        }
        sink.write_all(&buf[..k])
            .map_err(|e| AttemptError::Local(e.to_string()))?;
        progress.advance(n);
    }
}

fn read_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    // Whoever can change the bundle can vouch for any server: the trust rule applies.
    let mut pem = Vec::new();
    crate::trust::open_file(path)
        .map_err(|e| e.to_string())?
        .file
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("it holds no certificate".into());
    }
    Ok(certs)
}

/// Sort a reqwest error into retry classes; the message keeps the whole cause chain
/// (that is where "connection reset" or "unknown issuer" is).
fn classify(e: &reqwest::Error) -> AttemptError {
    let text = chain(e);
    if e.is_timeout() {
        AttemptError::Timeout(text)
    } else if e.is_redirect() || e.is_builder() {
        AttemptError::Refused(text)
    } else if e.is_connect() {
        AttemptError::Connect(text)
    } else {
        AttemptError::Broken(text)
    }
}

/// `e` and its sources, joined with ": " (DNS, refused, TLS trust: the reason is deep).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
