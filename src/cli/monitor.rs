//! `binfmtd monitor`: print emulated executions and exec-format errors as they happen.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use crate::agent::{Health, Shared};
use crate::exit::{Exit, Failure};
use crate::monitor::{self, Event, Kind};

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// One JSON object per event on stdout (kind, arch, path, pid, pod_uid, pod_namespace,
    /// pod_name, container_id, unit) instead of one line of text.
    #[arg(long)]
    pub json_events: bool,

    /// Do not watch for exec format errors (ENOEXEC): their syscall tracepoints slow every
    /// syscall on the node a little; emulated executions are still shown.
    #[arg(long)]
    pub no_exec_format_errors: bool,

    /// The tracefs mount to use (default: /sys/kernel/tracing, mounted there if nothing is).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,

    /// Serve GET /metrics (binfmtd_emulated_execs_total{arch},
    /// binfmtd_exec_format_errors_total), /healthz and /readyz on this address, e.g.
    /// 127.0.0.1:9465. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The container runtime's CRI socket, to name each event's pod (pod_namespace,
    /// pod_name) through ListPodSandbox. Default: containerd's
    /// /run/containerd/containerd.sock when it exists; without a socket, pods are shown by
    /// UID only.
    #[arg(long, value_name = "PATH")]
    pub cri_socket: Option<PathBuf>,
}

pub fn run(binfmt_misc: &Path, args: MonitorArgs) -> anyhow::Result<Exit> {
    let opts = monitor::Options {
        tracefs: args.tracefs,
        binfmt_misc: binfmt_misc.to_path_buf(),
        exec_format_errors: !args.no_exec_format_errors,
        cri_socket: cri_socket(args.cri_socket),
    };
    // Before the server's thread starts, so it inherits the mask.
    monitor::run::block_signals().map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let shared = match args.listen {
        Some(addr) => Some(serve(addr)?),
        None => None,
    };
    let mut sink = Printer {
        json: args.json_events,
        shared,
    };
    monitor::run(&opts, &mut sink).map_err(|e| Failure::new(Exit::Environment, e.to_string()))?;
    Ok(Exit::Ok)
}

/// The named socket, else containerd's if it exists; says once when there is none.
fn cri_socket(named: Option<PathBuf>) -> Option<PathBuf> {
    let (socket, why) = monitor::cri::choose_socket(named);
    if let Some(why) = why {
        eprintln!("binfmtd monitor: {why}");
    }
    socket
}

/// The agent's HTTP server over counters of our own; ready once watching.
fn serve(addr: SocketAddr) -> anyhow::Result<Arc<Shared>> {
    let shared = Arc::new(Shared::new("not watching yet"));
    let bound = crate::agent::serve(addr, shared.clone()).map_err(|e| {
        Failure::new(
            Exit::Environment,
            format!("--listen {addr}: cannot listen: {e}. Hint: pick a free port, or an address this host has"),
        )
    })?;
    eprintln!("binfmtd monitor: serving /metrics on {bound}");
    Ok(shared)
}

struct Printer {
    json: bool,
    /// `--listen`: the counters and health the server reports.
    shared: Option<Arc<Shared>>,
}

impl Printer {
    fn health(&self, f: impl FnOnce(&mut Health)) {
        if let Some(s) = &self.shared {
            f(&mut s.state.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

impl monitor::Sink for Printer {
    fn tick(&mut self) {
        self.health(|h| h.heartbeat = Instant::now());
    }

    fn ready(&mut self, r: &monitor::run::Ready) {
        self.health(|h| {
            h.ready = true;
            h.not_ready.clear();
        });
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
        if let Some(s) = &self.shared {
            s.metrics.count_exec(e);
        }
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
    let who = crate::monitor::tally::Who::of(e).describe();
    let path = e.path.as_deref().unwrap_or("(path unknown)");
    format!("{what}: {path} pid {} ({who})", e.pid)
}
