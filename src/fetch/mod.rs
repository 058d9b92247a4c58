//! Downloads: one attempt at one URL is the `Transport` trait's job (the real one is
//! `HttpTransport`); the policy around it lives here: mirrors in order, rounds of retries
//! with backoff and jitter, a size cap, and sha256 computed while the bytes stream through
//! (they are read once; a retry starts the file and the hash over).

pub(crate) mod http;
mod progress;
pub mod resolve;

use std::fs::File;
use std::io::{self, Seek, Write};
use std::time::{Duration, Instant};

pub use http::HttpTransport;
pub use progress::Progress;

use crate::cache::HashingFile;
use crate::config::{DownloadOptions, Remote};

/// Why one attempt at one URL failed. `retryable` decides whether another mirror or a
/// later round may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("connection broken mid-transfer: {0}")]
    Broken(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("sha256 is {got}, the pin says {want}")]
    HashMismatch { got: String, want: String },
    #[error("{0}")]
    Refused(String),
    /// The local side failed (disk full, read-only cache): no mirror can fix that.
    #[error("writing the download: {0}")]
    Local(String),
}

impl AttemptError {
    /// Worth trying again later (the same URL may recover): 5xx, resets, timeouts.
    pub fn transient(&self) -> bool {
        match self {
            AttemptError::Status(s) => *s >= 500 || *s == 408 || *s == 429,
            AttemptError::Connect(_) | AttemptError::Broken(_) | AttemptError::Timeout(_) => true,
            _ => false,
        }
    }

    /// Nothing another mirror could change.
    pub fn fatal(&self) -> bool {
        matches!(self, AttemptError::Local(_) | AttemptError::Refused(_))
    }
}

/// A download that failed on every mirror, with each URL's last reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("download failed from every mirror ({}). Hint: check the node's network, proxy (HTTPS_PROXY) and the source's urls/sha256 in the config", attempts.iter().map(|(u, e)| format!("{u}: {e}")).collect::<Vec<_>>().join("; "))]
pub struct FetchError {
    pub attempts: Vec<(String, AttemptError)>,
}

/// One attempt: GET `url`, write the body to `sink`, give up past `limit` bytes, and end
/// with `AttemptError::Timeout` once `deadline.at` has passed.
pub trait Transport {
    fn get(
        &self,
        url: &str,
        sink: &mut dyn Write,
        limit: u64,
        progress: &mut Progress,
        deadline: Deadline,
    ) -> Result<u64, AttemptError>;
}

/// When an attempt must be over, and which setting said so (for the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    pub key: &'static str,
}

impl Deadline {
    /// The sooner of the attempt's own deadline and the whole download's.
    fn for_attempt(opts: &DownloadOptions, download_end: Instant) -> Deadline {
        let own = Instant::now() + opts.attempt_timeout;
        if own < download_end {
            Deadline {
                at: own,
                key: "download.attempt-timeout-secs",
            }
        } else {
            Deadline {
                at: download_end,
                key: "download.total-timeout-secs",
            }
        }
    }

    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn error(&self, done: u64) -> AttemptError {
        AttemptError::Timeout(format!(
            "deadline reached after {done} bytes ({} ends it)",
            self.key
        ))
    }
}

/// What a successful download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// The pause before round `round` (1-based): base * 2^(round-1), capped at 30 s, scaled
/// by `jitter` in [0.5, 1.0] so that many nodes retrying together spread out. Pure.
pub fn backoff(base: Duration, round: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << (round.saturating_sub(1)).min(16));
    exp.min(Duration::from_secs(30))
        .mul_f64(jitter.clamp(0.5, 1.0))
}

/// Download `remote` into `file` (truncated first): mirrors in order, then further rounds
/// while some failure was transient. On success the file holds exactly the pinned bytes.
pub fn download(
    t: &dyn Transport,
    remote: &Remote,
    opts: &DownloadOptions,
    file: &mut File,
    label: &str,
) -> Result<Downloaded, FetchError> {
    let limit = remote
        .size
        .map_or(opts.max_bytes, |s| s.min(opts.max_bytes));
    let mut attempts: Vec<(String, AttemptError)> = Vec::new();
    let end = Instant::now() + opts.total_timeout;
    for round in 0..=opts.retries {
        if round > 0 {
            let pause = backoff(opts.backoff, round, 0.5 + rand::random::<f64>() / 2.0);
            let pause = pause.min(end.saturating_duration_since(Instant::now()));
            tracing::info!(
                source = label,
                round,
                ?pause,
                "retrying after transient failures"
            );
            std::thread::sleep(pause);
        }
        let mut any_transient = false;
        for url in &remote.urls {
            let deadline = Deadline::for_attempt(opts, end);
            if deadline.left().is_zero() {
                attempts.retain(|(u, _)| u != url);
                attempts.push((url.clone(), deadline.error(0)));
                return Err(FetchError { attempts });
            }
            match attempt(t, url, remote, limit, file, label, deadline) {
                Ok(d) => return Ok(d),
                Err(e) => {
                    tracing::warn!(source = label, url, error = %e, "download attempt failed");
                    any_transient |= e.transient();
                    let fatal = e.fatal();
                    attempts.retain(|(u, _)| u != url);
                    attempts.push((url.clone(), e));
                    if fatal {
                        return Err(FetchError { attempts });
                    }
                }
            }
        }
        if !any_transient {
            break;
        }
    }
    Err(FetchError { attempts })
}

fn attempt(
    t: &dyn Transport,
    url: &str,
    remote: &Remote,
    limit: u64,
    file: &mut File,
    label: &str,
    deadline: Deadline,
) -> Result<Downloaded, AttemptError> {
    check_scheme(url, remote)?;
    let local = |e: io::Error| AttemptError::Local(e.to_string());
    file.set_len(0).map_err(local)?;
    file.rewind().map_err(local)?;
    let mut w = HashingFile::new(file);
    let mut progress = Progress::new(label, remote.size);
    // TLS hands over ~16 KB records; batch them into large writes.
    let mut buf = io::BufWriter::with_capacity(1 << 20, &mut w);
    let n = t.get(url, &mut buf, limit, &mut progress, deadline)?;
    buf.flush()
        .map_err(|e| AttemptError::Local(e.to_string()))?;
    drop(buf);
    progress.finish();
    let (sha256, size) = w.finish();
    debug_assert_eq!(n, size);
    if sha256 != remote.sha256 {
        return Err(AttemptError::HashMismatch {
            got: sha256,
            want: remote.sha256.clone(),
        });
    }
    Ok(Downloaded {
        url: url.to_string(),
        sha256,
        size,
    })
}

/// https always; http and file only where the source allows them. Checked before any
/// connection, and again by the transport for redirects.
pub fn check_scheme(url: &str, remote: &Remote) -> Result<(), AttemptError> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "https" => Ok(()),
        "http" if remote.allow_http => Ok(()),
        "file" if remote.allow_file => Ok(()),
        "http" | "file" => Err(AttemptError::Refused(format!(
            "{scheme}:// is not allowed for this source; use https, or set allow-{scheme} = true on it"
        ))),
        _ => Err(AttemptError::Refused(format!("unsupported URL {url:?}; use https://"))),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests;
