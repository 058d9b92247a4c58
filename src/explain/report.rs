//! Output: a short paragraph per file for people, or the JSON document described in the
//! module docs of `explain`. Both stream: a tree of 100,000 files never sits in memory.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::fs::Explained;
use super::verdict::{Binfmt, Node, Outcome, Verdict};
use super::{ElfInfo, FileInfo};

/// Writes explained files as they come and counts outcomes for the exit status.
pub struct Reporter<W: Write> {
    out: W,
    json: bool,
    files: usize,
    runnable: usize,
    cannot_run: usize,
    not_executable: usize,
    failed: bool,
    /// `explain --image`: the image section, written with the summary.
    image: Option<Value>,
}

impl<W: Write> Reporter<W> {
    /// Start the report; for JSON, this writes the node description.
    pub fn new(mut out: W, json: bool, host: &str, node: &Node) -> io::Result<Reporter<W>> {
        if json {
            write!(
                out,
                "{{\"schema\":1,\"node\":{},\"files\":[",
                node_json(host, node)
            )?;
        }
        Ok(Reporter {
            out,
            json,
            files: 0,
            runnable: 0,
            cannot_run: 0,
            not_executable: 0,
            failed: false,
            image: None,
        })
    }

    /// Report one file. `direct` is true for a path named on the command line: a
    /// non-executable named directly counts as a failure, one found by --recursive does not.
    pub fn file(&mut self, x: &Explained, direct: bool) -> io::Result<()> {
        match x.verdict.outcome {
            Outcome::Native | Outcome::Emulated => self.runnable += 1,
            Outcome::CannotRun => {
                self.cannot_run += 1;
                self.failed = true;
            }
            Outcome::NotExecutable => {
                self.not_executable += 1;
                self.failed |= direct;
            }
        }
        if self.json {
            let sep = if self.files == 0 { "" } else { "," };
            write!(self.out, "{sep}{}", file_json(x))?;
        } else {
            write_human(&mut self.out, x)?;
        }
        self.files += 1;
        Ok(())
    }

    /// Report an image (before its entrypoint's file): its platforms and its command.
    pub fn image(&mut self, r: &super::container::ImageReport) -> io::Result<()> {
        self.failed |= !r.runs();
        if self.json {
            self.image = Some(r.json());
            Ok(())
        } else {
            write!(self.out, "{}", r.human())
        }
    }

    /// Finish the report; true when every file counted can run.
    pub fn finish(mut self) -> io::Result<bool> {
        let summary = json!({
            "files": self.files, "runnable": self.runnable,
            "cannot_run": self.cannot_run, "not_executable": self.not_executable,
        });
        if self.json {
            if let Some(image) = &self.image {
                write!(self.out, "],\"image\":{image}")?;
            } else {
                write!(self.out, "]")?;
            }
            writeln!(self.out, ",\"summary\":{summary}}}")?;
        } else if self.files > 1 {
            writeln!(
                self.out,
                "{} files: {} can run, {} cannot run, {} not executable",
                self.files, self.runnable, self.cannot_run, self.not_executable
            )?;
        }
        self.out.flush()?;
        Ok(!self.failed)
    }
}

/// One line saying what happens when this file is executed here.
pub fn summary(v: &Verdict) -> String {
    match v.outcome {
        Outcome::Native => "runs natively".into(),
        Outcome::Emulated => match &v.entry {
            Some(e) => {
                let flags = if e.flags.is_empty() { "none" } else { &e.flags };
                let qemu = match &e.qemu_version {
                    Some(v) => format!("qemu {v}"),
                    None => "qemu version unknown".into(),
                };
                let hijack = match e.hijacks_native {
                    true => "; it hijacks a format this CPU runs natively",
                    false => "",
                };
                format!(
                    "runs emulated through binfmt_misc entry {} (flags {flags}, interpreter {}, {qemu}){hijack}",
                    e.name,
                    e.interpreter.display()
                )
            }
            None => "runs emulated".into(),
        },
        Outcome::CannotRun => match v.problems.as_slice() {
            [] => "cannot run".into(),
            [first] => format!("cannot run: {first}"),
            [first, rest @ ..] => format!("cannot run: {first} (and {} more)", rest.len()),
        },
        Outcome::NotExecutable => {
            format!(
                "not an executable: {}",
                v.note.as_deref().unwrap_or("unknown")
            )
        }
    }
}

