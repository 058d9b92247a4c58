//! Applying a plan: register, prove, keep or roll back. Per-arch failures never stop
//! other arches; each ends as an `Outcome` with its reason.
//!
//! Every change is proven before it is kept: a fresh registration whose probe fails is
//! removed again (a broken emulator must not hijack a format), and a replacement is
//! registered beside the old entry and proven before the old one goes.

use std::collections::BTreeSet;

use crate::arch::Arch;
use crate::entry::{Entry, Flags, Registration};
use crate::kernel::{BinfmtMisc, KernelError};
use crate::plan::{plan, Action, ArchPlan, Desired};
use crate::prover::{Argv0Mode, ProbeResult, Prover};

/// What happened to one arch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub arch: &'static str,
    /// True when the format works at the end (proven, or registered with no probe to run).
    pub working: bool,
    /// What binfmtd did: "kept", "registered", "replaced", "enabled", "left foreign", "failed", ...
    pub action: String,
    pub entry: Option<String>,
    pub flags: Option<String>,
    pub interpreter: String,
    pub proof: Option<ProbeResult>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub replace_foreign: bool,
}

/// Make every desired arch work. Kernel errors that concern the whole instance
/// (permission, binfmt_misc gone) abort; everything else is per arch.
pub fn install(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    desired: &[Desired],
    opts: Options,
) -> Result<Vec<Outcome>, KernelError> {
    let mut observed = fs.entries()?;
    // A replacement interrupted by a crash leaves `<own>.next` behind; it is ours to drop.
    for e in observed
        .iter()
        .filter(|e| e.is_own() && e.name.ends_with(".next"))
    {
        tracing::info!(entry = %e.name, "removing leftover candidate entry");
        fs.remove(&e.name)?;
    }
    observed.retain(|e| !(e.is_own() && e.name.ends_with(".next")));
    let working = prove_foreign(prover, desired, &observed);
    let plans = plan(desired, &observed, &working, opts.replace_foreign);
    // Each arch has its own entry, so arches are applied side by side.
    let results = crate::par::map(&plans, |p| apply(fs, prover, p, &observed));
    let mut out = Vec::new();
    for (p, r) in plans.iter().zip(results) {
        match r {
            Ok(o) => out.push(o),
            Err(e) if e.is_permission() => return Err(e),
            Err(e) => out.push(failed(&p.desired, None, format!("{e}"))),
        }
    }
    Ok(out)
}

/// Probe formats that only foreign entries serve, so the plan can leave working ones be.
fn prove_foreign(prover: &dyn Prover, desired: &[Desired], observed: &[Entry]) -> BTreeSet<String> {
    let mut working = BTreeSet::new();
    for d in desired {
        let same: Vec<&Entry> = observed
            .iter()
            .filter(|e| e.same_format_as(d.arch.magic, d.arch.mask))
            .collect();
        if same.is_empty() || same.iter().any(|e| e.is_own()) || !same.iter().any(|e| e.enabled) {
            continue;
        }
        // The probe would have the kernel run their interpreter as root: never one a non-root
        // user can change. Such an entry does not count as working; binfmtd's own entry,
        // registered after it, is the one the kernel picks.
        if same.iter().any(|e| e.enabled && untrusted(&e.interpreter)) {
            tracing::warn!(arch = d.arch.qemu, "another tool's entry names an interpreter that fails the trust rule; not probing it");
            continue;
        }
        if prover.can_probe(d.arch) && prover.prove(d.arch).ok {
            working.extend(same.iter().filter(|e| e.enabled).map(|e| e.name.clone()));
        }
    }
    working
}

/// Fails the trust rule (a file that is merely absent here is not judged: F may pin it).
fn untrusted(interpreter: &std::path::Path) -> bool {
    matches!(
        crate::trust::open_file(interpreter),
        Err(crate::trust::TrustError::Unsafe { .. })
    )
}

