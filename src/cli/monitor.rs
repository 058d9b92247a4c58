//! `binfmtd monitor`: print emulated executions and exec-format errors as they happen.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::exit::{Exit, Failure};
use crate::monitor::{self, Event, Kind};

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// One JSON object per event on stdout (kind, arch, path, pid, pod_uid, container_id,
    /// unit) instead of one line of text.
    #[arg(long)]
    pub json_events: bool,

    /// Do not watch for exec format errors (ENOEXEC): their syscall tracepoints slow every
    /// syscall on the node a little; emulated executions are still shown.
    #[arg(long)]
    pub no_exec_format_errors: bool,

    /// The tracefs mount to use (default: /sys/kernel/tracing, mounted there if nothing is).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
}

pub fn run(binfmt_misc: &Path, args: MonitorArgs) -> anyhow::Result<Exit> {
    let opts = monitor::Options {
        tracefs: args.tracefs,
        binfmt_misc: binfmt_misc.to_path_buf(),
        exec_format_errors: !args.no_exec_format_errors,
    };
    let mut sink = Printer {
        json: args.json_events,
    };
    monitor::run(&opts, &mut sink).map_err(|e| Failure::new(Exit::Environment, e.to_string()))?;
    Ok(Exit::Ok)
}

struct Printer {
    json: bool,
}

impl monitor::Sink for Printer {
    fn ready(&mut self, r: &monitor::run::Ready) {
        let enoexec = match &r.exec_format_errors {
            Ok(()) => "on",
            Err(why) => why,
        };
        eprintln!(
            "binfmtd monitor: watching execs through {} (sched_prepare_exec: {}; exec-format errors: {enoexec})",
            r.instance.display(),
            if r.prepare_exec { "yes" } else { "no, reading program headers" },
        );
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", human(e))?;
        }
        out.flush()
    }
}

fn human(e: &Event) -> String {
    let what = match e.kind {
        Kind::Emulated => format!("emulated {}", e.arch.unwrap_or("unknown-arch")),
        Kind::ExecFormatError => "exec format error".to_string(),
    };
    let who = match (&e.pod_uid, &e.container_id, &e.unit) {
        (Some(pod), Some(c), _) => format!("pod {pod} container {}", &c[..12.min(c.len())]),
        (Some(pod), None, _) => format!("pod {pod}"),
        (None, _, Some(unit)) => unit.clone(),
        (None, _, None) => "exited before attribution".to_string(),
    };
    let path = e.path.as_deref().unwrap_or("(path unknown)");
    format!("{what}: {path} pid {} ({who})", e.pid)
}
