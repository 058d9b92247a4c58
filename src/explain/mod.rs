//! `binfmtd explain`: why a file will or will not run on this node, and what would fix it.
//!
//! Pure core: [`inspect`] turns a file's bytes into [`FileInfo`] (ELF facts through the
//! `object` crate, with [`dynamic`]'s DT_NEEDED/RPATH/RUNPATH and version tables, or a `#!`
//! line), and [`verdict::verdict`] judges it against a [`verdict::Node`]; [`ldcache`] parses
//! ld.so.cache and ld.so.conf, [`versions`] checks symbol versions, [`image`] parses image
//! layouts. The edge ([`fs`]) reads files with bounded reads, resolves paths inside a root
//! the way a chroot would, finds the root's libc.so.6 and reads the binfmt_misc entries;
//! [`resolve`] finds every library as the root's loader would; [`source`] reads image
//! files within bounds, [`layers`] merges image layers, [`materialize`] writes what a
//! verdict reads of them into a [`scratch`] directory within caps (large ELF files only
//! in the ranges [`elf_ranges`] names), and [`container`] judges an image; [`report`]
//! prints the result.
//!
//! # JSON schema (`binfmtd explain --json`), version 1
//!
//! One JSON document on stdout:
//!
//! ```text
//! {
//!   "schema": 1,
//!   "node": {
//!     "host": "x86_64",                    // arch-table (qemu) name of this CPU
//!     "native": ["x86_64", "i386"],        // arches executed without emulation
//!     "root": "/",                         // root files are judged against (--root)
//!     "binfmt_misc": {"path": "...", "state": "available" | "disabled" | "unavailable",
//!                     "reason": null | "...", "entries": ["qemu-aarch64", ...]},
//!     "glibc": [{"path": "/usr/lib/x86_64-linux-gnu/libc.so.6", "machine": 62,
//!                "class": "elf64", "endian": "little", "version": "2.36"}]
//!   },
//!   "files": [{
//!     "path": "bin/busybox",
//!     "type": "elf" | "script" | "other" | "error",
//!     "elf": {                              // only when type = elf
//!       "arch": "aarch64" | null, "machine": 183, "class": "elf32" | "elf64",
//!       "endian": "little" | "big", "abi": "SYSV",
//!       "type": "executable" | "pie-executable" | "static-pie" | "shared-library"
//!             | "relocatable" | "core" | "unknown",
//!       "linkage": "static" | "dynamic", "interpreter": "/lib/ld-linux-aarch64.so.1" | null,
//!       "glibc_needed": "2.34" | null, "glibc_defined": "2.36" | null,
//!       "needed": ["libc.so.6"], "soname": null | "...",      // DT_NEEDED, DT_SONAME
//!       "rpath": ["$ORIGIN/../lib"], "runpath": [...]          // as written in the file
//!     },
//!     "libraries": [{"name": "libz.so.1", "path": "/lib/x86_64-linux-gnu/libz.so.1",
//!                    "needed_by": "/usr/bin/pigz"}],          // what the loader maps
//!     "script": {"interpreter": "/bin/sh", "argument": null | "-e"},   // type = script
//!     "other": "empty file",                                          // type = other
//!     "error": "truncated ELF: ...",                                  // type = error
//!     "verdict": {
//!       "outcome": "native" | "emulated" | "cannot-run" | "not-executable",
//!       "summary": "runs emulated through binfmt_misc entry qemu-aarch64 (...)",
//!       "entry": null | {"name", "flags": "POCF", "interpreter", "qemu_version": null | "...",
//!                        "hijacks_native": bool, "also_matching": [names]},
//!       "problems": [{"code": "no-emulator" | "binfmt-unavailable" | "binfmt-disabled"
//!                     | "unknown-machine" | "entry-interpreter-missing" | "loader-missing"
//!                     | "libc-missing" | "glibc-too-old" | "interpreter-missing"
//!                     | "env-command-missing" | "interpreter-cannot-run" | "bad-file"
//!                     | "unreadable"
//!                     | "library-missing"   // + library, needed_by, root, searched[], skipped[], hint
//!                     | "version-missing"   // + version, library, path, needed_by, available, root
//!                     | "versions-from-unloaded"   // + library, needed_by
//!                     | "unknown-platform" | "no-matching-platform" | "no-command"
//!                     | "command-not-found",                        // --image only
//!                     "message": "...", ...fields of that code}],
//!       "note": null | "ELF shared-library, not a program" | "no execute permission ..."
//!     }
//!   }],
//!   "image": {                              // only with --image
//!     "path": "img.tar", "format": "oci-layout" | "oci-archive" | "docker-archive",
//!     "platforms": [{"platform": "linux/arm64", "arch": "aarch64" | null, "chosen": false,
//!                    "verdict": {...as above, for a program of that CPU}}],
//!     "chosen": "linux/amd64" | null,       // pulled by this node, or --platform
//!     "command": ["/usr/bin/pigz", "--version"],   // Entrypoint + Cmd; its file is files[0]
//!     "problems": [...],                    // the command cannot even be located
//!     "runs": true,
//!     "limited": [{"path": "/usr/bin/big", "size": 41943040,   // files not copied whole:
//!                  "read": "ranges" | "nothing"}]             // see README, explain --image
//!   },
//!   "summary": {"files": 3, "runnable": 2, "cannot_run": 1, "not_executable": 0}
//! }
//! ```
//!
//! Fields are only ever added within a schema version.

