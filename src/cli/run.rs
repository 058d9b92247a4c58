//! `binfmtd run`: the node agent (see the agent module). Parses options into plain values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{self, AgentError, Options, Policy};
use crate::exit::{Exit, Failure};

use super::common;
use super::install::{converge_failure, request, ConvergeArgs};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Arches to keep working (as for install). Optional when the config file sets
    /// `arches`; the command line wins.
    #[arg(long, value_name = "LIST")]
    pub arch: Option<String>,

    /// How often binfmt_misc is polled for drift (cheap reads; a probe only on change).
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = duration)]
    pub interval: Duration,

    /// How often every arch is proven again, so a format that silently stopped working
    /// is noticed.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub reproof_interval: Duration,

    /// Status file (the `status --json` report plus the daemon's view), replaced
    /// atomically after every change. The single-instance lock `binfmtd.lock` sits beside it,
    /// so its directory must be root's and writable by root alone (see "Trust rule").
    #[arg(long, value_name = "PATH", default_value = "/run/binfmtd/status.json")]
    pub status_file: PathBuf,

    /// Serve GET /healthz, /readyz and /metrics on this address (e.g. 127.0.0.1:9464).
    /// Off by default.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// On SIGTERM/SIGINT, remove binfmtd's own entries (default: leave every entry, so a
    /// restart or rolling update does not break running foreign containers).
    #[arg(long)]
    pub uninstall_on_exit: bool,

    #[command(flatten)]
    pub exec: ExecMonitorArgs,

    // Boxed: the enum of subcommands stays small (clippy::large_enum_variant).
    #[command(flatten)]
    pub labels: Box<super::labels::LabelArgs>,

    #[command(flatten)]
    pub converge: ConvergeArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExecMonitorArgs {
    /// Also watch execs on the node (as `binfmtd monitor` does): count emulated executions
    /// and exec format errors in /metrics, list them per container in the status file, and
    /// with --node-labels put Events on the pod. Needs tracefs; without it the agent logs
    /// `exec-monitor: unavailable (reason)` once and carries on.
    #[arg(long)]
    pub exec_monitor: bool,

    /// With --exec-monitor: do not watch for exec format errors (their syscall tracepoints
    /// slow every syscall on the node a little).
    #[arg(long, requires = "exec_monitor")]
    pub no_exec_format_errors: bool,

    /// With --exec-monitor: the tracefs mount to use (default: /sys/kernel/tracing).
    #[arg(long, value_name = "DIR", requires = "exec_monitor")]
    pub tracefs: Option<PathBuf>,

    /// With --exec-monitor: the container runtime's CRI socket, to name the pods of exec
    /// events (namespace/name, in the status file and for Kubernetes Events). Default:
    /// /run/containerd/containerd.sock when it exists; else pods are known by UID only.
    #[arg(long, value_name = "PATH", requires = "exec_monitor")]
    pub cri_socket: Option<PathBuf>,
}

/// `250ms`, `2s`, `10m`, `1h`; zero is refused.
pub fn duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; write e.g. 250ms, 2s, 10m or 1h"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number; write e.g. 250ms, 2s, 10m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(d)
}

pub fn run(root: &Path, args: RunArgs) -> anyhow::Result<Exit> {
    let arch = args.arch.clone();
    let req = request(&args.converge, arch.as_deref())?;
    common::require_admin("run")?;
    let prover = common::prover(&args.converge.probe, &args.converge.supply.cache);
    let config_file = args
        .converge
        .supply
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH));
    let opts = Options {
        interval: args.interval,
        reproof_interval: args.reproof_interval,
        lock_file: args.status_file.with_file_name("binfmtd.lock"),
        status_file: args.status_file,
        listen: args.listen,
        uninstall_on_exit: args.uninstall_on_exit,
        config_file,
        policy: Policy::default(),
        lock_wait: Duration::from_secs(120),
        labels: args.labels.options()?,
        exec_monitor: args.exec.exec_monitor.then(|| crate::monitor::Options {
            tracefs: args.exec.tracefs.clone(),
            binfmt_misc: root.to_path_buf(),
            exec_format_errors: !args.exec.no_exec_format_errors,
            cri_socket: {
                let (socket, why) =
                    crate::monitor::cri::choose_socket(args.exec.cri_socket.clone());
                if let Some(why) = why {
                    tracing::info!("exec-monitor: {why}");
                }
                socket
            },
        }),
    };
    let load = || request(&args.converge, arch.as_deref()).map_err(|e| format!("{e:#}"));
    agent::run(root, prover.as_ref(), &load, req, &opts).map_err(|e| match e {
        AgentError::Converge(c) => converge_failure(c),
        AgentError::Kernel(k) => common::kernel_failure(k),
        AgentError::Lock(_) | AgentError::Listen { .. } | AgentError::Labels(_) => {
            Failure::new(Exit::Environment, e.to_string()).into()
        }
        AgentError::Signals(_) => Failure::new(Exit::Internal, e.to_string()).into(),
    })?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn parses_durations_and_refuses_zero_or_unitless() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["0s", "0ms", "10", "s", "5d", "-1s", ""] {
            assert!(duration(bad).is_err(), "{bad} accepted");
        }
    }
}
