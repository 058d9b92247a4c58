//! Building the report from observations: pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{BinfmtMiscInfo, Format, Host, State, Status, Summary, SCHEMA};
use crate::arch::{Arch, ARCHES};
use crate::entry::{Entry, OWN_PREFIX};
use crate::prover::{Argv0Mode, ProbeResult};

/// What is known about an interpreter file named by an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterpreterFacts {
    pub present: bool,
    pub sha256: Option<String>,
    pub qemu_version: Option<String>,
    /// Where binfmtd's cache got it from (config source), when it came from the cache.
    pub source: Option<String>,
    /// Why the file fails the trust rule (a non-root user could change it): then it was
    /// neither run for its version nor probed.
    pub untrusted: Option<String>,
}

/// Does an enabled entry for this format name an interpreter that fails the trust rule?
/// Probing the format would make the kernel run it as root.
pub fn untrusted_entry(arch: &Arch, obs: &Observed) -> bool {
    obs.entries.iter().any(|e| {
        e.enabled
            && e.same_format_as(arch.magic, arch.mask)
            && obs
                .interpreters
                .get(&e.interpreter)
                .is_some_and(|f| f.untrusted.is_some())
    })
}

/// Everything the report is built from.
#[derive(Debug, Default)]
pub struct Observed {
    pub binfmt_misc: Option<BinfmtMiscInfo>,
    pub native: Vec<&'static Arch>,
    /// Compat formats the native probe could not decide, with why (never registered).
    pub native_unknown: Vec<(&'static Arch, String)>,
    pub entries: Vec<Entry>,
    /// Probe results by qemu arch name, for formats that have an enabled entry or are native.
    pub proofs: BTreeMap<&'static str, ProbeResult>,
    pub interpreters: BTreeMap<PathBuf, InterpreterFacts>,
}

/// The entry that handles a format: ours if enabled, else the first enabled foreign one.
pub fn handling_entry<'e>(arch: &Arch, entries: &'e [Entry]) -> Option<&'e Entry> {
    let same: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.same_format_as(arch.magic, arch.mask))
        .collect();
    same.iter()
        .find(|e| e.is_own() && e.enabled)
        .or_else(|| same.iter().find(|e| e.enabled))
        .or_else(|| same.first())
        .copied()
}

pub fn build(host: &'static Arch, obs: &Observed) -> Status {
    let formats: Vec<Format> = ARCHES.iter().map(|a| format_row(a, obs)).collect();
    let mut summary = Summary::default();
    for f in &formats {
        match (f.working, f.state) {
            (true, _) => summary.working.push(f.arch),
            (false, State::Absent) => {}
            (false, State::RegisteredUnproven) => summary.unproven.push(f.arch),
            (false, _) => summary.failing.push(f.arch),
        }
    }
    Status {
        schema: SCHEMA,
        host: Host {
            arch: host.qemu,
            platform: host.platform(),
            native: obs.native.iter().map(|a| a.qemu).collect(),
            native_unknown: obs
                .native_unknown
                .iter()
                .map(|(a, why)| (a.qemu, why.clone()))
                .collect(),
        },
        binfmt_misc: obs.binfmt_misc.clone().unwrap_or(BinfmtMiscInfo {
            path: String::new(),
            available: false,
            enabled: None,
            error: Some("not inspected".into()),
        }),
        labels: crate::labels::desired(&formats, &crate::labels::Prefix::default()),
        formats,
        summary,
    }
}

