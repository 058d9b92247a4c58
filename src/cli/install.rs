//! `binfmtd install`: check interpreters, register, prove, report.

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::entry::Flags;
use crate::exit::{Exit, Failure};
use crate::install::{self, failed_arch, Outcome};
use crate::interp::{self, Source};
use crate::plan::Desired;

use super::common::{self, CacheArgs, ProbeArgs};

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Arches to emulate, comma-separated, by any name: qemu (aarch64), OCI platform
    /// (linux/arm64), GOARCH (arm64) or Debian (armhf); or `all` for every format this host
    /// does not run natively.
    #[arg(long, value_name = "LIST", required = true)]
    pub arch: String,

    /// The qemu-user interpreter to register (one arch, or a file named qemu-<arch>[-static]).
    #[arg(long, value_name = "FILE", conflicts_with = "interpreter_dir")]
    pub interpreter: Option<PathBuf>,

    /// Directory holding qemu-<arch> (trixie qemu-user) or qemu-<arch>-static (Debian
    /// qemu-user-static) binaries. Default: /usr/bin, /usr/local/bin, /usr/libexec/qemu-binfmt.
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
    pub cache: CacheArgs,
}

pub fn run(root: &Path, args: InstallArgs) -> anyhow::Result<Exit> {
    let requested = common::arches(&args.arch)?;
    let explicit_all = args
        .arch
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("all"));
    common::require_admin("install")?;
    let prover = common::prover(&args.probe, &args.cache);
    let native = crate::prover::native_arches(prover.as_ref());
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
    let fs = common::open_kernel(root, true)?;
    let sums = args.cache.sums();
    let (desired, mut outcomes, missing) = desired(&foreign, &args, explicit_all, &sums);
    sums.save();
    let applied = install::install(
        &fs,
        prover.as_ref(),
        &desired,
        install::Options {
            replace_foreign: args.replace_foreign,
        },
    )
    .map_err(common::kernel_failure)?;
    outcomes.extend(applied);
    outcomes.sort_by_key(|o| foreign.iter().position(|a| a.qemu == o.arch));
    print(&outcomes, &named_native, &missing, args.json)?;
    Ok(if outcomes.iter().all(|o| o.working) {
        Exit::Ok
    } else {
        Exit::NotWorking
    })
}

/// Locate and check every interpreter; arches that fail a check become failed outcomes
/// right away and are never registered. With `all`, arches with no interpreter at all are
/// listed as skipped rather than failed: `all` means "everything that is available".
fn desired(
    arches: &[&'static Arch],
    args: &InstallArgs,
    all: bool,
    sums: &interp::Sums,
) -> (Vec<Desired>, Vec<Outcome>, Vec<&'static str>) {
    let source = match (&args.interpreter, &args.interpreter_dir) {
        (Some(f), _) => Source::File(f.clone()),
        (None, Some(d)) => Source::Dir(d.clone()),
        (None, None) => Source::System,
    };
    let flags = Flags {
        preserve_argv0: false,
        open_binary: !args.no_open_binary || args.credentials,
        credentials: args.credentials,
        fix_binary: true,
    };
    let host = crate::arch::host();
    let (mut ok, mut bad, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    let checked = crate::par::map(arches, |&arch| {
        interp::locate(arch, &source, arches.len())
            .and_then(|p| interp::check_interpreter_with(&p, host, sums))
    });
    for (&arch, checked) in arches.iter().zip(checked) {
        match checked {
            Ok(info) => ok.push(Desired {
                arch,
                interpreter: info.path,
                flags,
            }),
            Err(interp::InterpError::NotFound { .. }) if all => missing.push(arch.qemu),
            Err(e) => bad.push(failed_arch(arch, "-", None, e.to_string())),
        }
    }
    (ok, bad, missing)
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
        let status = if o.working { "ok" } else { "NOT WORKING" };
        println!("{}: {status}: {what}{proof}", o.arch);
        if let Some(r) = &o.reason {
            println!("  {}: {r}", o.arch);
        }
    }
    Ok(())
}
