//! Probe programs: tiny foreign executables whose run proves an emulator works.
//!
//! For each supported arch, `program` builds a static ELF of a few hundred bytes (header,
//! one PT_LOAD, a data block and hand-assembled code; see `elf.rs` and `code/`) that
//! prints `BINFMTD-PROBE argc=HH argv0=HH arch=NAME`. Running it through the kernel shows
//! (a) that something runs the format and (b) how argv[0] arrives, which tells whether the
//! entry's P flag and the interpreter agree (`Argv0Mode`).
//!
//! `native_program` is the same program with a nonzero byte in EI_PAD (e_ident[9..16]).
//! Every standard qemu/Debian binfmt_misc mask requires those bytes to be zero, so no
//! emulator entry matches it, while the kernel's own ELF loader ignores them. If it runs,
//! the CPU and kernel run the format natively (i386 on x86_64; arm on arm64 CPUs that
//! have AArch32), whatever entries some other tool registered for it. That is the test
//! for "never register an emulator for a format the host runs natively".
//!
//! Pure core: building, parsing and judging. Effects: `Runner` (`runner.rs`).

mod code;
mod elf;
mod output;
mod runner;
mod scratch;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::arch::{Arch, ARCHES};

pub use output::{parse_output, Argv0Mode, Report, MARKER};
pub use runner::{ExecRunner, RunOutput, Runner};

/// argv[0] for probe runs: '@' never starts an absolute path, so a preserved argv[0]
/// cannot be mistaken for the program's path.
pub const PROBE_ARGV0: &str = "@probe";
/// The one extra argument probe runs pass, so a shift by one is visible in argc.
pub const PROBE_ARGS: &[&str] = &["x"];

/// Index of the EI_PAD byte `native_program` sets (e_ident[9], first padding byte).
const EI_PAD: usize = 9;

/// The probe ELF for `arch`, or None where no probe exists for that row.
pub fn program(arch: &Arch) -> Option<Vec<u8>> {
    let p = code::for_arch(arch.qemu)?;
    elf::build(arch, p.e_flags, &p.code.to_bytes(arch.endian()), arch.qemu)
}

/// The probe with a nonzero EI_PAD byte: no binfmt_misc mask matches it, the native ELF
/// loader does not care (see the module doc).
pub fn native_program(arch: &Arch) -> Option<Vec<u8>> {
    let mut bytes = program(arch)?;
    bytes[EI_PAD] = 1;
    Some(bytes)
}

/// The arches binfmtd always has a probe for (the ones a fleet meets); `supported()`
/// adds every other row with one.
pub const GUARANTEED: &[&str] = &[
    "x86_64",
    "i386",
    "aarch64",
    "arm",
    "riscv64",
    "ppc64le",
    "s390x",
    "mips64el",
    "loongarch64",
];

/// The arch rows that have a probe.
pub fn supported() -> impl Iterator<Item = &'static Arch> {
    ARCHES.iter().filter(|a| code::for_arch(a.qemu).is_some())
}

/// Why a probe could not prove anything.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("exec format error (ENOEXEC) running {}: no binfmt_misc entry matches this format and the kernel cannot run it natively. Hint: register an emulator for this arch", program.display())]
    NoHandler { program: PathBuf },
    #[error("executing {}: {source}{}", program.display(), exec_hint(source))]
    Exec {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("waiting for {}: {source}", program.display())]
    Wait {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {} and was killed. Hint: the emulator hangs or the machine is overloaded; run the probe again with a longer timeout", human(*after))]
    TimedOut { after: Duration },
    #[error("cannot {op} {}: {source}. Hint: the probe directory's parent must be writable by binfmtd", path.display())]
    Scratch {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} (the probe directory {}, set with --probe-dir)", path.display())]
    Untrusted { path: PathBuf, what: String },
    #[error("wrong output ({reason}): {output}")]
    WrongOutput { reason: String, output: String },
}

impl ProbeError {
    fn exec(program: &Path, source: io::Error) -> ProbeError {
        let program = program.to_path_buf();
        match source.raw_os_error() {
            Some(libc::ENOEXEC) => ProbeError::NoHandler { program },
            _ => ProbeError::Exec { program, source },
        }
    }
}

fn exec_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ". Hint: the registered interpreter does not exist in this mount namespace; register it with the F flag so the kernel keeps it open",
        Some(libc::EACCES) | Some(libc::EPERM) => ". Hint: the probe directory may be on a noexec filesystem, or the interpreter is not executable",
        Some(libc::ELIBBAD) => ". Hint: the interpreter is not a valid executable for this machine",
        _ => "",
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The outcome of one probe run, as reported per arch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// The program ran, printed its line, and its arguments arrived intact
    /// (argv[0] preserved or replaced by the path; see `argv0`).
    pub ok: bool,
    /// How argv[0] arrived, when the program got far enough to say.
    pub argv0: Option<Argv0Mode>,
    /// One line for people: what happened, and for failures what to do.
    pub detail: String,
    pub millis: u64,
}

