//! Pull one member out of a tar (plain, .gz, .xz, .zst) or a Debian package, streaming:
//! nothing but the member is written anywhere, and reading stops once it is found.
//! Every decoder is pure Rust, so static musl builds need no C libraries for this.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::config::ArchiveFormat;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("member {member:?} is not in the archive{}. Hint: list it (`tar tf`, or `dpkg-deb -c` for a .deb) and fix the source's member", near(.similar))]
    Missing {
        member: String,
        similar: Vec<String>,
    },
    #[error("member {member:?} is a link to {target:?}; set the source's member to {target:?}")]
    Link { member: String, target: String },
    #[error("the .deb has no data.tar member (found: {found}); is it a Debian binary package?")]
    NoDebData { found: String },
    #[error("reading the archive: {0}. Hint: the file may be truncated or not the format the source's kind says")]
    Read(io::Error),
    #[error("writing the member: {0}")]
    Write(io::Error),
}

fn near(similar: &[String]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        format!(" (similar names: {})", similar.join(", "))
    }
}

/// Compression, told from the first bytes rather than the file name (mirrors and
/// by-hash URLs have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// Pure: which decoder the stream starting with `head` needs.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `./usr/bin/x`, `usr/bin/x` and `/usr/bin/x` name the same member.
pub fn normalize(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

/// What a scan found for one wanted member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Not in the archive.
    No,
    /// Copied to its writer: this many bytes.
    Copied(u64),
    /// A symlink or hard link to this target; nothing was written.
    Link(String),
}

/// Copy `member` of `archive` into `out`; returns its size.
pub fn extract_member(
    format: ArchiveFormat,
    archive: impl Read,
    member: &str,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let mut similar = Vec::new();
    let found = with_tar(format, archive, |tar| {
        scan(tar, &[member], &mut [out], &mut similar)
    })?;
    match found.into_iter().next() {
        Some(Found::Copied(n)) => Ok(n),
        Some(Found::Link(target)) => Err(ArchiveError::Link {
            member: member.to_string(),
            target,
        }),
        _ => Err(ArchiveError::Missing {
            member: member.to_string(),
            similar,
        }),
    }
}

/// Copy every wanted member to its writer (`outs[i]` for `members[i]`) in ONE pass over
/// the archive: a .deb's data.tar.xz costs seconds to decode, once per pass.
pub fn extract_members<W: Write>(
    format: ArchiveFormat,
    archive: impl Read,
    members: &[&str],
    outs: &mut [W],
) -> Result<Vec<Found>, ArchiveError> {
    assert_eq!(members.len(), outs.len(), "one writer per member");
    with_tar(format, archive, |tar| {
        scan(tar, members, outs, &mut Vec::new())
    })
}

/// Run `f` on the uncompressed tar stream: the archive itself, or a .deb's data.tar.*.
fn with_tar<T>(
    format: ArchiveFormat,
    archive: impl Read,
    f: impl FnOnce(&mut dyn Read) -> Result<T, ArchiveError>,
) -> Result<T, ArchiveError> {
    match format {
        ArchiveFormat::Tar => decompressed(archive, f),
        ArchiveFormat::Deb => {
            let mut ar = ar::Archive::new(archive);
            let mut found = Vec::new();
            while let Some(entry) = ar.next_entry() {
                let entry = entry.map_err(ArchiveError::Read)?;
                let name = String::from_utf8_lossy(entry.header().identifier())
                    .trim_end_matches('/')
                    .to_string();
                if name.starts_with("data.tar") {
                    return decompressed(entry, f);
                }
                found.push(name);
            }
            Err(ArchiveError::NoDebData {
                found: found.join(", "),
            })
        }
    }
}

fn decompressed<T>(
    compressed: impl Read,
    f: impl FnOnce(&mut dyn Read) -> Result<T, ArchiveError>,
) -> Result<T, ArchiveError> {
    let mut buf = BufReader::with_capacity(1 << 16, compressed);
    let kind = sniff(buf.fill_buf().map_err(ArchiveError::Read)?);
    let mut reader: Box<dyn Read + '_> = match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(buf, true)),
        Compression::Zstd => {
            Box::new(ruzstd::decoding::StreamingDecoder::new(buf).map_err(|e| {
                ArchiveError::Read(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            })?)
        }
    };
    f(&mut reader)
}

/// Walk the tar once; stop as soon as every wanted member is settled. Names near the
/// first wanted one are collected into `similar` for the "missing" message.
fn scan<W: Write>(
    reader: &mut dyn Read,
    members: &[&str],
    outs: &mut [W],
    similar: &mut Vec<String>,
) -> Result<Vec<Found>, ArchiveError> {
    let wanted: Vec<&str> = members.iter().map(|m| normalize(m)).collect();
    let mut found = vec![Found::No; members.len()];
    let mut left = members.len();
    let base = wanted
        .first()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .unwrap_or("");
    let stem = base.split('-').next().unwrap_or(base);
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(ArchiveError::Read)? {
        if left == 0 {
            break;
        }
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let path = entry
            .path()
            .map_err(ArchiveError::Read)?
            .to_string_lossy()
            .into_owned();
        let name = normalize(&path);
        let Some(i) = wanted
            .iter()
            .zip(&found)
            .position(|(w, f)| *w == name && *f == Found::No)
        else {
            if similar.len() < 5
                && !stem.is_empty()
                && name.rsplit('/').next().is_some_and(|b| b.starts_with(stem))
            {
                similar.push(path.clone());
            }
            continue;
        };
        let kind = entry.header().entry_type();
        found[i] = if kind.is_symlink() || kind.is_hard_link() {
            Found::Link(
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        } else {
            Found::Copied(copy(&mut entry, &mut outs[i])?)
        };
        left -= 1;
    }
    Ok(found)
}

/// io::copy, but keeping read errors (a corrupt archive) apart from write errors (a full disk).
fn copy(from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, ArchiveError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = match from.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Read(e)),
        };
        to.write_all(&buf[..k]).map_err(ArchiveError::Write)?;
        n += k as u64;
    }
}

#[cfg(test)]
mod tests;
