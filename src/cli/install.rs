//! `binfmtd install`: check interpreters, register, prove, report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::converge::{self, ConvergeError, Converged, Interpreters, Request};
use crate::exit::{Exit, Failure};
use crate::interp::Source;

use super::common::{self, ProbeArgs};
use super::fetch::{load_config, SupplyArgs};

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Arches to emulate, comma-separated, by any name: qemu (aarch64), OCI platform
    /// (linux/arm64), GOARCH (arm64) or Debian (armhf); or `all` for every format this host
    /// does not run natively.
    #[arg(long, value_name = "LIST", required = true)]
    pub arch: String,

    /// Print the outcome as JSON (one object per arch).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub converge: ConvergeArgs,
}

/// What `install` and `run` share: where interpreters come from and how they are registered.
#[derive(Debug, clap::Args)]
pub struct ConvergeArgs {
    /// The qemu-user interpreter to register (one arch, or a file named qemu-<arch>[-static]).
    /// Without --interpreter or --interpreter-dir, interpreters come from the sources in
    /// --config (default: the embedded pinned Debian trixie qemu-user package), via the cache.
    #[arg(long, value_name = "FILE", conflicts_with = "interpreter_dir")]
    pub interpreter: Option<PathBuf>,

    /// Directory holding qemu-<arch> (trixie qemu-user) or qemu-<arch>-static (Debian
    /// qemu-user-static) binaries, e.g. /usr/bin.
    #[arg(long, value_name = "DIR")]
    pub interpreter_dir: Option<PathBuf>,

    /// Set the C flag: foreign setuid binaries (sudo, ping) get their credentials, and qemu
    /// runs with them. Off by default: see README "Flags". Config key: credentials.
    #[arg(long)]
    pub credentials: bool,

    /// Do not set the O flag (hand qemu an open fd, so it can run binaries that are
    /// executable but not readable). Ignored with --credentials, which implies O.
    /// Config key: open-binary = false.
    #[arg(long)]
    pub no_open_binary: bool,

    /// Remove other tools' entries for the requested formats (default: never touched).
    /// Config key: replace-foreign.
    #[arg(long)]
    pub replace_foreign: bool,

    /// Skip, rather than refuse, requested arches this host runs natively (useful when one
    /// list serves a mixed amd64/arm64 fleet). Config key: skip-native.
    #[arg(long)]
    pub skip_native: bool,

    /// Enter this mount namespace first (e.g. /proc/1/ns/mnt from a container with
    /// hostPID), so binfmt_misc is mounted and interpreters are opened in the host's
    /// namespace and the entries outlive this process. --config, --kubeconfig, $KUBECONFIG
    /// and the service-account token are still read in the namespace binfmtd started in.
    #[arg(long, value_name = "PATH")]
    pub mount_namespace: Option<PathBuf>,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub supply: SupplyArgs,
}

pub fn run(root: &Path, args: InstallArgs) -> anyhow::Result<Exit> {
    let req = request(&args.converge, Some(&args.arch))?;
    common::require_admin("install")?;
    let prover = common::prover(&args.converge.probe, &args.converge.supply.cache);
    let native = crate::prover::survey_native(prover.as_ref());
    // Refuse a named native arch before mounting anything.
    converge::select(&req, &native).map_err(converge_failure)?;
    let fs = common::open_kernel(root, true)?;
    let done = converge::converge(&fs, prover.as_ref(), &req, &native, LOCK_WAIT)
        .map_err(converge_failure)?;
    print(&done, args.json)?;
    Ok(if done.all_working() {
        Exit::Ok
    } else {
        Exit::NotWorking
    })
}

/// How long `install` waits for another binfmtd that is changing the same entries.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The command line and the config file as a plain converge request: the command line
/// wins; `arch` (from --arch) falls back to the config's `arches`.
pub fn request(args: &ConvergeArgs, arch: Option<&str>) -> anyhow::Result<Request> {
    let config = load_config(&args.supply)?;
    let agent = &config.agent;
    let list = arch.or(agent.arches.as_deref()).ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            "no arches to converge to: pass --arch LIST or set arches = [...] in the config file",
        )
    })?;
    let arches = common::arches(list)?;
    let all = list
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("all"));
    let interpreters = match (&args.interpreter, &args.interpreter_dir) {
        (Some(f), _) => Interpreters::Local(Source::File(f.clone())),
        (None, Some(d)) => Interpreters::Local(Source::Dir(d.clone())),
        (None, None) => Interpreters::Supply(config.clone()),
    };
    let credentials = args.credentials || agent.credentials.unwrap_or(false);
    let open_binary = !args.no_open_binary && agent.open_binary.unwrap_or(true);
    Ok(Request {
        arches,
        all,
        skip_native: args.skip_native || agent.skip_native.unwrap_or(false),
        interpreters,
        flags: converge::flags(credentials, open_binary),
        replace_foreign: args.replace_foreign || agent.replace_foreign.unwrap_or(false),
        cache_dir: args.supply.cache.cache_dir.clone(),
    })
}

/// Map a converge error to the exit code the README documents.
pub fn converge_failure(e: ConvergeError) -> anyhow::Error {
    match e {
        ConvergeError::Kernel(k) => common::kernel_failure(k),
        e @ ConvergeError::NativeRequested(_) => Failure::new(Exit::Usage, e.to_string()).into(),
        e @ ConvergeError::Lock(_) => Failure::new(Exit::Environment, e.to_string()).into(),
    }
}

fn print(done: &Converged, json: bool) -> anyhow::Result<()> {
    let (outcomes, skipped_native, missing) = (&done.outcomes, &done.skipped_native, &done.missing);
    if json {
        println!("{}", serde_json::to_string_pretty(outcomes)?);
        return Ok(());
    }
    for n in skipped_native {
        println!("{n}: native on this host, nothing to register");
    }
    if !missing.is_empty() {
        println!("skipped (no interpreter found): {}", missing.join(", "));
    }
    for o in outcomes {
        let what = match (&o.entry, &o.flags) {
            (Some(e), Some(f)) => format!("{} {e} (flags {f}, {})", o.action, o.interpreter),
            (Some(e), None) => format!("{} {e}", o.action),
            _ => o.action.clone(),
        };
        let proof = o
            .proof
            .as_ref()
            .map(|p| format!("; probe: {} ({} ms)", p.detail, p.millis))
            .unwrap_or_default();
        let status = match (o.working, o.action == crate::install::UNDECIDED) {
            (true, _) => "ok",
            (false, true) => "SKIPPED",
            (false, false) => "NOT WORKING",
        };
        println!("{}: {status}: {what}{proof}", o.arch);
        if let Some(r) = &o.reason {
            println!("  {}: {r}", o.arch);
        }
    }
    Ok(())
}
