//! `binfmtd status` and `binfmtd selftest`: observe, prove, report.

use std::path::Path;

use crate::converge::observe;
use crate::exit::Exit;
use crate::status::{self, Status};

use super::common::{self, CacheArgs, ProbeArgs};
use super::labels::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the report as JSON (schema binfmtd.status/v1, documented in the README).
    #[arg(long)]
    pub json: bool,

    /// The running agent's status file: its view (repairs, backoff, fights) is added when
    /// the agent that wrote it still runs.
    #[arg(long, value_name = "PATH", default_value = "/run/binfmtd/status.json")]
    pub status_file: std::path::PathBuf,

    #[command(flatten)]
    pub prefix: PrefixArg,

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
    let mut s = status::build(
        crate::arch::host(),
        &observe(root, prover.as_ref(), &args.cache.cache_dir, None),
    );
    s.labels = crate::labels::desired(&s.formats, &args.prefix.label_prefix);
    let daemon = crate::agent::report::fresh_daemon(&args.status_file);
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        if let (Some(d), Some(o)) = (daemon, v.as_object_mut()) {
            o.insert("daemon".into(), d);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", status::table(&s));
        if let Some(d) = daemon {
            print_daemon(&d);
        }
    }
    Ok(exit_for(&s))
}

/// The agent's view under the table: one line for the agent, one per arch it keeps.
fn print_daemon(d: &serde_json::Value) {
    let get = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    println!(
        "agent: pid {} since {}, last reconcile {}",
        d["pid"],
        get("started"),
        get("last_reconcile")
    );
    for (arch, a) in d["arches"].as_object().into_iter().flatten() {
        let mut line = format!(
            "  {arch}: {} (repairs {}, last {})",
            a["state"].as_str().unwrap_or("-"),
            a["repairs"],
            a["last_reason"].as_str().unwrap_or("-")
        );
        if let Some(t) = a["retry_at"].as_str() {
            line.push_str(&format!(", retry at {t}"));
        }
        let with: Vec<&str> = a["fighting_with"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if !with.is_empty() {
            line.push_str(&format!(", fighting with {}", with.join(", ")));
        }
        println!("{line}");
    }
    if d["exec_monitor"].is_object() {
        print!("{}", status::exec_monitor_text(&d["exec_monitor"]));
    }
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
