//! The checks themselves: ELF facts from bytes (pure), permissions from metadata, hashing.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};
use sha2::{Digest, Sha256};

use super::{InterpError, InterpreterInfo};
use crate::arch::{self, Arch};

/// Check an ELF image (its first bytes suffice if they hold the program headers): built
/// for `host`, and with no PT_INTERP.
pub fn check_elf(path: &Path, data: &[u8], host: &Arch) -> Result<(), InterpError> {
    let not_elf = |what: String| InterpError::NotElf {
        path: path.to_path_buf(),
        what,
    };
    if data.len() < 20 || &data[..4] != b"\x7fELF" {
        return Err(not_elf("no ELF magic".into()));
    }
    let found = arch::from_header(data)
        .map(|a| a.qemu.to_string())
        .unwrap_or_else(|| {
            format!(
                "unknown (e_machine {:#x}, ELF class {}, data {})",
                u16::from_le_bytes([data[18], data[19]]),
                data[4],
                data[5]
            )
        });
    if !host.matches(data) {
        return Err(InterpError::WrongCpu {
            path: path.to_path_buf(),
            found,
            host: host.qemu.into(),
        });
    }
    let interp = match data[4] {
        1 => pt_interp::<elf::FileHeader32<Endianness>>(data),
        _ => pt_interp::<elf::FileHeader64<Endianness>>(data),
    }
    .map_err(|e| not_elf(e.to_string()))?;
    match interp {
        Some(loader) => Err(InterpError::Dynamic {
            path: path.to_path_buf(),
            loader,
        }),
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

/// Owned by root and writable by nobody else: the file, and the directory holding it.
pub fn check_permissions(path: &Path) -> Result<PathBuf, InterpError> {
    let io = |what: String| InterpError::Io {
        path: path.to_path_buf(),
        what,
    };
    let real = fs::canonicalize(path).map_err(|e| io(format!("cannot resolve: {e}")))?;
    let meta = fs::metadata(&real).map_err(|e| io(format!("cannot stat: {e}")))?;
    let unsafe_ = |what: String| InterpError::Unsafe {
        path: real.clone(),
        what,
    };
    if !meta.is_file() {
        return Err(io("not a regular file".into()));
    }
    check_owner_mode(&meta, "it").map_err(unsafe_)?;
    if meta.mode() & 0o100 == 0 {
        return Err(unsafe_("it is not executable by its owner".into()));
    }
    let dir = real.parent().unwrap_or(Path::new("/"));
    let dmeta = fs::metadata(dir).map_err(|e| io(format!("cannot stat {}: {e}", dir.display())))?;
    check_owner_mode(&dmeta, &format!("its directory {}", dir.display())).map_err(unsafe_)?;
    Ok(real)
}

fn check_owner_mode(meta: &fs::Metadata, what: &str) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!("{what} is owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex(&h.finalize()), n))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every check but the hash: permissions (on the resolved path), then an ELF for the host,
/// static, judged from the first 64 KiB (enough for the program headers). Returns the
/// resolved path.
pub fn check_file(path: &Path, host: &Arch) -> Result<PathBuf, InterpError> {
    let real = check_permissions(path)?;
    let mut head = Vec::with_capacity(4096);
    File::open(&real)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| InterpError::Io {
            path: real.clone(),
            what: format!("cannot read: {e}"),
        })?;
    check_elf(&real, &head, host)?;
    Ok(real)
}

/// Every check, in order: permissions (on the resolved path), ELF for the host, static; then hash.
pub fn check_interpreter(path: &Path, host: &Arch) -> Result<InterpreterInfo, InterpError> {
    check_interpreter_with(path, host, &super::Sums::default())
}

/// As `check_interpreter`, taking the sha256 from `sums` when the file is unchanged.
pub fn check_interpreter_with(
    path: &Path,
    host: &Arch,
    sums: &super::Sums,
) -> Result<InterpreterInfo, InterpError> {
    let real = check_file(path, host)?;
    let (sha256, size) = sums.sha256(&real).map_err(|e| InterpError::Io {
        path: real.clone(),
        what: format!("cannot read: {e}"),
    })?;
    Ok(InterpreterInfo {
        path: real,
        sha256,
        size,
    })
}
