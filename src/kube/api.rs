//! One HTTP exchange with the API server through the kube-rs client (TLS, bearer tokens,
//! exec plugins and token reload are kube-rs's), and the retry loop around it.

use std::time::Duration;

use ::kube::client::Body;
use ::kube::Client;

use super::retry::{self, Verdict};
use super::KubeError;

/// The parts of a response the labeller looks at.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The `message` of a Kubernetes `Status` body, else the body as text (a proxy's page).
    pub fn message(&self) -> String {
        match serde_json::from_slice::<::kube::core::Status>(&self.body) {
            Ok(s) if !s.message.is_empty() => s.message,
            _ => {
                let text = String::from_utf8_lossy(&self.body);
                let text = text.trim();
                if text.is_empty() {
                    format!("HTTP {} with an empty body", self.code)
                } else {
                    text.chars().take(300).collect()
                }
            }
        }
    }
}

/// Requests and writes sent, for the steady-state cost benchmark and for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub writes: u64,
}

/// What kube-core's request builders produce.
pub type Req = http::Request<Vec<u8>>;

/// Send one request; a transport failure (connect, TLS, exec plugin) is an error.
pub async fn send(
    client: &Client,
    counters: &mut Counters,
    req: Req,
) -> Result<Answer, ::kube::Error> {
    counters.requests += 1;
    if req.method() == "PATCH" {
        counters.writes += 1;
    }
    let res = client.send(req.map(Body::from)).await?;
    let code = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry::parse_retry_after);
    let body = res.into_body().collect_bytes().await?.to_vec();
    Ok(Answer {
        code,
        retry_after,
        body,
    })
}

/// Send `make()` until it is answered with anything but 429/5xx or a transport error, at most
/// `retry::ATTEMPTS` times, waiting with backoff and jitter (and Retry-After) in between.
/// 2xx and 409 come back as `Ok` (409 means "re-read", which only the caller can do);
/// 401/403 and other failures as `Ok` too, for the caller to word; exhaustion is an error.
pub async fn with_retries(
    client: &Client,
    counters: &mut Counters,
    what: &str,
    make: impl Fn() -> Req,
) -> Result<Answer, KubeError> {
    let mut last = String::new();
    for attempt in 0..retry::ATTEMPTS {
        let wait = match send(client, counters, make()).await {
            Ok(a) if retry::classify(a.code) == Verdict::Retry => {
                last = format!("HTTP {}: {}", a.code, a.message());
                tracing::debug!(what, code = a.code, "API server busy or failing; retrying");
                retry::delay(attempt, rand::random::<f64>(), a.retry_after)
            }
            Ok(a) => return Ok(a),
            Err(e) => {
                last = format!("{e}");
                tracing::debug!(what, error = %e, "API request failed; retrying");
                retry::delay(attempt, rand::random::<f64>(), None)
            }
        };
        if attempt + 1 < retry::ATTEMPTS {
            tokio::time::sleep(wait).await;
        }
    }
    Err(KubeError::GaveUp {
        what: what.to_string(),
        attempts: retry::ATTEMPTS,
        last,
    })
}
