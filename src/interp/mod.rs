//! Interpreters: where the qemu-user binary for an arch is, and whether it may be registered.
//!
//! Every check runs before any registration. The checks are the ones that matter under
//! the F flag: the kernel pins the file and runs it in every container on the node, so it
//! must be an ELF for THIS host's CPU, statically linked (a container has none of its
//! libraries), and pass the trust rule (`crate::trust`: it and every directory above it
//! root's alone; anyone who can change it owns every foreign-arch process on the node).
//! A local interpreter is registered as a copy in the cache made from the checked handle
//! (`adopt`), never by its own path.

mod adopt;
mod checks;
mod hashes;

use std::path::{Path, PathBuf};

pub use adopt::{adopt, adopt_all};
pub use checks::{
    check_elf, check_file, check_interpreter, check_interpreter_with, check_open,
    check_permissions, open_checked, sha256_file, sha256_read,
};
pub use hashes::Sums;

use crate::arch::Arch;
use crate::trust;

/// Facts about an interpreter that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InterpreterInfo {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InterpError {
    #[error("no interpreter for {arch}: looked for {looked}. Hint: put qemu-<arch> (trixie's qemu-user) or qemu-<arch>-static (Debian's qemu-user-static) there, or leave out --interpreter/--interpreter-dir to use the pinned sources of the config")]
    NotFound { arch: String, looked: String },
    #[error("interpreter {path}: {what}")]
    Io { path: PathBuf, what: String },
    #[error("interpreter {path} is not an ELF executable ({what}); use a qemu-user binary")]
    NotElf { path: PathBuf, what: String },
    #[error("interpreter {path} is built for {found} CPUs but this host is {host}. Hint: use the qemu-user build for {host} hosts (the one whose file name names the GUEST arch, e.g. qemu-aarch64, built for {host})")]
    WrongCpu {
        path: PathBuf,
        found: String,
        host: String,
    },
    #[error("interpreter {path} is dynamically linked (PT_INTERP {loader}); under the F flag it would fail inside containers that lack its libraries. Hint: use a statically linked qemu (Debian's qemu-user-static, or trixie's qemu-user)")]
    Dynamic { path: PathBuf, loader: String },
    #[error("interpreter {path}: {what}. Hint: binfmtd registers an interpreter only when no other user can change it or any directory above it (anyone who can controls every emulated process): `chown root:root` and `chmod go-w` each of them, or use a copy in a directory that is")]
    Unsafe { path: PathBuf, what: String },
}

/// Where to look for interpreters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One file; it must be the one for the only requested arch (or named qemu-<arch>...).
    File(PathBuf),
    /// A directory holding `qemu-<cpu>` (trixie's qemu-user) or `qemu-<cpu>-static` (Debian's qemu-user-static).
    Dir(PathBuf),
}

/// The candidate file names for an arch, in preference order.
pub fn file_names(arch: &Arch) -> [String; 2] {
    [
        format!("qemu-{}", arch.interpreter),
        format!("qemu-{}-static", arch.interpreter),
    ]
}

/// Which arch an interpreter file name is for (`qemu-aarch64`, `qemu-aarch64-static`).
pub fn arch_of_file_name(path: &Path) -> Option<&'static Arch> {
    let name = path.file_name()?.to_str()?;
    let cpu = name.strip_prefix("qemu-")?;
    let cpu = cpu.strip_suffix("-static").unwrap_or(cpu);
    crate::arch::ARCHES.iter().find(|a| a.qemu == cpu)
}

/// Find the interpreter file for `arch` from `source` (no checks yet).
pub fn locate(arch: &Arch, source: &Source, requested: usize) -> Result<PathBuf, InterpError> {
    let dir = match source {
        Source::File(f) => {
            return match arch_of_file_name(f) {
                Some(a) if a.interpreter != arch.interpreter => Err(InterpError::NotFound {
                    arch: arch.qemu.into(),
                    looked: format!("{} (its name says it is for {})", f.display(), a.qemu),
                }),
                None if requested > 1 => Err(InterpError::NotFound {
                    arch: arch.qemu.into(),
                    looked: format!(
                        "{} (one --interpreter file serves one arch unless it is named qemu-<arch>; use --interpreter-dir)",
                        f.display()
                    ),
                }),
                _ => Ok(f.clone()),
            };
        }
        Source::Dir(d) => d,
    };
    let candidates = file_names(arch).map(|n| dir.join(n));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| InterpError::NotFound {
            arch: arch.qemu.into(),
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The only PATH a `--version` child gets: root's environment is not handed to it.
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Run `interpreter --version` (at most `timeout`) and parse what it prints; None when it
/// cannot be learned, including when the file fails the trust rule (logged, never run).
pub fn qemu_version(interpreter: &Path, timeout: std::time::Duration) -> Option<String> {
    match version_of(interpreter, timeout) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "not asking this interpreter its version");
            None
        }
    }
}

/// As `qemu_version`, saying why a file was not run. The file must pass the trust rule
/// (it runs as this process's user, usually root); it is executed through the handle that
/// passed (`/proc/self/fd/N`), so the path cannot be swapped in between, with a clean
/// environment.
pub fn version_of(
    interpreter: &Path,
    timeout: std::time::Duration,
) -> Result<Option<String>, InterpError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let tf = trust::open_file(interpreter).map_err(checks::from_trust)?;
    let by_fd = format!("/proc/self/fd/{}", tf.file.as_raw_fd());
    let mut cmd = std::process::Command::new(by_fd);
    cmd.arg0(interpreter)
        .arg("--version")
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .current_dir("/");
    let out = crate::exec::stdout_within(&mut cmd, timeout);
    drop(tf);
    Ok(out.and_then(|o| parse_version(&String::from_utf8_lossy(&o))))
}

/// `qemu-x --version` prints "qemu-x version 7.2.0 (Debian 1:7.2+dfsg-7)"; keep what follows "version".
pub fn parse_version(stdout: &str) -> Option<String> {
    let line = stdout.lines().next()?;
    let v = line.split_once(" version ")?.1.trim();
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests;
