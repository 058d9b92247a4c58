//! The verification `provision` applies before committing an interpreter: the core's
//! interpreter checks (`interp`), minus the sha256 that the supply chain has already
//! computed while the bytes streamed into the cache.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::arch::Arch;
use crate::interp;

/// Root-owned and writable by root alone (file and directory), an ELF for `host`, static.
pub fn core_check(path: &Path, host: &Arch) -> Result<(), String> {
    let real = interp::check_permissions(path).map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(4096);
    File::open(&real)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| format!("interpreter {}: cannot read: {e}", real.display()))?;
    interp::check_elf(&real, &head, host).map_err(|e| e.to_string())
}
