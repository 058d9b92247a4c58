//! The verification `provision` applies before committing an interpreter.
//!
//! `core_check` is the call site for the core's interpreter checks; until
//! `interp::check_interpreter` is on main it carries the same rules itself.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};

use crate::arch::{self, Arch};

/// ELF for `host`, no PT_INTERP, root-owned and not group/other-writable (and its directory).
pub fn core_check(path: &Path, host: &Arch) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: cannot stat: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dmeta = fs::metadata(dir).map_err(|e| format!("{}: cannot stat: {e}", dir.display()))?;
    for (what, m) in [(path, &meta), (dir, &dmeta)] {
        if m.uid() != 0 || m.mode() & 0o022 != 0 {
            return Err(format!(
                "{} must be owned by root and writable by root alone (uid {}, mode {:o})",
                what.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
    }
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut head))
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if !head.starts_with(b"\x7fELF") {
        return Err(format!("{} is not an ELF executable", path.display()));
    }
    if !host.matches(&head) {
        let found = arch::from_header(&head).map_or("an unknown CPU", |a| a.qemu);
        return Err(format!(
            "{} is built for {found}, but this host is {}; use the build for {} hosts",
            path.display(),
            host.qemu,
            host.qemu
        ));
    }
    let loader = match head[4] {
        1 => pt_interp::<elf::FileHeader32<Endianness>>(&head),
        _ => pt_interp::<elf::FileHeader64<Endianness>>(&head),
    }
    .map_err(|e| format!("{}: bad ELF: {e}", path.display()))?;
    match loader {
        Some(l) => Err(format!(
            "{} is dynamically linked (needs {l}); under the F flag it must be static",
            path.display()
        )),
        None => Ok(()),
    }
}

fn pt_interp<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::Result<Option<String>> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    for ph in header.program_headers(endian, data)? {
        if ph.p_type(endian) == elf::PT_INTERP {
            let raw = ph.interpreter(endian, data)?.unwrap_or_default();
            return Ok(Some(String::from_utf8_lossy(raw).into_owned()));
        }
    }
    Ok(None)
}
