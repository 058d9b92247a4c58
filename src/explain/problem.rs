//! Why a file cannot run: one variant per cause, each message naming the object, the
//! failure and the fix. Serialized with a `code` tag (the JSON schema's problem codes).

use std::path::PathBuf;

use super::glibc::GlibcVersion;
use crate::arch::{ElfClass, Endian};

/// Why a file cannot run. `message` (Display) names the object, the failure and the fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Problem {
    #[error("{error}")]
    BadFile { error: String },
    #[error("cannot read it: {error}")]
    Unreadable { error: String },
    #[error("no emulator for arch {arch}: no enabled binfmt_misc entry in {binfmt_misc} matches it{}. Fix: `binfmtd install --arch {arch}`", disabled_note(disabled))]
    NoEmulator {
        arch: String,
        binfmt_misc: PathBuf,
        disabled: Vec<String>,
    },
    #[error("no emulator for arch {arch}: {reason}. Fix: `binfmtd install --arch {arch}`")]
    BinfmtUnavailable { arch: String, reason: String },
    #[error("no emulator for arch {arch}: binfmt_misc at {binfmt_misc} is disabled as a whole (`echo 1 > {}/status`)", binfmt_misc.display())]
    BinfmtDisabled { arch: String, binfmt_misc: PathBuf },
    #[error("ELF machine {machine} ({}) is not a format binfmtd knows; no binfmt_misc entry matches it", shape(*class, *endian))]
    UnknownMachine {
        machine: u16,
        class: ElfClass,
        endian: Endian,
    },
    #[error("binfmt_misc entry {entry} has no F flag and its interpreter {} does not exist in root {}: re-register it with F (`binfmtd install --arch ...`)", interpreter.display(), root.display())]
    EntryInterpreterMissing {
        entry: String,
        interpreter: PathBuf,
        root: PathBuf,
    },
    #[error("its dynamic loader {loader} is missing in root {}: install that arch's libc6 there", root.display())]
    LoaderMissing { loader: String, root: PathBuf },
    #[error("it needs glibc {needed} but root {} has no libc.so.6 for its CPU", root.display())]
    LibcMissing { needed: GlibcVersion, root: PathBuf },
    #[error("needs glibc {needed} but root {} has {available} ({libc}): use a root with glibc >= {needed}, or a build for glibc {available}", root.display())]
    GlibcTooOld {
        needed: GlibcVersion,
        available: GlibcVersion,
        libc: String,
        root: PathBuf,
    },
    #[error("its interpreter {interpreter} does not exist in root {}", root.display())]
    InterpreterMissing { interpreter: String, root: PathBuf },
    #[error("`env` finds no {command} in root {}'s PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)", root.display())]
    EnvCommandMissing { command: String, root: PathBuf },
    #[error("library {library} (needed by {needed_by}) is not found in root {}: looked in {}{}{}. Fix: install the package that provides {library} into that root", root.display(), searched.join(", "), skipped_note(skipped), hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    LibraryMissing {
        library: String,
        needed_by: String,
        root: PathBuf,
        /// Where the loader looked, in its order (directories, and the ld.so.cache).
        searched: Vec<String>,
        /// Files of that name the loader skips: another CPU, class, or not a library.
        skipped: Vec<String>,
        /// Why a place that has it is not searched (a stale ld.so.cache).
        hint: Option<String>,
    },
    #[error("{needed_by} needs version {version} of {library}, but {path} in root {} {}: use a root with a newer {library}, or a build of the program for this one", root.display(), available_note(available, version))]
    VersionMissing {
        version: String,
        library: String,
        /// The library file that was loaded for `library`, inside the root.
        path: String,
        needed_by: String,
        /// The highest version of the same family (GLIBCXX_, GCC_, ...) that file defines.
        available: Option<String>,
        root: PathBuf,
    },
    #[error("{needed_by} needs symbol versions from {library}, but no library is loaded under that name (DT_NEEDED names it otherwise, e.g. after `patchelf --replace-needed`): glibc's loader stops with an internal assertion. Fix: make DT_NEEDED and the version references name the same library")]
    VersionsFromUnloaded { library: String, needed_by: String },
    #[error(
        "platform {platform} is not a Linux CPU format binfmtd knows; no binfmt_misc entry runs it"
    )]
    UnknownPlatform { platform: String },
    #[error("the image has no platform this node ({host}) runs natively; it offers {}. A runtime pulling for this node refuses it; pick one with --platform (and `binfmtd install --arch ...` for its emulator)", available.join(", "))]
    NoMatchingPlatform {
        host: String,
        available: Vec<String>,
    },
    #[error("the image config has neither Entrypoint nor Cmd: nothing to run (give the container a command)")]
    NoCommand,
    #[error("command {command} is not found in the image (looked in {})", path.join(":"))]
    CommandNotFound { command: String, path: Vec<String> },
    #[error("its interpreter {interpreter} cannot run: {}", join(problems))]
    InterpreterCannotRun {
        interpreter: String,
        problems: Vec<Problem>,
    },
}

fn disabled_note(disabled: &[String]) -> String {
    match disabled.is_empty() {
        true => String::new(),
        false => format!(" (matching but disabled: {})", disabled.join(", ")),
    }
}

fn skipped_note(skipped: &[String]) -> String {
    match skipped.is_empty() {
        true => String::new(),
        false => format!(" (skipped as the loader does: {})", skipped.join("; ")),
    }
}

fn available_note(available: &Option<String>, version: &str) -> String {
    match available {
        Some(a) => format!("has at most {a}"),
        None => format!(
            "defines no {} version",
            super::versions::family(version).unwrap_or(version)
        ),
    }
}

fn join(problems: &[Problem]) -> String {
    let all: Vec<String> = problems.iter().map(Problem::to_string).collect();
    all.join("; ")
}

/// `32-bit little-endian`.
fn shape(class: ElfClass, endian: Endian) -> String {
    let bits = match class {
        ElfClass::Elf32 => 32,
        ElfClass::Elf64 => 64,
    };
    let order = match endian {
        Endian::Little => "little",
        Endian::Big => "big",
    };
    format!("{bits}-bit {order}-endian")
}

impl Problem {
    /// Name the root differently in the message (an image's filesystem was checked in a
    /// scratch directory that is gone by the time anyone reads the report).
    pub fn rename_root(&mut self, name: &std::path::Path) {
        match self {
            Problem::EntryInterpreterMissing { root, .. }
            | Problem::LoaderMissing { root, .. }
            | Problem::LibcMissing { root, .. }
            | Problem::GlibcTooOld { root, .. }
            | Problem::InterpreterMissing { root, .. }
            | Problem::EnvCommandMissing { root, .. }
            | Problem::LibraryMissing { root, .. }
            | Problem::VersionMissing { root, .. } => *root = name.to_path_buf(),
            Problem::InterpreterCannotRun { problems, .. } => {
                problems.iter_mut().for_each(|p| p.rename_root(name))
            }
            _ => {}
        }
    }
}
