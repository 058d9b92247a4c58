//! How often one container's program may become a Kubernetes Event: at most once per
//! `window` for each (kind, container, program), so a crash loop or a build running an
//! emulated compiler a thousand times does not flood the API server. Pure: the caller
//! passes the time.
//!
//! Bounded at `max_keys` remembered keys: when full, keys whose window has passed are
//! forgotten; if none has, the new key is refused (an Event lost beats unbounded memory or
//! a flood; the counters and the status file still count it).

use std::collections::HashMap;
use std::time::Duration;

use super::{Event, Kind};

/// What makes two events "the same" for the API server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: Kind,
    /// The container ID, else the pod UID, else the unit.
    pub container: String,
    pub program: String,
}

impl Key {
    pub fn of(e: &Event) -> Key {
        Key {
            kind: e.kind,
            container: e
                .container_id
                .clone()
                .or_else(|| e.pod_uid.clone())
                .or_else(|| e.unit.clone())
                .unwrap_or_default(),
            program: e.path.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    window: Duration,
    max_keys: usize,
    /// Key -> when it was last let through (time since an origin the caller chooses).
    last: HashMap<Key, Duration>,
}

impl RateLimit {
    pub fn new(window: Duration, max_keys: usize) -> RateLimit {
        RateLimit {
            window,
            max_keys,
            last: HashMap::new(),
        }
    }

    /// Let `key` through at `now`? Counts it as sent when it does.
    pub fn allow(&mut self, key: Key, now: Duration) -> bool {
        let window = self.window;
        let passed = |at: Duration| now.saturating_sub(at) >= window;
        if let Some(at) = self.last.get(&key) {
            if !passed(*at) {
                return false;
            }
        } else if self.last.len() >= self.max_keys {
            self.last.retain(|_, at| !passed(*at));
            if self.last.len() >= self.max_keys {
                return false;
            }
        }
        self.last.insert(key, now);
        true
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: Kind, container: &str, program: &str) -> Key {
        Key {
            kind,
            container: container.into(),
            program: program.into(),
        }
    }

    /// (key as (kind, container, program), time in s, let through?) in order, window 60 s,
    /// room for 2 keys.
    #[test]
    fn once_per_window_per_kind_container_and_program() {
        use Kind::*;
        let cases: &[(Kind, &str, &str, u64, bool)] = &[
            (Emulated, "c1", "/bin/a", 0, true),
            (Emulated, "c1", "/bin/a", 1, false),
            (Emulated, "c1", "/bin/a", 59, false),
            // Another kind of the same program is another key.
            (ExecFormatError, "c1", "/bin/a", 59, true),
            (Emulated, "c1", "/bin/a", 60, true),
            // Full (2 keys), none expired: refused.
            (Emulated, "c2", "/bin/a", 61, false),
            // ExecFormatError/c1 expired at 119: room again.
            (Emulated, "c2", "/bin/a", 119, true),
            (Emulated, "c2", "/bin/a", 120, false),
            (Emulated, "c1", "/bin/a", 120, true),
            // A clock that went back never lets a repeat through early.
            (Emulated, "c1", "/bin/a", 100, false),
        ];
        let mut r = RateLimit::new(Duration::from_secs(60), 2);
        for (i, (kind, c, p, t, want)) in cases.iter().enumerate() {
            let got = r.allow(key(*kind, c, p), Duration::from_secs(*t));
            assert_eq!(got, *want, "case {i}: {kind:?} {c} {p} at {t}s");
            assert!(r.len() <= 2);
        }
    }

    #[test]
    fn the_key_falls_back_from_container_to_pod_to_unit() {
        let mut e = Event {
            kind: Kind::Emulated,
            arch: Some("aarch64"),
            path: Some("/bin/a".into()),
            pid: 1,
            pod_uid: Some("p".into()),
            pod_namespace: None,
            pod_name: None,
            container_id: Some("c".into()),
            unit: None,
        };
        assert_eq!(Key::of(&e).container, "c");
        e.container_id = None;
        assert_eq!(Key::of(&e).container, "p");
        e.pod_uid = None;
        e.unit = Some("cron.service".into());
        assert_eq!(Key::of(&e).container, "cron.service");
    }
}
