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

    /// Changes aimed at this format (not the whole instance going away): a few of these in
    /// a short time mean another tool claims the format.
    pub fn is_contest(self) -> bool {
        self.is_external() && !matches!(self, Reason::Flushed | Reason::Unmounted)
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
    // Several entries gone at once is a flush; a lone entry removed is just that.
    let flushed = before.entries.len() > 1 && now.entries.is_empty();
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

/// Arches whose handling entry (binfmtd's, or the foreign one a working arch relies on) is
/// missing or disabled in `view`, with why. Catches a change that landed between binfmtd's
/// own pass and its next read, which a poll-to-poll diff cannot see.
pub fn unmet(expected: &[(&'static Arch, &str)], view: &View) -> Vec<(&'static Arch, Reason)> {
    expected
        .iter()
        .filter_map(|(arch, name)| {
            let entry = view.entries.iter().find(|e| e.name == *name);
            let reason = match entry {
                _ if !view.mounted => Reason::Unmounted,
                Some(e) if e.enabled => return None,
                Some(_) => Reason::Disabled,
                None if view.entries.is_empty() => Reason::Flushed,
                None if name.starts_with(crate::entry::OWN_PREFIX) => Reason::Removed,
                None => Reason::ForeignRemoved,
            };
            Some((*arch, reason))
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
/// retried at once, then after 5 s, 10 s, 20 s ... up to 10 min; five changes aimed at one
/// format within a minute (or twenty of any kind, flushes included: a restart loop) are a
/// fight, and binfmtd then holds off until the other tool has left the format alone for a
/// minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub fight_window: Duration,
    pub fight_changes: usize,
    /// Instance-wide changes (flushes, unmounts) in the window that also make a fight.
    pub fight_flushes: usize,
    pub fight_quiet: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            fight_window: Duration::from_secs(60),
            fight_changes: 5,
            fight_flushes: 20,
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
    let external: Vec<(Duration, Reason, &Vec<String>)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Changed { at, reason, others } if reason.is_external() => {
                Some((*at, *reason, others))
            }
            _ => None,
        })
        .collect();
    if let Some((last, _, others)) = external.last() {
        let since = now.saturating_sub(p.fight_window);
        let recent: Vec<Reason> = external
            .iter()
            .filter(|(at, ..)| *at >= since)
            .map(|(_, r, _)| *r)
            .collect();
        let aimed = recent.iter().filter(|r| r.is_contest()).count();
        let until = *last + p.fight_quiet;
        if (aimed >= p.fight_changes || recent.len() >= p.fight_flushes) && now < until {
            return Verdict::Fight {
                until,
                changes: recent.len(),
                others: others.to_vec(),
            };
        }
    }
    // The first failure is retried at the next poll: it is often a change made while the
    // pass ran (an entry flushed under a probe). From the second on, the wait doubles.
    let failures = h.failures();
    if let (Some(at), true) = (h.last_attempt(), failures > 1) {
        let factor = 1u32 << (failures - 2).min(16);
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
