//! Pod UID -> (namespace, name), from the runtime's list of pod sandboxes. Pure: the caller
//! passes the time and does the call when `should_refresh` says so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::proto::Sandbox;

/// At most one ListPodSandbox per this long, however many unknown UIDs come by: a pod that
/// is not the runtime's (or a cgroup name that only looks like one) must not cost a call per
/// exec.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Names {
    by_uid: HashMap<String, PodName>,
    /// When the last call was made (whether it worked or not).
    last: Option<Instant>,
}

impl Names {
    pub fn get(&self, uid: &str) -> Option<&PodName> {
        self.by_uid.get(uid)
    }

    /// A call is due: the UID is unknown and no call was made in the last `MIN_REFRESH`.
    pub fn should_refresh(&self, uid: &str, now: Instant) -> bool {
        !self.by_uid.contains_key(uid)
            && self
                .last
                .is_none_or(|t| now.saturating_duration_since(t) >= MIN_REFRESH)
    }

    /// The runtime's answer replaces the map: pods gone from the node leave it, so it stays
    /// as large as the node's pod count.
    pub fn refreshed(&mut self, now: Instant, sandboxes: Vec<Sandbox>) {
        self.last = Some(now);
        self.by_uid = sandboxes
            .into_iter()
            .filter(|s| !s.uid.is_empty())
            .map(|s| {
                let name = PodName {
                    namespace: s.namespace,
                    name: s.name,
                };
                (s.uid, name)
            })
            .collect();
    }

    /// The call failed: what is known stays, and the next try waits `MIN_REFRESH`.
    pub fn failed(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(uid: &str, ns: &str, name: &str) -> Sandbox {
        Sandbox {
            id: format!("id-{uid}"),
            uid: uid.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    enum Step {
        /// (uid, seconds since start, refresh expected)
        Ask(&'static str, u64, bool),
        Refreshed(u64, Vec<Sandbox>),
        Failed(u64),
        /// (uid, expected (namespace, name))
        Known(&'static str, Option<(&'static str, &'static str)>),
    }
    use Step::*;

    #[test]
    fn refresh_schedule() {
        let cases: Vec<(&str, Vec<Step>)> = vec![
            ("first unknown uid calls", vec![Ask("a", 0, true)]),
            (
                "known uid never calls",
                vec![
                    Refreshed(0, vec![sb("a", "ns", "p")]),
                    Ask("a", 0, false),
                    Ask("a", 100, false),
                    Known("a", Some(("ns", "p"))),
                ],
            ),
            (
                "unknown uid waits the interval after a call",
                vec![
                    Refreshed(10, vec![sb("a", "ns", "p")]),
                    Ask("b", 11, false),
                    Ask("b", 14, false),
                    Ask("b", 15, true),
                ],
            ),
            (
                "a failed call also waits, and keeps what was known",
                vec![
                    Refreshed(0, vec![sb("a", "ns", "p")]),
                    Failed(20),
                    Ask("b", 24, false),
                    Ask("b", 25, true),
                    Known("a", Some(("ns", "p"))),
                ],
            ),
            (
                "a pod gone from the runtime leaves the map",
                vec![
                    Refreshed(0, vec![sb("a", "ns", "p"), sb("b", "ns", "q")]),
                    Refreshed(5, vec![sb("b", "ns", "q")]),
                    Known("a", None),
                    Known("b", Some(("ns", "q"))),
                ],
            ),
            (
                "sandboxes without a uid are not keyed by the empty string",
                vec![Refreshed(0, vec![sb("", "ns", "p")]), Known("", None)],
            ),
        ];
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        for (what, steps) in cases {
            let mut n = Names::default();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Ask(uid, t, want) => {
                        assert_eq!(n.should_refresh(uid, at(t)), want, "{what}: step {i}")
                    }
                    Refreshed(t, s) => n.refreshed(at(t), s),
                    Failed(t) => n.failed(at(t)),
                    Known(uid, want) => assert_eq!(
                        n.get(uid).map(|p| (p.namespace.as_str(), p.name.as_str())),
                        want,
                        "{what}: step {i}"
                    ),
                }
            }
        }
    }
}
