//! Proof that a format runs, behind a trait: the real one executes probe programs
//! (`probe` module); tests of the orchestration may script one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::arch::Arch;
use crate::probe::ExecRunner;

pub use crate::probe::{Argv0Mode, ProbeResult};

/// Proves formats. `Sync` so that per-arch work can run on several threads.
pub trait Prover: Sync {
    /// Does this binfmtd know a probe program for the arch?
    fn can_probe(&self, arch: &Arch) -> bool;
    /// Execute the arch's probe; the kernel picks whichever entry handles it.
    fn prove(&self, arch: &'static Arch) -> ProbeResult;
    /// Does the format run with no binfmt_misc entry at all (native or compat)?
    fn runs_natively(&self, arch: &'static Arch) -> bool;
    /// `interpreter --version`, parsed; None when it cannot be run.
    fn qemu_version(&self, interpreter: &Path) -> Option<String>;
}

/// Formats this host runs natively: its own arch, plus compat formats (i386 on x86_64,
/// arm on arm64 CPUs with AArch32) that a native probe proves. Decided by executing, never
/// by `uname`: many arm64 server CPUs lack AArch32.
pub fn native_arches(prover: &dyn Prover) -> Vec<&'static Arch> {
    let host = crate::arch::host();
    let mut out = vec![host];
    for a in compat_candidates(host) {
        if prover.runs_natively(a) {
            out.push(a);
        }
    }
    out
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

    fn runs_natively(&self, arch: &'static Arch) -> bool {
        self.can_probe(arch) && crate::probe::run(&self.runner, arch, true, self.timeout).ok
    }

    fn qemu_version(&self, interpreter: &Path) -> Option<String> {
        crate::interp::qemu_version(interpreter, self.timeout)
    }
}
