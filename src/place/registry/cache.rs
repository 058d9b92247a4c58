//! The platform sets already resolved, bounded: by tag for a short time (a tag can be moved
//! to another image), by digest for good (a digest names the same bytes forever). The
//! oldest entry goes first when a map is full. Time is passed in, so tests need no clock.
//!
//! The cache holds platforms only, never credentials or manifests: a pod whose secrets
//! could not fetch an image may still get the platforms another pod's secrets resolved; the
//! kubelet still checks the pull itself with the pod's own secrets.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::placement::platforms::PlatformSet;

/// How long a tag's platforms are trusted: long enough for the pods of one rollout to share
/// one lookup, short enough that a re-pushed tag is seen within a minute.
pub const TAG_TTL: Duration = Duration::from_secs(60);
/// Default bound of each map.
pub const CAPACITY: usize = 16_384;

/// One bounded map with insertion-order eviction.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    capacity: usize,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn insert(&mut self, key: String, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&old);
        }
    }
}

#[derive(Debug)]
pub struct Cache {
    tags: Bounded<(Arc<PlatformSet>, Instant)>,
    digests: Bounded<Arc<PlatformSet>>,
    ttl: Duration,
}

impl Cache {
    pub fn new(capacity: usize, ttl: Duration) -> Cache {
        Cache {
            tags: Bounded::new(capacity),
            digests: Bounded::new(capacity),
            ttl,
        }
    }

    /// The set for a key from `Location::key`: a digest key from the digest map, a tag key
    /// while it is younger than the TTL.
    pub fn get(&self, key: &str, now: Instant) -> Option<Arc<PlatformSet>> {
        if key.contains('@') {
            return self.digests.map.get(key).cloned();
        }
        let (set, at) = self.tags.map.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| set.clone())
    }

    /// Remember `set` under its tag key (if any) and under the digest it was served by.
    pub fn put(&mut self, tag_key: Option<String>, digest_key: String, set: Arc<PlatformSet>, now: Instant) {
        if let Some(k) = tag_key {
            self.tags.insert(k, (set.clone(), now));
        }
        self.digests.insert(digest_key, set);
    }

    /// Entries held (tags, digests).
    pub fn len(&self) -> (usize, usize) {
        (self.tags.map.len(), self.digests.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::platforms::Kind;

    fn set(n: usize) -> Arc<PlatformSet> {
        Arc::new(PlatformSet {
            kind: Kind::Index,
            entries: Vec::new(),
            ignored: n,
        })
    }

    #[test]
    fn tags_expire_and_digests_do_not() {
        let t0 = Instant::now();
        let mut c = Cache::new(8, TAG_TTL);
        c.put(Some("r/x:t".into()), "r/x@sha256:a".into(), set(1), t0);
        assert_eq!(c.get("r/x:t", t0 + TAG_TTL / 2).unwrap().ignored, 1);
        assert!(c.get("r/x:t", t0 + TAG_TTL).is_none(), "a tag is re-read after the TTL");
        let much_later = t0 + Duration::from_secs(86_400);
        assert_eq!(c.get("r/x@sha256:a", much_later).unwrap().ignored, 1);
        assert!(c.get("r/x:other", t0).is_none());
    }

    #[test]
    fn a_full_map_drops_its_oldest_entry() {
        let t0 = Instant::now();
        let mut c = Cache::new(2, TAG_TTL);
        for i in 0..3 {
            c.put(Some(format!("r/x:{i}")), format!("r/x@d{i}"), set(i), t0);
        }
        assert_eq!(c.len(), (2, 2));
        assert!(c.get("r/x:0", t0).is_none() && c.get("r/x@d0", t0).is_none());
        assert!(c.get("r/x:2", t0).is_some() && c.get("r/x@d1", t0).is_some());
        // A re-put of a held key does not grow the order queue past the bound.
        c.put(Some("r/x:2".into()), "r/x@d2".into(), set(9), t0);
        assert_eq!(c.get("r/x:2", t0).unwrap().ignored, 9);
        assert_eq!(c.len(), (2, 2));
    }
}