fn apply(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    p: &ArchPlan,
    observed: &[Entry],
) -> Result<Outcome, KernelError> {
    let d = &p.desired;
    for name in &p.remove_foreign {
        tracing::info!(arch = d.arch.qemu, entry = %name, "removing foreign entry (--replace-foreign)");
        fs.remove(name)?;
    }
    let own = d.registration().name;
    match &p.action {
        Action::UseForeign { entry } => {
            let proof = prover.prove(d.arch);
            let o = outcome(
                d,
                "left foreign entry",
                Some(entry.clone()),
                None,
                Some(proof),
            );
            Ok(o)
        }
        Action::Keep { entry } | Action::Enable { entry } => {
            if matches!(p.action, Action::Enable { .. }) {
                fs.set_enabled(entry, true)?;
            }
            let verb = if matches!(p.action, Action::Keep { .. }) {
                "kept"
            } else {
                "enabled"
            };
            let proof = prover.can_probe(d.arch).then(|| prover.prove(d.arch));
            if proof.as_ref().is_none_or(|p| p.ok) {
                return Ok(outcome(
                    d,
                    verb,
                    Some(entry.clone()),
                    observed
                        .iter()
                        .find(|e| &e.name == entry)
                        .map(Entry::flag_letters),
                    proof,
                ));
            }
            // Ours but not working (a later entry shadows it, or its pinned file is broken):
            // registering it again makes it the newest, so the kernel consults it first.
            fs.remove(entry)?;
            Ok(register_proven(fs, prover, d, &own, "re-registered")?.0)
        }
        Action::Register => Ok(register_proven(fs, prover, d, &own, "registered")?.0),
        Action::Replace { old } => replace(fs, prover, d, old),
    }
}

/// Register `d` under `name`, prove it, drop P if the interpreter shifts arguments, and
/// remove it again if it does not work. Also returns the flags it settled on.
fn register_proven(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    d: &Desired,
    name: &str,
    verb: &str,
) -> Result<(Outcome, Flags), KernelError> {
    let mut r = Registration {
        name: name.to_string(),
        ..d.registration()
    };
    if !prover.can_probe(d.arch) {
        // Without a probe we cannot tell whether this qemu understands P; without P,
        // arguments are never shifted (only argv[0] is lost), so that is the safe choice.
        r.flags.preserve_argv0 = false;
        if let Some(adopted) = register_or_adopt(fs, prover, d, &r)? {
            return Ok(adopted);
        }
        let mut o = outcome(
            d,
            verb,
            Some(r.name.clone()),
            Some(r.flags.to_string()),
            None,
        );
        o.reason =
            Some("registered without proof: binfmtd has no probe program for this arch".into());
        return Ok((o, r.flags));
    }
    if let Some(adopted) = register_or_adopt(fs, prover, d, &r)? {
        return Ok(adopted);
    }
    let mut proof = prover.prove(d.arch);
    if proof.argv0 == Some(Argv0Mode::Shifted) {
        tracing::info!(
            arch = d.arch.qemu,
            "interpreter does not understand P; registering without it"
        );
        fs.remove(&r.name)?;
        r.flags.preserve_argv0 = false;
        fs.register(&r)?;
        proof = prover.prove(d.arch);
    }
    if proof.ok {
        let o = outcome(
            d,
            verb,
            Some(r.name.clone()),
            Some(r.flags.to_string()),
            Some(proof),
        );
        return Ok((o, r.flags));
    }
    fs.remove(&r.name)?;
    let why = format!(
        "probe failed ({}); the registration was removed again",
        proof.detail
    );
    Ok((failed(d, Some(proof), why), r.flags))
}

/// Register `r`; when binfmtd's own entry name already exists (another binfmtd that does
/// not take the converge lock registered it since we read the entries), re-read it and
/// prove it instead of failing: a concurrent registration of the same thing is not an
/// error. Returns the adopted outcome, or None when `r` was registered here.
fn register_or_adopt(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    d: &Desired,
    r: &Registration,
) -> Result<Option<(Outcome, Flags)>, KernelError> {
    let err = match fs.register(r) {
        Ok(()) => return Ok(None),
        Err(e) if e.is_exists() && r.name.starts_with(crate::entry::OWN_PREFIX) => e,
        Err(e) => return Err(e),
    };
    tracing::info!(arch = d.arch.qemu, entry = %r.name, "entry registered concurrently by another binfmtd; proving it");
    let Some(found) = fs.entries()?.into_iter().find(|e| e.name == r.name) else {
        // It came and went again: whoever did that is still at work; report the conflict.
        return Err(err);
    };
    let proof = prover.can_probe(d.arch).then(|| prover.prove(d.arch));
    let mut o = outcome(
        d,
        "kept (registered concurrently)",
        Some(found.name.clone()),
        Some(found.flags.to_string()),
        proof,
    );
    o.interpreter = found.interpreter.display().to_string();
    o.working &= found.enabled;
    if !found.enabled {
        o.reason = Some(format!(
            "{} was registered concurrently and is disabled",
            found.name
        ));
    }
    Ok(Some((o, found.flags)))
}

