//! Proof that a format runs, behind a trait: the real one executes probe programs
//! (`probe` module); tests of the orchestration may script one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::arch::Arch;
use crate::probe::ExecRunner;

pub use crate::probe::{Argv0Mode, Native, ProbeResult};

/// Proves formats. `Sync` so that per-arch work can run on several threads.
pub trait Prover: Sync {
    /// Does this binfmtd know a probe program for the arch?
    fn can_probe(&self, arch: &Arch) -> bool;
    /// Execute the arch's probe; the kernel picks whichever entry handles it.
    fn prove(&self, arch: &'static Arch) -> ProbeResult;
    /// Does the format run with no binfmt_misc entry at all (native or compat)? `No` only
    /// when the kernel says so; `Unknown` when the probe could not tell.
    fn runs_natively(&self, arch: &'static Arch) -> Native;
    /// `interpreter --version`, parsed; None when it cannot be run.
    fn qemu_version(&self, interpreter: &Path) -> Option<String>;
}

/// Which formats this host runs natively, and which it could not tell.
#[derive(Debug, Clone, Default)]
pub struct NativeSurvey {
    /// Its own arch, plus compat formats a native probe ran.
    pub native: Vec<&'static Arch>,
    /// Compat formats whose native probe failed without ENOEXEC, with why. Never register
    /// an emulator for these: the CPU may well run them.
    pub unknown: Vec<(&'static Arch, String)>,
}

impl NativeSurvey {
    pub fn is_native(&self, arch: &Arch) -> bool {
        self.native.iter().any(|n| n.qemu == arch.qemu)
    }

    /// Why `arch` is undecided, when it is.
    pub fn unknown_why(&self, arch: &Arch) -> Option<&str> {
        let mut it = self.unknown.iter();
        it.find(|(a, _)| a.qemu == arch.qemu)
            .map(|(_, w)| w.as_str())
    }
}

/// Formats this host runs natively: its own arch, plus compat formats (i386 on x86_64,
/// arm on arm64 CPUs with AArch32) that a native probe proves. Decided by executing, never
/// by `uname`: many arm64 server CPUs lack AArch32.
pub fn survey_native(prover: &dyn Prover) -> NativeSurvey {
    let host = crate::arch::host();
    let mut out = NativeSurvey {
        native: vec![host],
        unknown: Vec::new(),
    };
    for a in compat_candidates(host) {
        match prover.runs_natively(a) {
            Native::Yes => out.native.push(a),
            Native::No => {}
            Native::Unknown(why) => out.unknown.push((a, format!("cannot tell whether this host runs {} natively, so no emulator is registered for it; its native probe ended without ENOEXEC: {why}", a.qemu))),
        }
    }
    out
}

/// The proven-native formats of `survey_native`.
pub fn native_arches(prover: &dyn Prover) -> Vec<&'static Arch> {
    survey_native(prover).native
}

/// Formats a host CPU family might run natively, besides its own.
fn compat_candidates(host: &Arch) -> Vec<&'static Arch> {
    let names: &[&str] = match host.qemu {
        "x86_64" => &["i386", "i486"],
        "aarch64" => &["arm"],
        "aarch64_be" => &["armeb"],
        "ppc64" => &["ppc"],
        "sparc64" => &["sparc", "sparc32plus"],
        "mips64" => &["mips", "mipsn32"],
        "mips64el" => &["mipsel", "mipsn32el"],
        _ => &[],
    };
    names
        .iter()
        .filter_map(|n| crate::arch::lookup(n).ok())
        .collect()
}

/// The prover that runs real probe programs from private directories under `scratch`.
pub fn exec_prover(scratch: PathBuf, timeout: Duration) -> Box<dyn Prover> {
    let runner = ExecRunner::new(scratch);
    runner.sweep_stale();
    Box::new(ExecProver { runner, timeout })
}

struct ExecProver {
    runner: ExecRunner,
    timeout: Duration,
}

impl Prover for ExecProver {
    fn can_probe(&self, arch: &Arch) -> bool {
        crate::probe::supported().any(|a| a.qemu == arch.qemu)
    }

    fn prove(&self, arch: &'static Arch) -> ProbeResult {
        crate::probe::run(&self.runner, arch, false, self.timeout)
    }

    fn runs_natively(&self, arch: &'static Arch) -> Native {
        crate::probe::native(&self.runner, arch, self.timeout)
    }

    fn qemu_version(&self, interpreter: &Path) -> Option<String> {
        crate::interp::qemu_version(interpreter, self.timeout)
    }
}
