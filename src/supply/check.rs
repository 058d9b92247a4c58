//! The verification `provision` applies before committing an interpreter: the core's
//! interpreter checks (`interp::check_file`), minus the sha256 that the supply chain has
//! already computed while the bytes streamed into the cache.

use std::path::Path;

use crate::arch::Arch;

/// Root-owned and writable by root alone (file and directory), an ELF for `host`, static.
pub fn core_check(path: &Path, host: &Arch) -> Result<(), String> {
    crate::interp::check_file(path, host)
        .map(drop)
        .map_err(|e| e.to_string())
}
