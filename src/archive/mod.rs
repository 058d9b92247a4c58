//! Pull one member out of a tar (plain, .gz, .xz, .zst) or a Debian package, streaming:
//! nothing but the member is written anywhere, and reading stops once it is found.
//! Every decoder is pure Rust, so static musl builds need no C libraries for this.

use std::io::{self, BufRead, BufReader, Read, Seek, Write};

use crate::config::ArchiveFormat;

mod zstd;

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
    #[error("member {member:?} is {size} bytes, over the {max}-byte limit (download.max-bytes); nothing was kept. Hint: raise max-bytes if the archive is right")]
    TooLarge { member: String, size: u64, max: u64 },
    #[error("member {member:?} is not an ELF executable (it starts with {head}); nothing was kept. Hint: point the source's member at the qemu binary")]
    NotElf { member: String, head: String },
    #[error("member {member:?} ends after {got} of its {size} bytes: the archive is truncated. Hint: fetch it again, or fix the mirror")]
    Truncated { member: String, got: u64, size: u64 },
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

/// How many hard links are followed from one wanted member (a link to a link ...).
const MAX_HARD_LINK_HOPS: usize = 4;
/// ELF's magic, which every member binfmtd extracts (a qemu binary) starts with.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Copy `member` of `archive` into `out`; returns its size. At most `max_bytes` are
/// written, and only after the member's first bytes show an ELF.
pub fn extract_member(
    format: ArchiveFormat,
    mut archive: impl Read + Seek,
    member: &str,
    out: &mut dyn Write,
    max_bytes: u64,
) -> Result<u64, ArchiveError> {
    let mut similar = Vec::new();
    let found = resolve(
        format,
        &mut archive,
        &[member],
        &mut [out],
        max_bytes,
        &mut similar,
    )?;
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
    mut archive: impl Read + Seek,
    members: &[&str],
    outs: &mut [W],
    max_bytes: u64,
) -> Result<Vec<Found>, ArchiveError> {
    assert_eq!(members.len(), outs.len(), "one writer per member");
    resolve(
        format,
        &mut archive,
        members,
        outs,
        max_bytes,
        &mut Vec::new(),
    )
}

/// Scan passes until every member is copied, missing or a symlink: a hard link names an
/// earlier member of the same archive, which the pass has already streamed by, so each
/// hop costs one more pass for the members still pending.
fn resolve<R: Read + Seek, W: Write>(
    format: ArchiveFormat,
    archive: &mut R,
    members: &[&str],
    outs: &mut [W],
    max_bytes: u64,
    similar: &mut Vec<String>,
) -> Result<Vec<Found>, ArchiveError> {
    let mut want: Vec<Option<String>> = members.iter().map(|m| Some(normalize(m).into())).collect();
    let mut found = vec![Found::No; members.len()];
    for pass in 0..=MAX_HARD_LINK_HOPS {
        if pass > 0 {
            archive.rewind().map_err(ArchiveError::Read)?;
            similar.clear();
        }
        let scanned = with_tar(format, &mut *archive, |tar| {
            scan(tar, &want, outs, similar, max_bytes)
        })?;
        for (i, s) in scanned.into_iter().enumerate() {
            match s {
                _ if want[i].is_none() => {}
                Scanned::Hard(target) => want[i] = Some(normalize(&target).into()),
                Scanned::Done(f) => (found[i], want[i]) = (f, None),
            }
        }
        if want.iter().all(Option::is_none) {
            return Ok(found);
        }
    }
    let i = want.iter().position(Option::is_some).unwrap_or(0);
    Err(ArchiveError::Link {
        member: members[i].into(),
        target: want[i].clone().unwrap_or_default(),
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
        Compression::Zstd => Box::new(zstd::Frames::new(buf)),
    };
    f(&mut reader)
}

/// What one pass found for one wanted member.
enum Scanned {
    Done(Found),
    /// A hard link to this earlier member: another pass copies that one.
    Hard(String),
}

/// Walk the tar once; stop as soon as every wanted member (`None`: already settled) is
/// settled. Names near the first wanted one are collected into `similar`.
fn scan<W: Write>(
    reader: &mut dyn Read,
    wanted: &[Option<String>],
    outs: &mut [W],
    similar: &mut Vec<String>,
    max_bytes: u64,
) -> Result<Vec<Scanned>, ArchiveError> {
    let mut found: Vec<Option<Scanned>> = wanted.iter().map(|_| None).collect();
    let mut left = wanted.iter().filter(|w| w.is_some()).count();
    let base = wanted
        .iter()
        .flatten()
        .next()
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
        let Some(i) = (0..wanted.len())
            .position(|i| wanted[i].as_deref() == Some(name) && found[i].is_none())
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
        let target = || {
            let t = entry.link_name().ok().flatten();
            t.map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        found[i] = Some(if kind.is_hard_link() {
            Scanned::Hard(target())
        } else if kind.is_symlink() {
            Scanned::Done(Found::Link(target()))
        } else {
            let size = entry.size();
            let n = copy(&mut entry, &mut outs[i], &path, size, max_bytes)?;
            Scanned::Done(Found::Copied(n))
        });
        left -= 1;
    }
    let no = || Scanned::Done(Found::No);
    Ok(found.into_iter().map(|f| f.unwrap_or_else(no)).collect())
}

/// Copy exactly the member's `size` bytes, refusing (before writing anything) one over
/// `max` or one whose first bytes are not ELF, and one that ends early. Read errors (a
/// corrupt archive) stay apart from write errors (a full disk).
fn copy(
    from: &mut dyn Read,
    to: &mut dyn Write,
    member: &str,
    size: u64,
    max: u64,
) -> Result<u64, ArchiveError> {
    let member = member.to_string();
    if size > max {
        return Err(ArchiveError::TooLarge { member, size, max });
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    let mut checked = false;
    loop {
        let k = match from.read(&mut buf[if checked { 0 } else { n as usize }..]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Read(e)),
        };
        if checked {
            to.write_all(&buf[..k]).map_err(ArchiveError::Write)?;
            n += k as u64;
            continue;
        }
        n += k as u64;
        if n < ELF_MAGIC.len() as u64 && n < size {
            continue; // the head is not all here yet
        }
        let head = &buf[..n as usize];
        if !head.starts_with(ELF_MAGIC) {
            let head = format!("{:02x?}", &head[..head.len().min(ELF_MAGIC.len())]);
            return Err(ArchiveError::NotElf { member, head });
        }
        to.write_all(head).map_err(ArchiveError::Write)?;
        checked = true;
    }
    if n != size {
        return Err(ArchiveError::Truncated {
            member,
            got: n,
            size,
        });
    }
    if !checked {
        // Shorter than the magic itself.
        let head = format!("{:02x?}", &buf[..n as usize]);
        return Err(ArchiveError::NotElf { member, head });
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
