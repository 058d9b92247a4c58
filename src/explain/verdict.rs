//! The verdict for THIS node: a pure function of what a file is (`FileInfo`), what the
//! node offers (`Node`: native arches, binfmt_misc entries, the root's glibc) and what the
//! edge looked up for this one file (`Facts`: loader present, script interpreter found).

use std::path::PathBuf;

use super::elf::ElfInfo;
use super::glibc::GlibcVersion;
pub use super::problem::Problem;
use super::script::Shebang;
use super::{ExplainError, FileInfo};
use crate::arch::{Arch, ElfClass, Endian};
use crate::entry::{Entry, Matcher};

/// One binfmt_misc entry as this node sees it.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub entry: Entry,
    /// Does the entry's interpreter path exist inside the root? Without F, the kernel opens
    /// it at exec time in the caller's root, so a container lacking it cannot use the entry.
    pub interpreter_in_root: bool,
}

/// The binfmt_misc instance consulted for exec on this node.
#[derive(Debug, Clone)]
pub enum Binfmt {
    /// Not mounted, not readable: `reason` is the whole message, with its hint.
    Unavailable { reason: String },
    /// The instance-wide `status` is disabled: no entry is consulted.
    Disabled { path: PathBuf },
    Entries {
        path: PathBuf,
        entries: Vec<NodeEntry>,
    },
}

/// A libc.so.6 found in the root, with its CPU and the highest GLIBC_x.y it defines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Libc {
    /// Path inside the root.
    pub path: String,
    pub machine: u16,
    pub class: ElfClass,
    pub endian: Endian,
    pub version: GlibcVersion,
}

/// What this node offers, gathered once per run.
#[derive(Debug, Clone)]
pub struct Node {
    /// Arches this CPU executes without emulation.
    pub native: Vec<&'static Arch>,
    pub binfmt: Binfmt,
    /// The root files are judged against (`/`, or a container rootfs given with --root).
    pub root: PathBuf,
    pub libcs: Vec<Libc>,
}

impl Node {
    /// The host arch plus the compat arch its CPU family normally executes (i386 on
    /// x86_64, arm on aarch64). Callers that probed the CPU pass their own list instead.
    pub fn default_native(host: &'static Arch) -> Vec<&'static Arch> {
        let compat = match host.qemu {
            "x86_64" => Some("i386"),
            "aarch64" => Some("arm"),
            _ => None,
        };
        std::iter::once(host)
            .chain(compat.and_then(|c| crate::arch::lookup(c).ok()))
            .collect()
    }

    fn libc_for(&self, elf: &ElfInfo) -> Option<&Libc> {
        self.libcs
            .iter()
            .filter(|l| l.machine == elf.machine && l.class == elf.class && l.endian == elf.endian)
            .max_by_key(|l| l.version)
    }
}

/// What the edge found for one file.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The file's name, for extension-matched entries.
    pub file_name: String,
    /// The first bytes of the file, as the kernel matches them against entries.
    pub header: Vec<u8>,
    /// Any execute bit set.
    pub executable: bool,
    /// For an ELF with PT_INTERP: does that path exist in the root?
    pub loader_present: Option<bool>,
    /// For a script: what its interpreter turned out to be.
    pub script: Option<ScriptTarget>,
    /// For a dynamic ELF: libraries the root's loader would not find, symbol versions they
    /// lack (see `resolve`).
    pub libraries: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub enum ScriptTarget {
    /// The interpreter path does not exist in the root.
    Missing,
    /// It exists; its own verdict (a script interpreter must itself be runnable).
    Found(Box<Verdict>),
    /// `#!/usr/bin/env CMD`: env exists but CMD is in none of the root's PATH directories.
    EnvCommandMissing { command: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Native,
    Emulated,
    CannotRun,
    NotExecutable,
}

/// The binfmt_misc entry that would handle the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryUse {
    pub name: String,
    pub flags: String,
    pub interpreter: PathBuf,
    /// `7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)`, filled in by the edge; null when unknown.
    pub qemu_version: Option<String>,
    /// The entry claims a format this CPU runs natively: binfmt_misc is consulted before
    /// the native loader, so the file is emulated anyway.
    pub hijacks_native: bool,
    /// Other enabled entries that match too (the kernel uses the most recently registered).
    pub also_matching: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The entry that handles the file (also set when it cannot run for another reason).
    pub entry: Option<EntryUse>,
    /// Why it cannot run; for `not-executable` (no x bit), what would still stop it.
    pub problems: Vec<Problem>,
    /// For `not-executable`: what the file is instead.
    pub note: Option<String>,
}

impl Verdict {
    pub fn runs(&self) -> bool {
        matches!(self.outcome, Outcome::Native | Outcome::Emulated)
    }