fn format_row(arch: &'static Arch, obs: &Observed) -> Format {
    let entry = handling_entry(arch, &obs.entries);
    let others = obs
        .entries
        .iter()
        .filter(|e| {
            e.same_format_as(arch.magic, arch.mask)
                && Some(e.name.as_str()) != entry.map(|e| e.name.as_str())
        })
        .map(|e| e.name.clone())
        .collect();
    let facts = entry.and_then(|e| obs.interpreters.get(&e.interpreter));
    let proof = obs.proofs.get(arch.qemu).cloned();
    let native = obs.native.iter().any(|n| n.qemu == arch.qemu);
    let (state, mut reason, mut hint) = if untrusted_entry(arch, obs) && !native {
        untrusted(arch, obs)
    } else {
        judge(arch, native, entry, proof.as_ref(), facts)
    };
    let undecided = obs.native_unknown.iter().find(|(a, _)| a.qemu == arch.qemu);
    if let (State::Absent, Some((_, why))) = (state, undecided) {
        // `install` would refuse it too: the hint to install would be wrong.
        (reason, hint) = (Some(why.clone()), None);
    }
    Format {
        arch: arch.qemu,
        platform: arch.platform(),
        goarch: arch.goarch,
        debian: arch.debian,
        state,
        working: state.working(),
        owner: entry.map(|e| {
            if e.name.starts_with(OWN_PREFIX) {
                "binfmtd"
            } else {
                "foreign"
            }
        }),
        entry: entry.map(|e| e.name.clone()),
        other_entries: others,
        enabled: entry.map(|e| e.enabled),
        flags: entry.map(Entry::flag_letters),
        interpreter: entry.map(|e| e.interpreter.display().to_string()),
        interpreter_present: facts.map(|f| f.present),
        sha256: facts.and_then(|f| f.sha256.clone()),
        qemu_version: facts.and_then(|f| f.qemu_version.clone()),
        source: facts.and_then(|f| f.source.clone()),
        probe: proof,
        reason,
        hint,
    }
}

type Judgement = (State, Option<String>, Option<String>);

/// A format an entry serves through an interpreter other users can change: failing, since
/// whoever can change it runs code as root in every emulated process.
fn untrusted(arch: &Arch, obs: &Observed) -> Judgement {
    let why: Vec<String> = obs
        .entries
        .iter()
        .filter(|e| e.enabled && e.same_format_as(arch.magic, arch.mask))
        .filter_map(|e| {
            let f = obs.interpreters.get(&e.interpreter)?;
            Some(format!(
                "entry {} runs interpreter {}, which a non-root user can change ({}); binfmtd did not run it",
                e.name,
                e.interpreter.display(),
                f.untrusted.as_deref()?
            ))
        })
        .collect();
    let hint = format!(
        "make the interpreter and every directory above it root's alone, or replace the entry: `binfmtd install --arch {} --replace-foreign`",
        arch.qemu
    );
    (State::RegisteredFailing, Some(why.join("; ")), Some(hint))
}

fn judge(
    arch: &Arch,
    native: bool,
    entry: Option<&Entry>,
    proof: Option<&ProbeResult>,
    facts: Option<&InterpreterFacts>,
) -> Judgement {
    let install = format!("run `binfmtd install --arch {}`", arch.qemu);
    let Some(e) = entry else {
        return if native {
            (State::Native, None, None)
        } else {
            (
                State::Absent,
                Some("no binfmt_misc entry for this format".into()),
                Some(install),
            )
        };
    };
    if native && e.enabled {
        let why = format!("entry {} hijacks a format this CPU runs natively (binfmt_misc is consulted before the native loader)", e.name);
        return (
            State::RegisteredFailing,
            Some(why),
            Some(format!("remove it: echo -1 > .../{}", e.name)),
        );
    }
    if !e.enabled {
        return (
            State::RegisteredFailing,
            Some(format!("entry {} is disabled", e.name)),
            Some(install),
        );
    }
    let foreign = !e.is_own();
    let hint = if foreign {
        format!("{install} (adds binfmtd's own entry beside it), or add --replace-foreign to replace it")
    } else {
        install
    };
    match proof {
        None => (
            State::RegisteredUnproven,
            Some("binfmtd has no probe program for this arch".into()),
            None,
        ),
        Some(p) if p.ok => {
            let state = if foreign {
                State::Foreign
            } else {
                State::EmulatedWorking
            };
            let warn = (!e.flags.fix_binary).then(|| {
                "no F flag: containers and chroots without the interpreter cannot use it"
                    .to_string()
            });
            (state, warn, None)
        }
        Some(p) => {
            let mut why = if p.argv0 == Some(Argv0Mode::Shifted) {
                "flag P is set but the interpreter does not understand it: arguments arrive shifted by one".to_string()
            } else {
                format!("probe failed: {}", p.detail)
            };
            if facts.is_some_and(|f| !f.present) {
                why.push_str(&format!(
                    "; interpreter {} does not exist in this mount namespace",
                    e.interpreter.display()
                ));
            }
            (State::RegisteredFailing, Some(why), Some(hint))
        }
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
