//! The checks themselves: ELF facts from bytes (pure), the trust rule on an open handle,
//! hashing.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};
use sha2::{Digest, Sha256};

use super::{InterpError, InterpreterInfo};
use crate::arch::{self, Arch};
use crate::trust::{self, TrustError, TrustedFile};

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

/// Open `path` under the trust rule (src/trust.rs: the file and every directory above it
/// owned by root and not writable by others, walked on open handles) and check the open
/// file is executable by its owner. Everything after works on this handle, never on the
/// path again.
pub fn open_checked(path: &Path) -> Result<TrustedFile, InterpError> {
    let tf = trust::open_file(path).map_err(from_trust)?;
    if tf.stat.st_mode & 0o100 == 0 {
        return Err(InterpError::Unsafe {
            path: tf.path,
            what: "it is not executable by its owner".into(),
        });
    }
    Ok(tf)
}

/// The trust rule's refusal as an interpreter error (same path, same words).
pub(crate) fn from_trust(e: TrustError) -> InterpError {
    match e {
        TrustError::Unsafe { path, what } => InterpError::Unsafe { path, what },
        TrustError::Io { path, what } => InterpError::Io { path, what },
    }
}

/// The ownership and mode checks alone (on every component of the path). Returns the
/// resolved path.
pub fn check_permissions(path: &Path) -> Result<PathBuf, InterpError> {
    open_checked(path).map(|tf| tf.path)
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    sha256_read(&File::open(path)?)
}

/// sha256 of an open file from its start (positional reads: the offset stays put).
pub fn sha256_read(f: &File) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read_at(&mut buf, n)?;
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

/// Every check but the hash, on one open handle: the trust rule, then an ELF for the
/// host, static, judged from the first 64 KiB (enough for the program headers).
pub fn check_open(path: &Path, host: &Arch) -> Result<TrustedFile, InterpError> {
    let tf = open_checked(path)?;
    let mut head = Vec::with_capacity(4096);
    (&tf.file)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .and_then(|_| (&tf.file).rewind())
        .map_err(|e| InterpError::Io {
            path: tf.path.clone(),
            what: format!("cannot read: {e}"),
        })?;
    check_elf(&tf.path, &head, host)?;
    Ok(tf)
}

/// As `check_open`, returning the resolved path (for files that stay where they are:
/// the cache's own objects).
pub fn check_file(path: &Path, host: &Arch) -> Result<PathBuf, InterpError> {
    check_open(path, host).map(|tf| tf.path)
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
    let tf = check_open(path, host)?;
    let (sha256, size) = sums
        .sha256_open(&tf.file, &tf.path)
        .map_err(|e| InterpError::Io {
            path: tf.path.clone(),
            what: format!("cannot read: {e}"),
        })?;
    Ok(InterpreterInfo {
        path: tf.path,
        sha256,
        size,
    })
}
