//! Command-line interface: argument parsing (no syscalls) and one file per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{Exit, Failure};

mod common;
mod explain;
mod fetch;
mod install;
pub mod labels;
mod monitor;
mod place;
mod pod_root;
mod run;
mod status;
mod uninstall;

/// binfmtd: provision, prove and report qemu-user emulation of foreign CPU architectures
/// through binfmt_misc.
#[derive(Debug, Parser)]
#[command(name = "binfmtd", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Where binfmt_misc is (or will be) mounted.
    #[arg(long, global = true, value_name = "DIR", default_value = crate::kernel::DEFAULT_ROOT)]
    pub binfmt_misc: PathBuf,

    /// Log more (-v: debug, -vv: trace). Logs go to stderr; RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr: human (colour only on a terminal) or json (one object per line,
    /// for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

pub const EXIT_CODES: &str = "Exit codes: 0 all requested arches work; 1 some arch (or file) does not work, \
see the per-arch reason; 2 bad input (unknown arch, bad option); 3 environment (binfmt_misc unavailable, \
missing CAP_SYS_ADMIN); 4 unexpected internal or I/O error.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register qemu-user emulators for foreign arches, prove each works, report per arch.
    Install(install::InstallArgs),
    /// The node agent: converge, then keep every arch working (repair drift, re-prove,
    /// report). SIGHUP re-reads the config; SIGTERM/SIGINT exit leaving the entries.
    Run(run::RunArgs),
    /// Remove binfmtd's own entries (never another tool's).
    Uninstall(uninstall::UninstallArgs),
    /// One row per format: state, owner, flags, interpreter, qemu version, probe result.
    Status(status::StatusArgs),
    /// Run the probe programs now and say which arches work.
    Selftest(status::SelftestArgs),
    /// Explain why a binary will or will not run on this node, and what would make it run.
    Explain(explain::ExplainArgs),
    /// Download, verify and cache interpreters without registering them.
    Fetch(fetch::FetchArgs),
    /// Remove cached interpreters and archives that nothing references.
    Gc(fetch::GcArgs),
    /// Print emulated executions and exec-format errors as they happen (registers nothing).
    /// SIGTERM/SIGINT exit, removing its tracefs instance.
    Monitor(monitor::MonitorArgs),
    /// Cluster component: gate pods in opted-in namespaces (admission webhook), then place
    /// each where its images' architecture runs natively or emulated (controller).
    Place(place::PlaceArgs),
}

/// Parse arguments, run, print the error chain, and map to a documented exit code.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // setns into a mount namespace fails once a process has threads: first thing, then.
    if let Err(e) = enter_mount_namespace(&mut cli.command) {
        eprintln!("binfmtd: error: {e:#}");
        return Exit::Environment.into();
    }
    let daemon = matches!(cli.command, Command::Run(_) | Command::Place(_));
    init_logging(cli.verbose, cli.log_format, daemon);
    match run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let exit = err
                .downcast_ref::<Failure>()
                .map(|f| f.exit)
                .unwrap_or(Exit::Internal);
            eprintln!("binfmtd: error: {err:#}");
            exit.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Install(args) => install::run(&cli.binfmt_misc, args),
        Command::Run(args) => run::run(&cli.binfmt_misc, args),
        Command::Uninstall(args) => uninstall::run(&cli.binfmt_misc, args),
        Command::Status(args) => status::run(&cli.binfmt_misc, args),
        Command::Selftest(args) => status::selftest(&cli.binfmt_misc, args),
        Command::Explain(args) => explain::run(&cli.binfmt_misc, args),
        Command::Fetch(args) => fetch::run_fetch(args),
        Command::Gc(args) => fetch::run_gc(&cli.binfmt_misc, args),
        Command::Monitor(args) => monitor::run(&cli.binfmt_misc, args),
        Command::Place(args) => place::run(args),
    }
}

/// `--mount-namespace PATH` of install and run: join that mount namespace, then point the
/// agent's own inputs (--config, --kubeconfig, $KUBECONFIG, the service account) at the
/// namespace it started in, where the pod's files are.
fn enter_mount_namespace(command: &mut Command) -> anyhow::Result<()> {
    let (converge, labels) = match command {
        Command::Install(a) => (&mut a.converge, None),
        Command::Run(a) => (&mut a.converge, Some(a.labels.as_mut())),
        _ => return Ok(()),
    };
    let Some(path) = &converge.mount_namespace else {
        return Ok(());
    };
    // Symlinks in the directories resolve now, while they resolve in the pod's tree.
    let config = converge.supply.config.as_deref().map(pod_root::real_dir);
    let kubeconfig = labels
        .as_ref()
        .and_then(|l| l.kubeconfig.as_deref().map(pod_root::real_dir));
    let root = pod_root::enter(path)?;
    let own = |p: PathBuf| pod_root::own_path(&p, Some(&root));
    converge.supply.config = config.map(own);
    if let Some(labels) = labels {
        labels.kubeconfig = kubeconfig.map(own);
        labels.pod_root = Some(Box::new(root));
    }
    Ok(())
}

/// The daemon logs each repair and failure (info); one-shot commands only warnings.
fn init_logging(verbose: u8, format: LogFormat, daemon: bool) {
    let default = match verbose {
        0 if daemon => "info",
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colour codes only for a person at a terminal, never into a pipe or the journal.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