/// Run `arch`'s probe (or its native variant) through `runner` and judge the result.
pub fn run<R: Runner + ?Sized>(
    runner: &R,
    arch: &Arch,
    native: bool,
    timeout: Duration,
) -> ProbeResult {
    let start = Instant::now();
    let image = if native {
        native_program(arch)
    } else {
        program(arch)
    };
    let (ok, argv0, detail) = match image {
        None => (
            false,
            None,
            format!("no probe program exists for {}", arch.qemu),
        ),
        Some(image) => match runner.run(&image, PROBE_ARGV0, PROBE_ARGS, timeout) {
            Ok(out) => judge(arch, &out),
            Err(ProbeError::NoHandler { .. }) => (false, None, no_handler(arch, native)),
            Err(e) => (false, None, e.to_string()),
        },
    };
    ProbeResult {
        ok,
        argv0,
        detail,
        millis: start.elapsed().as_millis() as u64,
    }
}

/// What the native probe variant says about a format. Only the kernel refusing the exec
/// (ENOEXEC: no loader and no entry) proves "not native"; a run that dies another way
/// (a signal from a seccomp filter that kills foreign-ABI system calls, a timeout, another
/// errno) proves nothing either way, and registering an emulator on that guess would
/// hijack every native program of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Native {
    Yes,
    No,
    /// Why the run decided nothing.
    Unknown(String),
}

/// Run `arch`'s native variant through `runner` and classify the result (see `Native`).
pub fn native<R: Runner + ?Sized>(runner: &R, arch: &Arch, timeout: Duration) -> Native {
    let Some(image) = native_program(arch) else {
        return Native::Unknown(format!("no probe program exists for {}", arch.qemu));
    };
    match runner.run(&image, PROBE_ARGV0, PROBE_ARGS, timeout) {
        Err(ProbeError::NoHandler { .. }) => Native::No,
        Err(e) => Native::Unknown(e.to_string()),
        Ok(out) => match judge(arch, &out) {
            (true, _, _) => Native::Yes,
            (false, _, why) => Native::Unknown(why + killed_hint(&out)),
        },
    }
}

/// A probe killed by SIGSYS met a seccomp filter: name the usual one.
fn killed_hint(out: &RunOutput) -> &'static str {
    use std::os::unix::process::ExitStatusExt;
    match out.status.signal() {
        Some(libc::SIGSYS) => ". Hint: a seccomp filter killed it (systemd's SystemCallArchitectures= without this ABI?); allow the ABI, or run binfmtd outside that filter",
        _ => "",
    }
}

/// ENOEXEC means different things for the two variants: no standard entry can match the
/// native one, so there it only says the CPU does not run the format itself.
fn no_handler(arch: &Arch, native: bool) -> String {
    let a = arch.qemu;
    if native {
        format!(
            "exec format error (ENOEXEC): this CPU and kernel do not run {a} executables natively"
        )
    } else {
        format!("exec format error (ENOEXEC): no binfmt_misc entry matches {a} executables and the CPU does not run them natively. Hint: register an emulator for {a}")
    }
}

/// Pure verdict on a finished run: (ok, argv0 mode, detail).
pub fn judge(arch: &Arch, out: &RunOutput) -> (bool, Option<Argv0Mode>, String) {
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return (
            false,
            None,
            format!(
                "probe for {} failed ({}); stderr: {}",
                arch.qemu,
                out.status,
                output::quote(stderr.trim_end().as_bytes())
            ),
        );
    }
    let report = match parse_output(&out.stdout) {
        Ok(r) if r.arch == arch.qemu => r,
        Ok(r) => {
            let why = format!("a probe for {} answered as {}", arch.qemu, r.arch);
            return (false, None, why);
        }
        Err(e) => return (false, None, e.to_string()),
    };
    let mode = report.argv0_mode(PROBE_ARGV0, PROBE_ARGS.len());
    let (ok, detail) = match mode {
        Argv0Mode::Preserved => (true, "ran; argv[0] preserved".to_string()),
        Argv0Mode::Replaced => (true, "ran; argv[0] replaced by the program path (entry without the P flag)".to_string()),
        Argv0Mode::Shifted => (false, "arguments shifted by one: the entry has the P flag but its interpreter does not understand it. Hint: use a qemu-user that reads AT_FLAGS_PRESERVE_ARGV0 (kernel >= 5.12) or Debian's <cpu>-binfmt-P wrapper, or register without P".to_string()),
        Argv0Mode::Unexpected => (false, format!("argc arrived as {} where {} was passed: the interpreter mangles arguments", report.argc, 1 + PROBE_ARGS.len())),
    };
    (ok, Some(mode), detail)
}

#[cfg(test)]
mod tests;
