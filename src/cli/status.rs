//! `binfmtd status` and `binfmtd selftest`: observe, prove, report.

use std::path::Path;

use crate::converge::observe;
use crate::exit::Exit;
use crate::status::{self, Status};

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
        &observe(root, prover.as_ref(), &args.cache.cache_dir, None),
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
        &observe(
            root,
            prover.as_ref(),
            &args.cache.cache_dir,
            only.as_deref(),
        ),
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
