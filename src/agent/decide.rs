//! The agent's decisions, as pure functions over values (no clock, no kernel): what
//! changed between two polls, and whether an arch may be worked on now or must wait
//! (backoff after failures, or a fight with another tool). Times are offsets from the
//! agent's start, passed in by the caller.

use std::collections::VecDeque;
use std::time::Duration;

use crate::arch::Arch;
use crate::entry::Entry;

/// Why an arch is (re)converged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The first pass after start.
    Start,
    /// binfmt_misc is not mounted any more (the instance and its entries are gone).
    Unmounted,
    /// Every entry vanished at once (`-1 > status`, systemd-binfmt restarting).
    Flushed,
    /// binfmtd's entry was removed.
    Removed,
    /// binfmtd's entry was disabled (`0 > entry`).
    Disabled,
    /// binfmtd's entry was replaced by one with other flags, interpreter or magic.
    Rewritten,
    /// The foreign entry that served the arch went away.
    ForeignRemoved,
    /// Another tool registered an entry for the format (newest entries are consulted first).
    ForeignAdded,
    /// The config (file or SIGHUP) changed what is wanted.
    Reload,
    /// The periodic re-proof failed.
    Reproof,
    /// An earlier attempt failed; its backoff has expired.
    Retry,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Unmounted => "unmounted",
            Reason::Flushed => "flushed",
            Reason::Removed => "removed",
            Reason::Disabled => "disabled",
            Reason::Rewritten => "rewritten",
            Reason::ForeignRemoved => "foreign-removed",
            Reason::ForeignAdded => "foreign-added",
            Reason::Reload => "reload",
            Reason::Reproof => "reproof",
            Reason::Retry => "retry",
        }
    }

    /// Changes someone else made to the kernel state (these count towards a fight).
    pub fn is_external(self) -> bool {
        !matches!(
            self,
            Reason::Start | Reason::Reload | Reason::Reproof | Reason::Retry
        )
    }
}

/// One poll of binfmt_misc: mounted or not, and every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub mounted: bool,
    pub entries: Vec<Entry>,
}

impl View {
    /// The entries for an arch's format, in directory order.
    pub fn format<'v>(&'v self, arch: &Arch) -> Vec<&'v Entry> {
        self.entries
            .iter()
            .filter(|e| e.same_format_as(arch.magic, arch.mask))
            .collect()
    }

    /// Other tools' entries for an arch's format, by name.
    pub fn foreign_names(&self, arch: &Arch) -> Vec<String> {
        self.format(arch)
            .into_iter()
            .filter(|e| !e.is_own())
            .map(|e| e.name.clone())
            .collect()
    }
}

/// The arches whose format changed between two polls, each with why.
pub fn changes(
    before: &View,
    now: &View,
    arches: &[&'static Arch],
) -> Vec<(&'static Arch, Reason)> {
    if !now.mounted {
        return if before.mounted {
            arches.iter().map(|a| (*a, Reason::Unmounted)).collect()
        } else {
            Vec::new()
        };
    }
    if !before.mounted {
        return arches.iter().map(|a| (*a, Reason::Unmounted)).collect();
    }
    let flushed = !before.entries.is_empty() && now.entries.is_empty();
    arches
        .iter()
        .filter_map(|a| {
            let (b, n) = (before.format(a), now.format(a));
            if b == n {
                return None;
            }
            Some((
                *a,
                if flushed {
                    Reason::Flushed
                } else {
                    why(&b, &n)
                },
            ))
        })
        .collect()
}

/// Classify one format's change, binfmtd's own entry first.
fn why(before: &[&Entry], now: &[&Entry]) -> Reason {
    let own = |v: &[&Entry]| v.iter().find(|e| e.is_own()).map(|e| (*e).clone());
    match (own(before), own(now)) {
        (Some(_), None) => return Reason::Removed,
        (Some(b), Some(n)) if b.enabled && !n.enabled => return Reason::Disabled,
        (Some(b), Some(n)) if b != n => return Reason::Rewritten,
        _ => {}
    }
    let names = |v: &[&Entry]| -> Vec<String> {
        v.iter()
            .filter(|e| !e.is_own())
            .map(|e| e.name.clone())
            .collect()
    };
    let (b, n) = (names(before), names(now));
    if n.iter().any(|x| !b.contains(x)) {
        Reason::ForeignAdded
    } else if b.iter().any(|x| !n.contains(x)) {
        Reason::ForeignRemoved
    } else {
        Reason::Rewritten
    }
}

/// How long to wait after failures and fights. Defaults suit a node: a broken pin is
/// retried after 5 s, 10 s, 20 s ... up to 10 min; five external changes to one format
/// within a minute are a fight, and binfmtd then holds off until the other tool has left
/// the format alone for a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub fight_window: Duration,
    pub fight_changes: usize,
    pub fight_quiet: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            fight_window: Duration::from_secs(60),
            fight_changes: 5,
            fight_quiet: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Someone changed the format (or a reload/reproof asked for work).
    Changed {
        at: Duration,
        reason: Reason,
        /// Other tools' entries for the format right after the change.
        others: Vec<String>,
    },
    /// binfmtd converged the arch; did it work at the end?
    Attempt { at: Duration, working: bool },
}

/// One arch's recent events, oldest first, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    events: VecDeque<Event>,
}

const HISTORY_LEN: usize = 64;

impl History {
    pub fn push(&mut self, e: Event) {
        if self.events.len() == HISTORY_LEN {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Failed attempts since the last one that worked.
    pub fn failures(&self) -> u32 {
        let mut n = 0;
        for e in self.events.iter().rev() {
            match e {
                Event::Attempt { working: true, .. } => break,
                Event::Attempt { working: false, .. } => n += 1,
                Event::Changed { .. } => {}
            }
        }
        n
    }

    fn last_attempt(&self) -> Option<Duration> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Attempt { at, .. } => Some(*at),
            _ => None,
        })
    }
}

/// Whether an arch may be worked on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Repeated failures: wait until `until`.
    Backoff {
        until: Duration,
        failures: u32,
    },
    /// Another tool keeps changing the format: leave it until `until`.
    Fight {
        until: Duration,
        changes: usize,
        others: Vec<String>,
    },
}

pub fn verdict(h: &History, now: Duration, p: &Policy) -> Verdict {
    let external: Vec<(&Duration, &Vec<String>)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Changed { at, reason, others } if reason.is_external() => Some((at, others)),
            _ => None,
        })
        .collect();
    if let Some((last, others)) = external.last() {
        let since = now.saturating_sub(p.fight_window);
        let recent = external.iter().filter(|(at, _)| **at >= since).count();
        let until = **last + p.fight_quiet;
        if recent >= p.fight_changes && now < until {
            return Verdict::Fight {
                until,
                changes: recent,
                others: others.to_vec(),
            };
        }
    }
    let failures = h.failures();
    if let (Some(at), true) = (h.last_attempt(), failures > 0) {
        let factor = 1u32 << (failures - 1).min(16);
        let until = at + p.backoff_base.saturating_mul(factor).min(p.backoff_max);
        if now < until {
            return Verdict::Backoff { until, failures };
        }
    }
    Verdict::Go
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
