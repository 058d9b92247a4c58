//! Gathering what the status report is built from: the kernel's entries, probe results
//! and interpreter facts. `status` observes everything now; the daemon passes in the
//! proofs it already has, so a report never costs it extra probes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::arch::{Arch, ARCHES};
use crate::cache::IndexEntry;
use crate::entry::Entry;
use crate::interp::Sums;
use crate::kernel::{BinfmtFs, BinfmtMisc};
use crate::prover::{ProbeResult, Prover};
use crate::status::{untrusted_entry, BinfmtMiscInfo, InterpreterFacts, Observed};

/// Gather everything the report needs, proving what could run. Never mounts and never
/// changes anything.
pub fn observe(
    root: &Path,
    prover: &dyn Prover,
    cache_dir: &Path,
    only: Option<&[&'static Arch]>,
) -> Observed {
    let survey = crate::prover::survey_native(prover);
    let native = survey.native;
    let (info, entries) = kernel_view(root);
    let mut obs = with_proofs(prover, cache_dir, native, info, entries, BTreeMap::new());
    // Prove what could run: native formats and formats with an enabled entry, unless an
    // entry for the format names an interpreter that fails the trust rule (the kernel
    // would run it as root for the probe).
    let to_prove: Vec<&'static Arch> = ARCHES
        .iter()
        .filter(|a| only.is_none_or(|l| l.iter().any(|x| x.qemu == a.qemu)))
        .filter(|a| {
            let is_native = obs.native.iter().any(|n| n.qemu == a.qemu);
            let entry = obs
                .entries
                .iter()
                .any(|e| e.enabled && e.same_format_as(a.magic, a.mask));
            prover.can_probe(a) && (is_native || entry) && !untrusted_entry(a, &obs)
        })
        .collect();
    let proofs = crate::par::map(&to_prove, |a| prover.prove(a));
    obs.proofs = to_prove.iter().map(|a| a.qemu).zip(proofs).collect();
    obs.native_unknown = survey.unknown;
    obs
}

/// The report's inputs from proofs already made (the daemon's last results).
pub fn with_proofs(
    prover: &dyn Prover,
    cache_dir: &Path,
    native: Vec<&'static Arch>,
    info: BinfmtMiscInfo,
    entries: Vec<Entry>,
    proofs: BTreeMap<&'static str, ProbeResult>,
) -> Observed {
    let interpreters = interpreter_facts(prover, cache_dir, &entries);
    Observed {
        binfmt_misc: Some(info),
        native,
        entries,
        proofs,
        interpreters,
        ..Default::default()
    }
}

/// binfmt_misc's state and entries at `root`, or why it cannot be read.
pub fn kernel_view(root: &Path) -> (BinfmtMiscInfo, Vec<Entry>) {
    let path = root.display().to_string();
    match BinfmtFs::open(root).and_then(|fs| Ok((fs.instance_enabled()?, fs.entries()?))) {
        Ok((enabled, entries)) => (
            BinfmtMiscInfo {
                path,
                available: true,
                enabled: Some(enabled),
                error: None,
            },
            entries,
        ),
        Err(e) => (
            BinfmtMiscInfo {
                path,
                available: false,
                enabled: None,
                error: Some(e.to_string()),
            },
            vec![],
        ),
    }
}

/// Facts about every interpreter the entries name.
fn interpreter_facts(
    prover: &dyn Prover,
    cache_dir: &Path,
    entries: &[Entry],
) -> BTreeMap<PathBuf, InterpreterFacts> {
    let sums = super::sums(cache_dir);
    let mut paths: Vec<PathBuf> = entries.iter().map(|e| e.interpreter.clone()).collect();
    paths.sort();
    paths.dedup();
    let index = crate::cache::read_index(cache_dir).unwrap_or_default();
    let facts = crate::par::map(&paths, |p| facts_of(prover, &sums, &index, p));
    sums.save();
    paths.into_iter().zip(facts).collect()
}

/// Facts about an entry's interpreter. For files from binfmtd's cache, the index says where
/// they came from and which qemu they are, without running them. A file that fails the
/// trust rule is reported as such and never run.
fn facts_of(
    prover: &dyn Prover,
    sums: &Sums,
    index: &[IndexEntry],
    path: &Path,
) -> InterpreterFacts {
    if !path.is_file() {
        return InterpreterFacts::default();
    }
    let tf = match crate::trust::open_file(path) {
        Ok(tf) => tf,
        Err(e) => {
            let why = match e {
                crate::trust::TrustError::Unsafe { what, .. } => what,
                e => e.to_string(),
            };
            return InterpreterFacts {
                present: true,
                untrusted: Some(why),
                ..Default::default()
            };
        }
    };
    let sha256 = sums.sha256_open(&tf.file, &tf.path).ok().map(|(h, _)| h);
    let indexed = index.iter().find(|e| Some(&e.sha256) == sha256.as_ref());
    InterpreterFacts {
        present: true,
        qemu_version: indexed
            .and_then(|e| e.version.clone())
            .or_else(|| prover.qemu_version(path)),
        source: indexed.map(|e| e.source.clone()),
        sha256,
        untrusted: None,
    }
}
