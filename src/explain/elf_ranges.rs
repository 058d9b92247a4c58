//! Which byte ranges of an ELF file the explain reader ([`super::elf`], [`super::dynamic`])
//! looks at: the program and section header tables, PT_INTERP and PT_DYNAMIC, the section
//! name table, the dynamic section and the version-need/definition sections with the
//! string tables they link to. `explain --image` copies only these ranges of a file too
//! large to copy whole; the rest stays a hole.
//!
//! Pure over `object::ReadRef`: ranges whose tables are not readable yet (still a hole)
//! come out as zeros and add nothing, so a caller fills what this returns and asks again
//! until nothing new is asked for.

use std::ops::Range;

use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, ReadRef};

/// The ranges of `data` (an ELF file of `len` bytes) the reader needs, clipped to the
/// file; empty when it is not ELF.
pub fn needed<'d, R: ReadRef<'d>>(data: R, len: u64) -> Vec<Range<u64>> {
    let Ok(ident) = data.read_bytes_at(0, 16) else {
        return vec![];
    };
    if !ident.starts_with(b"\x7fELF") {
        return vec![];
    }
    // e_ident[EI_CLASS]
    let mut out = match ident[4] {
        elf::ELFCLASS32 => of::<FileHeader32<Endianness>, R>(data),
        elf::ELFCLASS64 => of::<FileHeader64<Endianness>, R>(data),
        _ => vec![],
    };
    for r in &mut out {
        r.start = r.start.min(len);
        r.end = r.end.min(len);
    }
    out.retain(|r| r.start < r.end);
    out
}

fn of<'d, H, R>(data: R) -> Vec<Range<u64>>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let Ok(h) = H::parse(data) else {
        return vec![];
    };
    let Ok(e) = h.endian() else {
        return vec![];
    };
    let table =
        |off: u64, n: u16, size: u16| off..off.saturating_add(u64::from(n) * u64::from(size));
    let mut out = vec![
        0..std::mem::size_of::<H>() as u64,
        table(h.e_phoff(e).into(), h.e_phnum(e), h.e_phentsize(e)),
        table(h.e_shoff(e).into(), h.e_shnum(e), h.e_shentsize(e)),
    ];
    if let Ok(phdrs) = h.program_headers(e, data) {
        for p in phdrs {
            if matches!(p.p_type(e), elf::PT_INTERP | elf::PT_DYNAMIC) {
                let off: u64 = p.p_offset(e).into();
                out.push(off..off.saturating_add(p.p_filesz(e).into()));
            }
        }
    }
    if let Ok(shdrs) = h.section_headers(e, data) {
        let range = |s: &H::SectionHeader| {
            let off: u64 = s.sh_offset(e).into();
            (s.sh_type(e) != elf::SHT_NOBITS).then(|| off..off.saturating_add(s.sh_size(e).into()))
        };
        let wanted = [elf::SHT_DYNAMIC, elf::SHT_GNU_VERNEED, elf::SHT_GNU_VERDEF];
        let mut picked = vec![usize::from(h.e_shstrndx(e))];
        for (i, s) in shdrs.iter().enumerate() {
            if wanted.contains(&s.sh_type(e)) {
                picked.extend([i, s.sh_link(e) as usize]);
            }
        }
        out.extend(
            picked
                .iter()
                .filter_map(|&i| shdrs.get(i))
                .filter_map(range),
        );
    }
    out
}

/// `want` minus what `have` covers, as sorted disjoint ranges.
pub fn missing(want: &[Range<u64>], have: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = vec![];
    for w in merge(want) {
        let mut start = w.start;
        for h in merge(have) {
            if h.end <= start || h.start >= w.end {
                continue;
            }
            if h.start > start {
                out.push(start..h.start);
            }
            start = start.max(h.end);
        }
        if start < w.end {
            out.push(start..w.end);
        }
    }
    out
}

/// Sorted, overlapping and touching ranges joined.
pub fn merge(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut v: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = vec![];
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_merge() {
        assert_eq!(merge(&[5..9, 0..2, 2..3, 8..12]), vec![0..3, 5..12]);
        assert_eq!(
            missing(&[0..10, 20..30], &[2..4, 25..40]),
            vec![0..2, 4..10, 20..25]
        );
        assert_eq!(
            missing(&[0..4, 4..10], &[0..6, 6..10]),
            Vec::<Range<u64>>::new()
        );
    }

    /// The explain reader, over a copy holding only the first and last 64 KiB and the
    /// ranges `needed` asks for (repeated until it asks for nothing new), sees what it
    /// sees in the whole file. The file: a real dynamic ELF with versioned needs, this
    /// test program where it is one, else Debian's perl (the aarch64 musl build of these
    /// tests is static, and runs under qemu-user).
    #[test]
    fn a_copy_of_only_the_needed_ranges_explains_like_the_whole_file() {
        let dynamic = |b: &Vec<u8>| {
            matches!(crate::explain::inspect(&b[..]), Ok(crate::explain::FileInfo::Elf(e))
                if !e.dynamic.needed.is_empty() && !e.dynamic.version_needs.is_empty())
        };
        let whole = ["/proc/self/exe", "/usr/bin/perl"]
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .find(dynamic)
            .expect("a dynamic ELF: this test program or /usr/bin/perl (perl-base)");
        let len = whole.len() as u64;
        let mut copy = vec![0u8; whole.len()];
        let mut have: Vec<Range<u64>> = vec![0..65536, len.saturating_sub(65536)..len];
        let mut rounds = 0;
        loop {
            for r in &have {
                let (a, b) = (r.start as usize, r.end as usize);
                copy[a..b].copy_from_slice(&whole[a..b]);
            }
            let todo = missing(&needed(&copy[..], len), &have);
            if todo.is_empty() {
                break;
            }
            have.extend(todo);
            rounds += 1;
            assert!(rounds <= 3, "still asking after 3 rounds");
        }
        let full = crate::explain::inspect(&whole[..]).unwrap();
        assert_eq!(crate::explain::inspect(&copy[..]).unwrap(), full);
        let crate::explain::FileInfo::Elf(e) = full else {
            panic!("not ELF")
        };
        assert!(!e.dynamic.needed.is_empty() && !e.dynamic.version_needs.is_empty());
        let copied: u64 = merge(&have).iter().map(|r| r.end - r.start).sum();
        assert!(copied < len / 2, "{copied} of {len} bytes");
    }
}
