//! The reconcile diff: what to do for each requested arch, as a pure function of the
//! desired state and the observed binfmt_misc entries.
//!
//! No I/O and no clock in here, so the daemon's drift repair and `install` share it and it
//! is tested as a table. Probes are effects: their results come in as inputs
//! (`foreign_working`), and the apply step proves every change before keeping it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::arch::Arch;
use crate::entry::{Entry, Flags, Registration};

/// What we want for one arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub arch: &'static Arch,
    pub interpreter: PathBuf,
    /// F, O, C as configured. P is not part of it: the probe decides P.
    pub flags: Flags,
}

impl Desired {
    /// The registration to try first: with P, which the probe may take away.
    pub fn registration(&self) -> Registration {
        let mut flags = self.flags;
        flags.preserve_argv0 = true;
        Registration::own(self.arch, self.interpreter.clone(), flags)
    }

    /// Does an entry of ours already say this (P either way: the probe decided it)?
    fn satisfied_by(&self, e: &Entry) -> bool {
        let mut want = self.registration();
        want.flags.preserve_argv0 = e.flags.preserve_argv0;
        want.is_realised_by(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Our entry already says what we want: prove it, change nothing.
    Keep { entry: String },
    /// Our entry is right but disabled (someone wrote 0 to it): enable it.
    Enable { entry: String },
    /// No entry of ours yet.
    Register,
    /// Ours differs (interpreter or flags): register the new one beside it, prove it, then
    /// drop the old one. If the proof fails, the old one stays: that is the rollback.
    Replace { old: String },
    /// A working foreign entry with F already serves this format: leave it alone.
    UseForeign { entry: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchPlan {
    pub desired: Desired,
    pub action: Action,
    /// Other tools' entries for the same format (enabled or not), by name.
    pub foreign: Vec<String>,
    /// Foreign entries to remove first: only ever non-empty with `replace_foreign`.
    pub remove_foreign: Vec<String>,
}

/// Decide what to do for each desired arch. `foreign_working` names foreign entries whose
/// probe passed (the caller probes them before planning); `replace_foreign` is the
/// operator's explicit permission to remove other tools' entries for these formats.
pub fn plan(
    desired: &[Desired],
    observed: &[Entry],
    foreign_working: &BTreeSet<String>,
    replace_foreign: bool,
) -> Vec<ArchPlan> {
    desired
        .iter()
        .map(|d| plan_one(d, observed, foreign_working, replace_foreign))
        .collect()
}

fn plan_one(
    d: &Desired,
    observed: &[Entry],
    foreign_working: &BTreeSet<String>,
    replace_foreign: bool,
) -> ArchPlan {
    let same_format = |e: &&Entry| e.same_format_as(d.arch.magic, d.arch.mask);
    let own_name = d.registration().name;
    let own = observed.iter().find(|e| e.name == own_name);
    let foreign: Vec<&Entry> = observed
        .iter()
        .filter(same_format)
        .filter(|e| !e.is_own())
        .collect();
    let foreign_names = foreign.iter().map(|e| e.name.clone()).collect();
    let remove_foreign = if replace_foreign {
        foreign.iter().map(|e| e.name.clone()).collect()
    } else {
        vec![]
    };
    let usable_foreign = foreign
        .iter()
        .find(|e| e.enabled && e.flags.fix_binary && foreign_working.contains(&e.name));
    let action = match (own, usable_foreign) {
        (Some(e), _) if d.satisfied_by(e) && e.enabled => Action::Keep {
            entry: e.name.clone(),
        },
        (Some(e), _) if d.satisfied_by(e) => Action::Enable {
            entry: e.name.clone(),
        },
        (Some(e), _) => Action::Replace {
            old: e.name.clone(),
        },
        (None, Some(f)) if !replace_foreign => Action::UseForeign {
            entry: f.name.clone(),
        },
        (None, _) => Action::Register,
    };
    ArchPlan {
        desired: d.clone(),
        action,
        foreign: foreign_names,
        remove_foreign,
    }
}

/// Own entries to remove for `uninstall`: ours only, for the given arches (or all of ours).
pub fn uninstall(observed: &[Entry], arches: Option<&[&'static Arch]>) -> Vec<String> {
    observed
        .iter()
        .filter(|e| e.is_own())
        .filter(|e| match arches {
            None => true,
            Some(list) => list.iter().any(|a| e.same_format_as(a.magic, a.mask)),
        })
        .map(|e| e.name.clone())
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
