//! Which gated pods are being decided, were just decided, or wait for a retry: a pod is
//! taken once at a time, not re-taken while the watch still shows its old (gated) copy,
//! and retried after a growing pause when the API server refused its patch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// After a pod is decided its uid is remembered this long: the watch may still deliver the
/// copy from before the patch.
pub const REMEMBER: Duration = Duration::from_secs(120);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Being decided; `failures` earlier attempts failed.
    InFlight { failures: u32 },
    Done(Instant),
    Retry { at: Instant, failures: u32 },
}

#[derive(Debug, Default)]
pub struct Queue {
    pods: HashMap<String, State>,
}

impl Queue {
    /// Take `uid` for deciding now: true unless it is in flight, just done, or waiting.
    pub fn take(&mut self, uid: &str, now: Instant) -> bool {
        let failures = match self.pods.get(uid) {
            Some(State::InFlight { .. }) | Some(State::Done(_)) => return false,
            Some(State::Retry { at, .. }) if *at > now => return false,
            Some(State::Retry { failures, .. }) => *failures,
            None => 0,
        };
        self.pods
            .insert(uid.to_string(), State::InFlight { failures });
        true
    }

    pub fn done(&mut self, uid: &str, now: Instant) {
        self.pods.insert(uid.to_string(), State::Done(now));
    }

    /// The attempt failed: wait 1 s, 2 s, 4 s ... up to a minute; returns the wait.
    pub fn failed(&mut self, uid: &str, now: Instant) -> Duration {
        let failures = match self.pods.get(uid) {
            Some(State::InFlight { failures }) => failures + 1,
            _ => 1,
        };
        let wait = FIRST_RETRY
            .saturating_mul(1 << (failures - 1).min(6))
            .min(MAX_RETRY);
        self.pods.insert(
            uid.to_string(),
            State::Retry {
                at: now + wait,
                failures,
            },
        );
        wait
    }

    /// Drop pods decided longer than `REMEMBER` ago.
    pub fn forget(&mut self, now: Instant) {
        self.pods
            .retain(|_, s| !matches!(s, State::Done(t) if now.saturating_duration_since(*t) >= REMEMBER));
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_taken_once_and_not_again_while_remembered() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        assert!(q.take("a", t0));
        assert!(!q.take("a", t0), "in flight");
        q.done("a", t0);
        assert!(!q.take("a", t0 + Duration::from_secs(5)), "the stale gated copy");
        q.forget(t0 + REMEMBER);
        assert!(q.is_empty());
        assert!(q.take("a", t0 + REMEMBER), "still gated after that: decided again");
    }

    #[test]
    fn failures_back_off_doubling_to_a_minute() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..9 {
            assert!(q.take("a", now));
            let w = q.failed("a", now);
            assert!(!q.take("a", now + w - Duration::from_millis(1)), "not before the wait");
            waits.push(w.as_secs());
            now += w;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(q.take("a", now));
        q.done("a", now);
        assert_eq!(q.len(), 1);
    }
}