pub mod container;
pub mod dynamic;
pub mod elf;
pub mod elf_ranges;
pub mod fs;
pub mod glibc;
pub mod image;
pub mod layers;
pub mod ldcache;
pub mod ldconf;
pub mod ldpaths;
pub mod materialize;
pub mod problem;
pub mod report;
pub mod resolve;
pub mod scratch;
pub mod script;
pub mod source;
pub mod verdict;
pub mod versions;

use object::ReadRef;

pub use elf::{ElfInfo, ElfKind, Linkage};
pub use glibc::GlibcVersion;
pub use script::Shebang;
pub use verdict::{verdict, Binfmt, Facts, Libc, Node, Outcome, Problem, Verdict};

/// What a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileInfo {
    Elf(ElfInfo),
    Script(Shebang),
    /// Not ELF, not a script: a short description (`empty file`, `data`).
    Other(String),
}

/// Why a file could not be inspected. Per file: never fatal for a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("truncated ELF: its {what} end at byte {needed} but the file has only {len} bytes")]
    Truncated { what: String, needed: u64, len: u64 },
    #[error("malformed ELF: {what}")]
    Malformed { what: String },
    #[error("bad #! line: {what}")]
    BadScript { what: String },
}

impl ExplainError {
    fn truncated(what: &str, needed: u64, len: u64) -> ExplainError {
        ExplainError::Truncated {
            what: what.to_string(),
            needed,
            len,
        }
    }

    fn malformed(what: impl Into<String>) -> ExplainError {
        ExplainError::Malformed { what: what.into() }
    }

    fn object(e: object::Error) -> ExplainError {
        ExplainError::malformed(e.to_string())
    }
}

/// How many bytes of a file `inspect` looks at before deciding what it is; also what the
/// kernel compares binfmt_misc magics against (BINPRM_BUF_SIZE).
pub const HEAD_LEN: usize = script::SHEBANG_MAX;

/// Inspect a file given as any `object::ReadRef`: a byte slice, or a `ReadCache` over an
/// open file (then only the parts needed are read).
pub fn inspect<'d, R: ReadRef<'d>>(data: R) -> Result<FileInfo, ExplainError> {
    let len = data
        .len()
        .map_err(|()| ExplainError::malformed("file length unknown"))?;
    let head = data
        .read_bytes_at(0, len.min(HEAD_LEN as u64))
        .map_err(|()| ExplainError::malformed("cannot read the first bytes"))?;
    if head.starts_with(b"\x7fELF") {
        elf::inspect(head, data).map(FileInfo::Elf)
    } else if head.starts_with(b"#!") {
        script::parse(head).map(FileInfo::Script)
    } else {
        Ok(FileInfo::Other(describe_other(head)))
    }
}

fn describe_other(head: &[u8]) -> String {
    let text = head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80);
    match head {
        [] => "empty file",
        _ if text => "text without a #! line",
        _ => "data",
    }
    .to_string()
}