fn write_human(out: &mut impl Write, x: &Explained) -> io::Result<()> {
    let v = &x.verdict;
    match v.outcome {
        Outcome::CannotRun => writeln!(out, "{}: cannot run", x.path.display())?,
        _ => writeln!(out, "{}: {}", x.path.display(), summary(v))?,
    }
    match &x.info {
        Ok(FileInfo::Elf(e)) => writeln!(out, "    {}", describe_elf(e))?,
        Ok(FileInfo::Script(s)) => writeln!(
            out,
            "    script for #!{}{}",
            s.interpreter,
            s.argument
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default()
        )?,
        Ok(FileInfo::Other(_)) | Err(_) => {}
    }
    if v.outcome == Outcome::CannotRun {
        if let Some(e) = &v.entry {
            writeln!(
                out,
                "    would be emulated through binfmt_misc entry {}",
                e.name
            )?;
        }
    }
    let also = match v.outcome {
        Outcome::NotExecutable => "even with an x bit: ",
        _ => "",
    };
    for p in &v.problems {
        writeln!(out, "    - {also}{p}")?;
    }
    Ok(())
}

/// `ELF 64-bit little-endian aarch64 (e_machine 183), SYSV, executable, dynamic (/lib/ld...), needs GLIBC_2.34`
pub fn describe_elf(e: &ElfInfo) -> String {
    let bits = match e.class {
        crate::arch::ElfClass::Elf32 => 32,
        crate::arch::ElfClass::Elf64 => 64,
    };
    let endian = match e.endian {
        crate::arch::Endian::Little => "little-endian",
        crate::arch::Endian::Big => "big-endian",
    };
    let arch = e.arch.map_or("unknown CPU", |a| a.qemu);
    let kind = serde_json::to_value(e.kind).unwrap_or(Value::Null);
    let link = match &e.interpreter {
        Some(i) => format!("dynamic (loader {i})"),
        None => "static".into(),
    };
    let mut s = format!(
        "ELF {bits}-bit {endian} {arch} (e_machine {}), {}, {}, {link}",
        e.machine,
        e.abi,
        kind.as_str().unwrap_or("?")
    );
    if let Some(g) = e.glibc_needed {
        s.push_str(&format!(", needs glibc {g}"));
    }
    if let Some(g) = e.glibc_defined {
        s.push_str(&format!(", defines glibc {g}"));
    }
    s
}

fn node_json(host: &str, node: &Node) -> Value {
    let (state, path, reason, entries) = match &node.binfmt {
        Binfmt::Unavailable { reason } => ("unavailable", None, Some(reason.clone()), vec![]),
        Binfmt::Disabled { path } => ("disabled", Some(path.clone()), None, vec![]),
        Binfmt::Entries { path, entries } => (
            "available",
            Some(path.clone()),
            None,
            entries.iter().map(|e| e.entry.name.clone()).collect(),
        ),
    };
    json!({
        "host": host,
        "native": node.native.iter().map(|a| a.qemu).collect::<Vec<_>>(),
        "root": node.root,
        "binfmt_misc": {"path": path, "state": state, "reason": reason, "entries": entries},
        "glibc": node.libcs,
    })
}

fn file_json(x: &Explained) -> Value {
    let mut o =
        json!({ "path": x.path, "verdict": verdict_json(&x.verdict), "libraries": x.libraries });
    let (kind, key, value) = match &x.info {
        Ok(FileInfo::Elf(e)) => ("elf", "elf", json!(e)),
        Ok(FileInfo::Script(s)) => ("script", "script", json!(s)),
        Ok(FileInfo::Other(what)) => ("other", "other", json!(what)),
        Err(p) => ("error", "error", json!(p.to_string())),
    };
    o["type"] = json!(kind);
    o[key] = value;
    o
}

pub(crate) fn verdict_json(v: &Verdict) -> Value {
    let problems: Vec<Value> = v.problems.iter().map(problem_json).collect();
    json!({
        "outcome": v.outcome,
        "summary": summary(v),
        "entry": v.entry,
        "problems": problems,
        "note": v.note,
    })
}

/// A problem's fields plus its `message`, also for the problems nested in
/// `interpreter-cannot-run`.
pub(crate) fn problem_json(p: &super::Problem) -> Value {
    let mut j = json!(p);
    j["message"] = json!(p.to_string());
    if let super::Problem::InterpreterCannotRun { problems, .. } = p {
        j["problems"] = problems.iter().map(problem_json).collect();
    }
    j
}
