//! The files glibc's loader and ldconfig read to find libraries: /etc/ld.so.cache (the
//! `glibc-ld.so.cache1.1` format, alone or after the old `ld.so-1.7.0` one, and the old one
//! alone) and /etc/ld.so.conf with its `include` lines.
//!
//! At run time the loader reads only the cache: a directory listed in ld.so.conf but
//! missing from a stale cache is not searched. The conf parser is here to say so.
//! Pure over bytes and text; the fuzzer feeds both parsers arbitrary input.

use std::collections::BTreeSet;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Old header: magic[11] padded to 12, then nlibs (u32).
const OLD_HEADER: usize = 16;
/// Old entry: flags (i32), key, value (u32 string offsets).
const OLD_ENTRY: usize = 12;
/// New header: magic+version[20], nlibs, len_strings, flags (u8) + 3 padding,
/// extension_offset, unused[3].
const NEW_HEADER: usize = 48;
/// New entry: flags (i32), key, value, osversion (u32), hwcap (u64).
const NEW_ENTRY: usize = 24;
/// The new header's flags byte: which byte order the cache was written in.
const ENDIAN_LITTLE: u8 = 2;
const ENDIAN_BIG: u8 = 3;

/// One library the cache knows: the name DT_NEEDED uses and the path to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub name: String,
    pub path: String,
    /// ldconfig's flags (ELF type and the ABI bits: x86-64, aarch64, armhf...).
    pub flags: i32,
}

/// A parsed ld.so.cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdCache {
    pub entries: Vec<CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error(
        "not an ld.so.cache (neither {} nor {} at the start)",
        String::from_utf8_lossy(OLD_MAGIC),
        String::from_utf8_lossy(NEW_MAGIC)
    )]
    BadMagic,
    #[error("truncated: its {what} end at byte {needed} but the file has {len} bytes")]
    Truncated {
        what: &'static str,
        needed: usize,
        len: usize,
    },
}

impl LdCache {
    /// Paths the cache gives for `name`, in cache order.
    pub fn lookup<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.name == name)
            .map(|e| e.path.as_str())
    }

    /// The directories the cache holds libraries from.
    pub fn dirs(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter_map(|e| e.path.rsplit_once('/').map(|(d, _)| d.to_string()))
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Order {
    Little,
    Big,
}

fn u32_at(b: &[u8], off: usize, o: Order) -> Option<u32> {
    let bytes: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(match o {
        Order::Little => u32::from_le_bytes(bytes),
        Order::Big => u32::from_be_bytes(bytes),
    })
}

/// The NUL-terminated string at `base + off`.
fn string_at(b: &[u8], base: usize, off: u32) -> Option<String> {
    let start = base.checked_add(off as usize)?;
    let rest = b.get(start..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn truncated(what: &'static str, needed: usize, len: usize) -> CacheError {
    CacheError::Truncated { what, needed, len }
}

/// Parse an ld.so.cache. When both formats are present the new one is used, as the loader does.
pub fn parse_cache(b: &[u8]) -> Result<LdCache, CacheError> {
    if b.starts_with(NEW_MAGIC) {
        return parse_new(b, 0);
    }
    if !b.starts_with(OLD_MAGIC) {
        return Err(CacheError::BadMagic);
    }
    // The old format has no byte-order mark: the order whose entry table fits is the one.
    let fits = |o| {
        u32_at(b, 12, o)
            .and_then(|n| (n as usize).checked_mul(OLD_ENTRY))
            .and_then(|t| t.checked_add(OLD_HEADER))
            .filter(|&end| end <= b.len())
    };
    let (order, end) = match (fits(Order::Little), fits(Order::Big)) {
        (Some(end), _) => (Order::Little, end),
        (None, Some(end)) => (Order::Big, end),
        (None, None) => return Err(truncated("old-format entries", usize::MAX, b.len())),
    };
    // The new format follows the old entries, 8-byte aligned.
    let new_at = end.div_ceil(8) * 8;
    if b.get(new_at..).is_some_and(|r| r.starts_with(NEW_MAGIC)) {
        return parse_new(b, new_at);
    }
    let n = u32_at(b, 12, order).unwrap_or(0) as usize;
    let mut entries = Vec::with_capacity(n.min(4096));
    for i in 0..n {
        let at = OLD_HEADER + i * OLD_ENTRY;
        entries.extend(entry(b, at, end, order));
    }
    Ok(LdCache { entries })
}

fn parse_new(b: &[u8], at: usize) -> Result<LdCache, CacheError> {
    if b.len() < at + NEW_HEADER {
        return Err(truncated("new-format header", at + NEW_HEADER, b.len()));
    }
    let order = match b[at + 28] & 3 {
        ENDIAN_BIG => Order::Big,
        ENDIAN_LITTLE => Order::Little,
        // Unset (caches written before the flag existed): the writer's order; pick the
        // one whose entry count fits the file.
        _ => match u32_at(b, at + 20, Order::Little) {
            Some(n) if (n as usize).saturating_mul(NEW_ENTRY) <= b.len() => Order::Little,
            _ => Order::Big,
        },
    };
    let n = u32_at(b, at + 20, order).unwrap_or(0) as usize;
    n.checked_mul(NEW_ENTRY)
        .and_then(|t| t.checked_add(at + NEW_HEADER))
        .filter(|&end| end <= b.len())
        .ok_or_else(|| truncated("new-format entries", usize::MAX, b.len()))?;
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        entries.extend(entry(b, at + NEW_HEADER + i * NEW_ENTRY, at, order));
    }
    Ok(LdCache { entries })
}

/// One entry (flags, key, value at the start of both entry layouts); strings at `base`.
fn entry(b: &[u8], at: usize, base: usize, o: Order) -> Option<CacheEntry> {
    let flags = u32_at(b, at, o)? as i32;
    let name = string_at(b, base, u32_at(b, at + 4, o)?)?;
    let path = string_at(b, base, u32_at(b, at + 8, o)?)?;
    Some(CacheEntry { name, path, flags })
}

/// One meaningful line of an ld.so.conf file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfLine {
    /// A library directory.
    Dir(String),
    /// `include PATTERN`: more conf files (a glob, relative to the including file's directory).
    Include(String),
}

/// Parse ld.so.conf text as ldconfig does: `#` comments, `include` lines, `hwcap` lines
/// (ignored), and directories separated by blanks, commas or colons (an old `=TYPE` suffix
/// is dropped).
pub fn parse_conf(text: &str) -> Vec<ConfLine> {
    let mut out = vec![];
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("include") {
            if rest.starts_with([' ', '\t']) {
                out.extend(rest.split_whitespace().map(|p| ConfLine::Include(p.into())));
                continue;
            }
        }
        if line.starts_with("hwcap") && line[5..].starts_with([' ', '\t']) {
            continue;
        }
        for dir in line.split([' ', '\t', ',', ':']).filter(|d| !d.is_empty()) {
            let dir = dir.split('=').next().unwrap_or(dir).trim_end_matches('/');
            if !dir.is_empty() {
                out.push(ConfLine::Dir(dir.to_string()));
            }
        }
    }
    out
}

/// Does `name` match a glob `pattern` of `*` and `?` (ld.so.conf.d/*.conf)?
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point: linear for these short patterns.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
#[path = "ldcache_tests.rs"]
mod tests;
