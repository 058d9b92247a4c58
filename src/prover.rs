//! Proof that a format runs, behind a trait: the real one executes probe programs
//! (`probe` module); tests of the orchestration may script one.

use std::path::Path;

use crate::arch::Arch;

/// How the emulator saw argv[0] (from the probe's report of argc and argv[0]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Argv0 {
    /// P is set and the interpreter understands it: argv[0] arrives as the caller gave it.
    Preserved,
    /// No P: argv[0] is replaced by the binary's path (multi-call binaries lose their name).
    Replaced,
    /// P is set but the interpreter does not understand it: every argument shifted by one.
    Shifted,
}

/// The result of running one probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proof {
    /// The program ran and printed the expected marker (argv[0] handling aside).
    pub ran: bool,
    pub argv0: Option<Argv0>,
    /// What happened, for people: "ok", "exec format error (ENOEXEC)", "timed out after 5s", ...
    pub detail: String,
    pub millis: u64,
}

impl Proof {
    /// Working means: it ran, and argv[0] is not shifted (a shifted argv breaks every program).
    pub fn working(&self) -> bool {
        self.ran && self.argv0 != Some(Argv0::Shifted)
    }
}

pub trait Prover {
    /// Does this binfmtd know a probe program for the arch?
    fn can_probe(&self, arch: &Arch) -> bool;
    /// Execute the arch's probe; the kernel picks whichever entry handles it.
    fn prove(&self, arch: &'static Arch) -> Proof;
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
        "s390x" => &[],
        _ => &[],
    };
    names
        .iter()
        .filter_map(|n| crate::arch::lookup(n).ok())
        .collect()
}

/// The prover that runs real probe programs from private directories under `scratch`.
pub fn exec_prover(scratch: std::path::PathBuf, timeout: std::time::Duration) -> Box<dyn Prover> {
    let _ = (scratch, timeout);
    Box::new(NoProbes)
}

/// Placeholder until the probe programs land: proves nothing, claims nothing.
struct NoProbes;

impl Prover for NoProbes {
    fn can_probe(&self, _: &Arch) -> bool {
        false
    }
    fn prove(&self, _: &'static Arch) -> Proof {
        Proof {
            ran: false,
            argv0: None,
            detail: "no probe".into(),
            millis: 0,
        }
    }
    fn runs_natively(&self, _: &'static Arch) -> bool {
        false
    }
    fn qemu_version(&self, _: &Path) -> Option<String> {
        None
    }
}
