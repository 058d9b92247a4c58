//! `binfmtd status` and `binfmtd selftest`: observe, prove, report.

use std::path::{Path, PathBuf};

use crate::arch::{Arch, ARCHES};
use crate::cache::IndexEntry;
use crate::exit::Exit;
use crate::interp::Sums;
use crate::kernel::{BinfmtFs, BinfmtMisc};
use crate::prover::Prover;
use crate::status::{self, BinfmtMiscInfo, InterpreterFacts, Observed, Status};

use super::common::{self, CacheArgs, ProbeArgs};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the report as JSON (schema binfmtd.status/v1, documented in the README).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// Arches to prove (default: every format with an entry, and the native ones).
    #[arg(long, value_name = "LIST")]
    pub arch: Option<String>,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Gather everything the report needs. Never mounts and never changes anything.
pub fn observe(
    root: &Path,
    prover: &dyn Prover,
    cache: &CacheArgs,
    only: Option<&[&'static Arch]>,
) -> Observed {
    let sums = cache.sums();
    let mut obs = Observed {
        native: crate::prover::native_arches(prover),
        ..Default::default()
    };
    let path = root.display().to_string();
    let (info, entries) =
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
        };
    obs.binfmt_misc = Some(info);
    obs.entries = entries;
    let mut paths: Vec<PathBuf> = obs.entries.iter().map(|e| e.interpreter.clone()).collect();
    paths.sort();
    paths.dedup();
    let index = crate::cache::read_index(&cache.cache_dir).unwrap_or_default();
    let facts = crate::par::map(&paths, |p| interpreter_facts(prover, &sums, &index, p));
    sums.save();
    obs.interpreters = paths.into_iter().zip(facts).collect();
    // Prove what could run: native formats and formats with an enabled entry, unless an
    // entry for the format names an interpreter that fails the trust rule (the probe would
    // run it as root).
    let to_prove: Vec<&'static Arch> = ARCHES
        .iter()
        .filter(|a| only.is_none_or(|l| l.iter().any(|x| x.qemu == a.qemu)))
        .filter(|a| {
            let native = obs.native.iter().any(|n| n.qemu == a.qemu);
            let entry = obs
                .entries
                .iter()
                .any(|e| e.enabled && e.same_format_as(a.magic, a.mask));
            prover.can_probe(a) && (native || entry) && !status::untrusted_entry(a, &obs)
        })
        .collect();
    let proofs = crate::par::map(&to_prove, |a| prover.prove(a));
    obs.proofs = to_prove.iter().map(|a| a.qemu).zip(proofs).collect();
    obs
}

/// Facts about an entry's interpreter. For files from binfmtd's cache, the index says where
/// they came from and which qemu they are, without running them. A file that fails the
/// trust rule is reported as such and never run.
fn interpreter_facts(
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

fn exit_for(s: &Status) -> Exit {
    if !s.binfmt_misc.available {
        Exit::Environment
    } else if s.summary.failing.is_empty() {
        Exit::Ok
    } else {
        Exit::NotWorking
    }
}

pub fn run(root: &Path, args: StatusArgs) -> anyhow::Result<Exit> {
    let prover = common::prover(&args.probe, &args.cache);
    let s = status::build(
        crate::arch::host(),
        &observe(root, prover.as_ref(), &args.cache, None),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", status::table(&s));
    }
    Ok(exit_for(&s))
}

pub fn selftest(root: &Path, args: SelftestArgs) -> anyhow::Result<Exit> {
    let only = args.arch.as_deref().map(common::arches).transpose()?;
    let prover = common::prover(&args.probe, &args.cache);
    let s = status::build(
        crate::arch::host(),
        &observe(root, prover.as_ref(), &args.cache, only.as_deref()),
    );
    let rows: Vec<&status::Format> = s
        .formats
        .iter()
        .filter(|f| match &only {
            Some(l) => l.iter().any(|a| a.qemu == f.arch),
            None => f.state != status::State::Absent,
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for f in &rows {
            let verdict = if f.working { "PASS" } else { "FAIL" };
            let detail = f
                .probe
                .as_ref()
                .map(|p| p.detail.as_str())
                .or(f.reason.as_deref())
                .unwrap_or("-");
            println!("{verdict} {:<12} {:<20} {detail}", f.arch, f.state.as_str());
        }
    }
    if !s.binfmt_misc.available && rows.iter().any(|f| !f.working) {
        return Ok(Exit::Environment);
    }
    Ok(if rows.iter().all(|f| f.working) {
        Exit::Ok
    } else {
        Exit::NotWorking
    })
}