/// Register the new interpreter beside the old entry, prove it, and only then swap.
fn replace(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    d: &Desired,
    old: &str,
) -> Result<Outcome, KernelError> {
    // `install` has already dropped any candidate an interrupted replacement left behind.
    let candidate = format!("{old}.next");
    let (trial, flags) = register_proven(fs, prover, d, &candidate, "replaced")?;
    if !trial.working {
        let mut o = trial;
        o.action = "kept previous".into();
        o.entry = Some(old.to_string());
        o.reason = Some(format!(
            "new interpreter {} failed its probe, so the previous registration {old} stays (rollback): {}",
            d.interpreter.display(),
            o.reason.unwrap_or_default()
        ));
        return Ok(o);
    }
    fs.remove(old)?;
    let final_reg = Registration {
        name: old.to_string(),
        flags,
        ..d.registration()
    };
    fs.register(&final_reg)?;
    fs.remove(&candidate)?;
    let proof = prover.can_probe(d.arch).then(|| prover.prove(d.arch));
    Ok(outcome(
        d,
        "replaced",
        Some(old.to_string()),
        Some(final_reg.flags.to_string()),
        proof,
    ))
}

fn outcome(
    d: &Desired,
    action: &str,
    entry: Option<String>,
    flags: Option<String>,
    proof: Option<ProbeResult>,
) -> Outcome {
    let working = proof.as_ref().is_none_or(|p| p.ok);
    let reason = proof
        .as_ref()
        .filter(|p| !p.ok)
        .map(|p| format!("probe failed: {}", p.detail));
    Outcome {
        arch: d.arch.qemu,
        working,
        action: action.into(),
        entry,
        flags,
        interpreter: d.interpreter.display().to_string(),
        proof,
        reason,
    }
}

/// An arch that could not be made to work, with why.
/// The action of an arch left alone because the native probe could not tell whether the
/// host runs it (see `prover::NativeSurvey`).
pub const UNDECIDED: &str = "not registered (native or not is unknown)";

/// Split `arches` into those to work on and, as outcomes, those whose nativeness is
/// unknown: registering an emulator for them could hijack every native program.
pub fn split_undecided(
    arches: Vec<&'static Arch>,
    survey: &crate::prover::NativeSurvey,
) -> (Vec<&'static Arch>, Vec<Outcome>) {
    let mut undecided = Vec::new();
    let mut rest = Vec::new();
    for a in arches {
        match survey.unknown_why(a) {
            Some(why) => {
                let mut o = failed_arch(a, "", None, why.to_string());
                o.action = UNDECIDED.into();
                undecided.push(o);
            }
            None => rest.push(a),
        }
    }
    (rest, undecided)
}

pub fn failed(d: &Desired, proof: Option<ProbeResult>, reason: String) -> Outcome {
    failed_arch(d.arch, &d.interpreter.display().to_string(), proof, reason)
}

pub fn failed_arch(
    arch: &'static Arch,
    interpreter: &str,
    proof: Option<ProbeResult>,
    reason: String,
) -> Outcome {
    Outcome {
        arch: arch.qemu,
        working: false,
        action: "failed".into(),
        entry: None,
        flags: None,
        interpreter: interpreter.into(),
        proof,
        reason: Some(reason),
    }
}

/// Remove our own entries (never another tool's), returning what was removed.
pub fn uninstall(
    fs: &(dyn BinfmtMisc + Sync),
    arches: Option<&[&'static Arch]>,
) -> Result<Vec<String>, KernelError> {
    let names = crate::plan::uninstall(&fs.entries()?, arches);
    for n in &names {
        fs.remove(n)?;
    }
    Ok(names)
}