    /// A file that could not be read or parsed.
    pub fn broken(problem: Problem) -> Verdict {
        Verdict {
            outcome: Outcome::CannotRun,
            entry: None,
            problems: vec![problem],
            note: None,
        }
    }

    pub fn from_error(e: &ExplainError) -> Verdict {
        Verdict::broken(Problem::BadFile {
            error: e.to_string(),
        })
    }

    pub fn not_executable(note: impl Into<String>) -> Verdict {
        Verdict {
            outcome: Outcome::NotExecutable,
            entry: None,
            problems: vec![],
            note: Some(note.into()),
        }
    }

    fn finish(mut self) -> Verdict {
        if !self.problems.is_empty() && self.outcome != Outcome::NotExecutable {
            self.outcome = Outcome::CannotRun;
        }
        self
    }
}

/// The verdict for one file on this node.
pub fn verdict(info: &FileInfo, node: &Node, facts: &Facts) -> Verdict {
    match info {
        FileInfo::Elf(elf) if !elf.kind.is_program() => {
            Verdict::not_executable(format!("ELF {}, not a program", kebab(elf.kind)))
        }
        FileInfo::Elf(elf) => elf_verdict(elf, node, facts),
        FileInfo::Script(s) => script_verdict(s, node, facts),
        FileInfo::Other(what) => match handler(None, false, node, facts) {
            // binfmt_misc also runs non-ELF formats (wine, jar, ...) by magic or extension.
            Some(v) if v.outcome == Outcome::Emulated => exec_bit(v, facts).finish(),
            _ => Verdict::not_executable(what.clone()),
        },
    }
}

fn kebab(kind: super::elf::ElfKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A file with no x bit is not meant to be executed (the kernel refuses it): not an
/// executable, whatever else it is. What would still stop it once `chmod +x`ed is kept.
fn exec_bit(mut v: Verdict, facts: &Facts) -> Verdict {
    if !facts.executable {
        v.outcome = Outcome::NotExecutable;
        v.note = Some(NO_EXEC_BIT.into());
    }
    v
}

pub const NO_EXEC_BIT: &str = "no execute permission (`chmod +x` to run it)";

fn elf_verdict(elf: &ElfInfo, node: &Node, facts: &Facts) -> Verdict {
    let native = elf.arch.is_some_and(|a| node.native.contains(&a));
    let mut v = handler(elf.arch, native, node, facts).unwrap_or_else(|| Verdict {
        outcome: Outcome::CannotRun,
        entry: None,
        problems: vec![Problem::UnknownMachine {
            machine: elf.machine,
            class: elf.class,
            endian: elf.endian,
        }],
        note: None,
    });
    if let (Some(loader), Some(false)) = (&elf.interpreter, facts.loader_present) {
        v.problems.push(Problem::LoaderMissing {
            loader: loader.clone(),
            root: node.root.clone(),
        });
    }
    if let Some(needed) = elf.glibc_needed {
        match node.libc_for(elf) {
            None => v.problems.push(Problem::LibcMissing {
                needed,
                root: node.root.clone(),
            }),
            Some(l) if l.version < needed => v.problems.push(Problem::GlibcTooOld {
                needed,
                available: l.version,
                libc: l.path.clone(),
                root: node.root.clone(),
            }),
            Some(_) => {}
        }
    }
    let libraries: Vec<Problem> = facts
        .libraries
        .iter()
        .filter(|p| !said_already(p, &v.problems))
        .cloned()
        .collect();
    v.problems.extend(libraries);
    exec_bit(v, facts).finish()
}

/// The root-wide glibc problems (no libc.so.6 for the CPU, glibc too old, no loader)
/// already cover the same finding from the library resolution; say it once.
fn said_already(p: &Problem, problems: &[Problem]) -> bool {
    let is_loader = |library: &str| {
        problems.iter().any(|q| {
            matches!(q, Problem::LoaderMissing { loader, .. } if loader.rsplit('/').next() == Some(library))
        })
    };
    let libc_missing = problems
        .iter()
        .any(|q| matches!(q, Problem::LibcMissing { .. }));
    let too_old = problems
        .iter()
        .any(|q| matches!(q, Problem::GlibcTooOld { .. }));
    match p {
        Problem::LibraryMissing { library, .. } => {
            (libc_missing && library == "libc.so.6") || is_loader(library)
        }
        Problem::VersionMissing { version, .. } => too_old && version.starts_with("GLIBC_2"),
        _ => false,
    }
}

fn script_verdict(s: &Shebang, node: &Node, facts: &Facts) -> Verdict {
    // An entry matching `#!` (rare, but binfmt_misc is asked first) takes the file.
    if let Some(v) = handler(None, false, node, facts).filter(|v| v.entry.is_some()) {
        return exec_bit(v, facts).finish();
    }
    let problem = |p| Verdict::broken(p);
    let v = match &facts.script {
        None | Some(ScriptTarget::Missing) => problem(Problem::InterpreterMissing {
            interpreter: s.interpreter.clone(),
            root: node.root.clone(),
        }),
        Some(ScriptTarget::EnvCommandMissing { command }) => problem(Problem::EnvCommandMissing {
            command: command.clone(),
            root: node.root.clone(),
        }),
        Some(ScriptTarget::Found(inner)) if inner.runs() => Verdict {
            problems: vec![],
            ..(**inner).clone()
        },
        Some(ScriptTarget::Found(inner)) => problem(Problem::InterpreterCannotRun {
            interpreter: s.interpreter.clone(),
            problems: match inner.outcome {
                Outcome::NotExecutable => vec![Problem::BadFile {
                    error: format!(
                        "not an executable ({})",
                        inner.note.as_deref().unwrap_or("unknown")
                    ),
                }],
                _ => inner.problems.clone(),
            },
        }),
    };
    exec_bit(v, facts).finish()
}

/// Who executes a file: the first enabled matching entry (binfmt_misc goes before the
/// native loader), else the CPU if `native`. None when `arch` is unknown and nothing matches.
fn handler(arch: Option<&Arch>, native: bool, node: &Node, facts: &Facts) -> Option<Verdict> {
    let run = |outcome, entry, problems| Verdict {
        outcome,
        entry,
        problems,
        note: None,
    };
    let arch_name = arch.map(|a| a.qemu.to_string());
    let entries = match &node.binfmt {
        Binfmt::Entries { path, entries } => (path, entries),
        Binfmt::Unavailable { .. } | Binfmt::Disabled { .. } if native => {
            return Some(run(Outcome::Native, None, vec![]))
        }
        Binfmt::Unavailable { reason } => {
            return arch_name.map(|arch| {
                let reason = reason.clone();
                run(
                    Outcome::CannotRun,
                    None,
                    vec![Problem::BinfmtUnavailable { arch, reason }],
                )
            })
        }
        Binfmt::Disabled { path } => {
            return arch_name.map(|arch| {
                let binfmt_misc = path.clone();
                run(
                    Outcome::CannotRun,
                    None,
                    vec![Problem::BinfmtDisabled { arch, binfmt_misc }],
                )
            })
        }
    };
    let (path, entries) = entries;
    let matching: Vec<&NodeEntry> = entries
        .iter()
        .filter(|e| matches(&e.entry, facts))
        .collect();
    let mut enabled = matching.iter().filter(|e| e.entry.enabled);
    if let Some(first) = enabled.next() {
        let e = &first.entry;
        let mut problems = vec![];
        if !e.flags.fix_binary && !first.interpreter_in_root {
            problems.push(Problem::EntryInterpreterMissing {
                entry: e.name.clone(),
                interpreter: e.interpreter.clone(),
                root: node.root.clone(),
            });
        }
        let used = EntryUse {
            name: e.name.clone(),
            flags: e.flags.to_string(),
            interpreter: e.interpreter.clone(),
            qemu_version: None,
            hijacks_native: native,
            also_matching: enabled.map(|o| o.entry.name.clone()).collect(),
        };
        return Some(run(Outcome::Emulated, Some(used), problems));
    }
    if native {
        return Some(run(Outcome::Native, None, vec![]));
    }
    let disabled = matching.iter().map(|e| e.entry.name.clone()).collect();
    arch_name.map(|arch| {
        let binfmt_misc = path.clone();
        let p = Problem::NoEmulator {
            arch,
            binfmt_misc,
            disabled,
        };
        run(Outcome::CannotRun, None, vec![p])
    })
}

/// The kernel's test: magic under mask at the offset, or the file name's extension.
fn matches(e: &Entry, facts: &Facts) -> bool {
    match &e.matcher {
        Matcher::Magic { .. } => e.matches_header(&facts.header),
        Matcher::Extension(ext) => facts
            .file_name
            .rsplit_once('.')
            .is_some_and(|(_, x)| x == ext),
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
