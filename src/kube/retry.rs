//! Which API answers are worth retrying, and how long to wait first. Pure: the jitter is
//! passed in, so the schedule is testable as a table.

use std::time::Duration;

/// What to do with one HTTP answer from the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// 409 Conflict: the node changed under us; read it again, recompute, retry.
    Reread,
    /// 429 or 5xx: the server is busy or failing; wait and retry the same request.
    Retry,
    /// 401 or 403: credentials or RBAC; retrying now cannot help.
    Denied,
    /// Anything else (404, 400, 415, ...): report it.
    Fail,
}

pub fn classify(code: u16) -> Verdict {
    match code {
        200..=299 => Verdict::Done,
        409 => Verdict::Reread,
        429 | 500..=599 => Verdict::Retry,
        401 | 403 => Verdict::Denied,
        _ => Verdict::Fail,
    }
}

/// How many times one publish tries before it gives up and reports (the publisher tries
/// again later, on its own schedule).
pub const ATTEMPTS: u32 = 6;

const BASE: Duration = Duration::from_millis(200);
const CAP: Duration = Duration::from_secs(10);
/// Retry-After beyond this is clamped: a publish must not hang for minutes inside one call.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// The wait before retry number `attempt` (0-based): exponential from 200 ms, capped at
/// 10 s, with "equal jitter" (half fixed, half scaled by `jitter` in [0, 1)) so thousands of
/// nodes that failed together do not retry together. A server's Retry-After wins when it
/// asks for longer.
pub fn delay(attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let exp = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    let half = exp / 2;
    let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(ra) => ra.min(RETRY_AFTER_CAP).max(jittered),
        None => jittered,
    }
}

/// `Retry-After` as seconds (the API server sends seconds, never an HTTP date).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// After a failed publish, when the publisher tries again: doubling from 1 s up to 5 min,
/// so an API outage or missing RBAC costs a handful of requests per hour, not a stream.
pub fn next_round(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(9)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases = [
            (200, Verdict::Done),
            (201, Verdict::Done),
            (409, Verdict::Reread),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
            (504, Verdict::Retry),
            (401, Verdict::Denied),
            (403, Verdict::Denied),
            (404, Verdict::Fail),
            (415, Verdict::Fail),
            (422, Verdict::Fail),
        ];
        for (code, want) in cases {
            assert_eq!(classify(code), want, "{code}");
        }
    }

    #[test]
    fn delay_table() {
        let ms = Duration::from_millis;
        let cases = [
            (0, 0.0, None, ms(100)),
            (0, 0.999_999, None, ms(200)),
            (1, 0.0, None, ms(200)),
            (3, 0.5, None, ms(1200)),
            (10, 0.0, None, ms(5000)),
            (40, 0.999_999, None, ms(10000)),
            (0, 0.0, Some(ms(3000)), ms(3000)),
            (6, 0.0, Some(ms(1000)), ms(5000)),
            (0, 0.0, Some(Duration::from_secs(3600)), ms(60000)),
        ];
        for (attempt, jitter, ra, want) in cases {
            let got = delay(attempt, jitter, ra);
            let diff = got.abs_diff(want);
            assert!(
                diff <= ms(1),
                "{attempt} {jitter} {ra:?}: {got:?} != {want:?}"
            );
        }
    }

    #[test]
    fn retry_after_and_rounds() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(next_round(0), Duration::from_secs(1));
        assert_eq!(next_round(3), Duration::from_secs(8));
        assert_eq!(next_round(30), Duration::from_secs(300));
    }
}
