//! `binfmtd install`: check interpreters, register, prove, report.

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::entry::Flags;
use crate::exit::{Exit, Failure};
use crate::install::{self, Outcome};
use crate::interp::Source;

use super::common::{self, ProbeArgs};
use super::fetch::SupplyArgs;
use super::interpreters;

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Arches to emulate, comma-separated, by any name: qemu (aarch64), OCI platform
    /// (linux/arm64), GOARCH (arm64) or Debian (armhf); or `all` for every format this host
    /// does not run natively.
    #[arg(long, value_name = "LIST", required = true)]
    pub arch: String,

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
    /// runs with them. Off by default: see README "Flags".
    #[arg(long)]
    pub credentials: bool,

    /// Do not set the O flag (hand qemu an open fd, so it can run binaries that are
    /// executable but not readable). Ignored with --credentials, which implies O.
    #[arg(long)]
    pub no_open_binary: bool,

    /// Remove other tools' entries for the requested formats (default: never touched).
    #[arg(long)]
    pub replace_foreign: bool,

    /// Skip, rather than refuse, requested arches this host runs natively (useful when one
    /// list serves a mixed amd64/arm64 fleet).
    #[arg(long)]
    pub skip_native: bool,

    /// Print the outcome as JSON (one object per arch).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub supply: SupplyArgs,
}

pub fn run(root: &Path, args: InstallArgs) -> anyhow::Result<Exit> {
    let requested = common::arches(&args.arch)?;
    let explicit_all = args
        .arch
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("all"));
    common::require_admin("install")?;
    let prover = common::prover(&args.probe, &args.supply.cache);
    let survey = crate::prover::survey_native(prover.as_ref());
    let native = &survey.native;
    let is_native = |a: &Arch| native.iter().any(|n| n.qemu == a.qemu);
    let named_native: Vec<&str> = requested
        .iter()
        .filter(|a| is_native(a))
        .map(|a| a.qemu)
        .collect();
    if !named_native.is_empty() && !explicit_all && !args.skip_native {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{} runs natively on this host; registering an emulator would hijack native binaries (binfmt_misc is consulted before the native loader). Drop it from --arch, or add --skip-native; nothing was registered",
                named_native.join(", ")
            ),
        )
        .into());
    }
    let foreign: Vec<&'static Arch> = requested.into_iter().filter(|a| !is_native(a)).collect();
    let (foreign, undecided) = install::split_undecided(foreign, &survey);
    let fs = common::open_kernel(root, true)?;
    let sums = args.supply.cache.sums();
    let local = match (&args.interpreter, &args.interpreter_dir) {
        (Some(f), _) => Some(Source::File(f.clone())),
        (None, Some(d)) => Some(Source::Dir(d.clone())),
        (None, None) => None,
    };
    let flags = Flags {
        preserve_argv0: false,
        open_binary: !args.no_open_binary || args.credentials,
        credentials: args.credentials,
        fix_binary: true,
    };
    let resolved =
        interpreters::resolve(&foreign, local, &args.supply, flags, explicit_all, &sums)?;
    sums.save();
    let (mut outcomes, missing) = (resolved.failed, resolved.missing);
    let applied = install::install(
        &fs,
        prover.as_ref(),
        &resolved.desired,
        install::Options {
            replace_foreign: args.replace_foreign,
        },
    )
    .map_err(common::kernel_failure)?;
    outcomes.extend(applied);
    outcomes.extend(undecided);
    outcomes.sort_by_key(|o| foreign.iter().position(|a| a.qemu == o.arch));
    if resolved.from_cache {
        // Interpreters nothing references any more (an old pin, a dropped arch) go now.
        if let Err(e) = super::fetch::collect_garbage(root, &args.supply.cache.cache_dir) {
            tracing::warn!(error = %e, "cache gc after install failed");
        }
    }
    print(&outcomes, &named_native, &missing, args.json)?;
    // With `all`, an undecided compat format is skipped (reported); named, it fails.
    let skipped = |o: &Outcome| explicit_all && o.action == install::UNDECIDED;
    Ok(if outcomes.iter().all(|o| o.working || skipped(o)) {
        Exit::Ok
    } else {
        Exit::NotWorking
    })
}

fn print(
    outcomes: &[Outcome],
    skipped_native: &[&str],
    missing: &[&str],
    json: bool,
) -> anyhow::Result<()> {
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
        let status = match (o.working, o.action == install::UNDECIDED) {
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
