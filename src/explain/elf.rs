//! ELF facts through the `object` crate: CPU, class, byte order, ABI, file type, PT_INTERP,
//! and the highest GLIBC_x.y a file needs (verneed) or defines (verdef, for libc.so.6).
//!
//! Pure over `object::ReadRef`: tests and the fuzzer hand in a byte slice, the CLI hands in
//! an `object::ReadCache` over the open file, so only the header, program and section
//! headers and the few sections used are ever read from disk.

use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};

use super::dynamic::Dynamic;
use super::glibc::GlibcVersion;
use super::ExplainError;

// Offsets in e_ident (the ELF specification's EI_* indices).
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EI_OSABI: usize = 7;
const EI_NIDENT: usize = 16;
use crate::arch::{self, Arch, ElfClass, Endian};

/// What kind of ELF object a file is. Only programs can be executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElfKind {
    /// ET_EXEC.
    Executable,
    /// ET_DYN with PT_INTERP: a position-independent executable.
    PieExecutable,
    /// ET_DYN without PT_INTERP but flagged DF_1_PIE: a static-pie program.
    StaticPie,
    /// ET_DYN without PT_INTERP or DF_1_PIE.
    SharedLibrary,
    Relocatable,
    Core,
    Unknown,
}

impl ElfKind {
    pub fn is_program(self) -> bool {
        matches!(
            self,
            ElfKind::Executable | ElfKind::PieExecutable | ElfKind::StaticPie
        )
    }
}

/// Everything `explain` reports about an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ElfInfo {
    /// The arch-table row (qemu name); null for a machine binfmtd has no row for.
    #[serde(serialize_with = "ser_arch")]
    pub arch: Option<&'static Arch>,
    /// e_machine.
    pub machine: u16,
    pub class: ElfClass,
    pub endian: Endian,
    /// EI_OSABI plus what e_flags says about the calling convention (EABI5 hard-float, n32...).
    pub abi: String,
    #[serde(rename = "type")]
    pub kind: ElfKind,
    /// `static` or `dynamic` (has PT_INTERP).
    pub linkage: Linkage,
    /// PT_INTERP: the dynamic loader the kernel maps before the program.
    pub interpreter: Option<String>,
    /// Highest GLIBC_x.y in the version-needs section (SHT_GNU_VERNEED).
    pub glibc_needed: Option<GlibcVersion>,
    /// Highest GLIBC_x.y in the version definitions (SHT_GNU_VERDEF): set for libc.so.6 itself.
    pub glibc_defined: Option<GlibcVersion>,
    /// DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH (JSON) and the version tables (not in JSON).
    #[serde(flatten)]
    pub dynamic: Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    Static,
    Dynamic,
}

fn ser_arch<S: serde::Serializer>(a: &Option<&'static Arch>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => s.serialize_str(a.qemu),
        None => s.serialize_none(),
    }
}

/// Inspect an ELF file; `head` is its start (at least the 16 identification bytes).
pub fn inspect<'d, R: ReadRef<'d>>(head: &[u8], data: R) -> Result<ElfInfo, ExplainError> {
    let len = data
        .len()
        .map_err(|()| ExplainError::malformed("file length unknown"))?;
    if head.len() < EI_NIDENT {
        return Err(ExplainError::truncated("ELF identification", 16, len));
    }
    let endian = match head[EI_DATA] {
        elf::ELFDATA2LSB => Endianness::Little,
        elf::ELFDATA2MSB => Endianness::Big,
        d => return Err(ExplainError::malformed(format!("EI_DATA is {d}"))),
    };
    match head[EI_CLASS] {
        elf::ELFCLASS32 => inspect_as::<FileHeader32<Endianness>, R>(head, data, len, endian),
        elf::ELFCLASS64 => inspect_as::<FileHeader64<Endianness>, R>(head, data, len, endian),
        c => Err(ExplainError::malformed(format!("EI_CLASS is {c}"))),
    }
}

fn inspect_as<'d, H, R>(
    head: &[u8],
    data: R,
    len: u64,
    e: Endianness,
) -> Result<ElfInfo, ExplainError>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let size = std::mem::size_of::<H>() as u64;
    if len < size {
        return Err(ExplainError::truncated("ELF header", size, len));
    }
    let h = H::parse(data).map_err(ExplainError::object)?;
    check_table(
        "program headers",
        h.e_phoff(e).into(),
        h.e_phnum(e),
        h.e_phentsize(e),
        len,
    )?;
    let phdrs = h.program_headers(e, data).map_err(ExplainError::object)?;
    check_segments::<H>(phdrs, e, len)?;
    let (interpreter, flags_1) = program_facts::<H, R>(phdrs, e, data)?;
    check_table(
        "section headers",
        h.e_shoff(e).into(),
        h.e_shnum(e),
        h.e_shentsize(e),
        len,
    )?;
    let sections = h.sections(e, data).map_err(ExplainError::object)?;
    let dynamic = super::dynamic::parse(&sections, e, data)?;
    let (glibc_needed, glibc_defined) = glibc_versions(&dynamic);
    let machine = h.e_machine(e);
    let class = if h.is_type_64() {
        ElfClass::Elf64
    } else {
        ElfClass::Elf32
    };
    let endian = if h.is_little_endian() {
        Endian::Little
    } else {
        Endian::Big
    };
    let kind = elf_kind(h.e_type(e), interpreter.is_some(), flags_1);
    Ok(ElfInfo {
        arch: arch::from_header(head).or_else(|| arch::from_elf(machine, class, endian)),
        machine,
        class,
        endian,
        abi: abi(head, machine, class, h.e_flags(e)),
        kind,
        linkage: match interpreter {
            Some(_) => Linkage::Dynamic,
            None => Linkage::Static,
        },
        interpreter,
        glibc_needed,
        glibc_defined,
        dynamic,
    })
}

/// PT_INTERP's path, and DT_FLAGS_1 from the dynamic segment (0 when absent).
fn program_facts<'d, H, R>(
    phdrs: &[H::ProgramHeader],
    e: Endianness,
    data: R,
) -> Result<(Option<String>, u64), ExplainError>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let mut interpreter = None;
    let mut flags_1 = 0u64;
    for p in phdrs {
        if let Some(bytes) = p.interpreter(e, data).map_err(ExplainError::object)? {
            interpreter = Some(String::from_utf8_lossy(bytes).into_owned());
        }
        // DT_FLAGS_1 only tells a static-pie from a library; an unreadable dynamic
        // segment (debug-info files keep the header but not the data) is not fatal here.
        if let Ok(Some(dynamic)) = p.dynamic(e, data) {
            flags_1 = dynamic
                .iter()
                .find(|d| d.tag32(e) == Some(elf::DT_FLAGS_1))
                .map_or(0, |d| d.d_val(e).into());
        }
    }
    Ok((interpreter, flags_1))
}

/// A header table (program or section headers) must lie inside the file. Checked here,
/// before `object` reads it, so a cut-off file says "truncated" and by how much.
fn check_table(
    what: &str,
    offset: u64,
    count: u16,
    entsize: u16,
    len: u64,
) -> Result<(), ExplainError> {
    if offset == 0 {
        return Ok(());
    }
    // e_phnum/e_shnum of 0 with an offset means the real count is in section 0 (> 0xffff
    // entries); at least that first entry must be present.
    let count = u64::from(count.max(1));
    let end = count
        .checked_mul(u64::from(entsize))
        .and_then(|n| n.checked_add(offset))
        .ok_or_else(|| ExplainError::malformed(format!("{what} offset overflows")))?;
    if end > len {
        return Err(ExplainError::truncated(what, end, len));
    }
    Ok(())
}

/// Every PT_LOAD's file bytes must exist, or the kernel cannot map the program.
fn check_segments<H: FileHeader<Endian = Endianness>>(
    phdrs: &[H::ProgramHeader],
    e: Endianness,
    len: u64,
) -> Result<(), ExplainError> {
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type(e) != elf::PT_LOAD {
            continue;
        }
        let (off, size): (u64, u64) = (p.p_offset(e).into(), p.p_filesz(e).into());
        let end = off
            .checked_add(size)
            .ok_or_else(|| ExplainError::malformed(format!("segment {i} offset overflows")))?;
        if end > len {
            return Err(ExplainError::truncated(
                &format!("loadable segment {i}"),
                end,
                len,
            ));
        }
    }
    Ok(())
}

/// Highest GLIBC_x.y needed (verneed, from any library) and defined (verdef).
fn glibc_versions(d: &Dynamic) -> (Option<GlibcVersion>, Option<GlibcVersion>) {
    let needed = d
        .needs()
        .filter_map(|(_, v, _)| GlibcVersion::from_symbol_version(v.as_bytes()))
        .max();
    let defined = d
        .version_defs
        .iter()
        .filter_map(|v| GlibcVersion::from_symbol_version(v.as_bytes()))
        .max();
    (needed, defined)
}

fn elf_kind(e_type: u16, has_interp: bool, flags_1: u64) -> ElfKind {
    match e_type {
        elf::ET_EXEC => ElfKind::Executable,
        elf::ET_DYN if has_interp => ElfKind::PieExecutable,
        elf::ET_DYN if flags_1 & u64::from(elf::DF_1_PIE) != 0 => ElfKind::StaticPie,
        elf::ET_DYN => ElfKind::SharedLibrary,
        elf::ET_REL => ElfKind::Relocatable,
        elf::ET_CORE => ElfKind::Core,
        _ => ElfKind::Unknown,
    }
}

/// EI_OSABI's name plus the calling-convention facts e_flags carries for some CPUs.
fn abi(head: &[u8], machine: u16, class: ElfClass, flags: u32) -> String {
    let os = match head[EI_OSABI] {
        elf::ELFOSABI_SYSV => "SYSV".to_string(),
        elf::ELFOSABI_GNU => "GNU/Linux".to_string(),
        elf::ELFOSABI_NETBSD => "NetBSD".to_string(),
        elf::ELFOSABI_SOLARIS => "Solaris".to_string(),
        elf::ELFOSABI_FREEBSD => "FreeBSD".to_string(),
        elf::ELFOSABI_OPENBSD => "OpenBSD".to_string(),
        elf::ELFOSABI_ARM => "ARM".to_string(),
        elf::ELFOSABI_STANDALONE => "standalone".to_string(),
        n => format!("OS/ABI {n}"),
    };
    let cpu = match (machine, class) {
        (elf::EM_ARM, _) => {
            let float = match flags & (elf::EF_ARM_ABI_FLOAT_HARD | elf::EF_ARM_ABI_FLOAT_SOFT) {
                elf::EF_ARM_ABI_FLOAT_HARD => " hard-float",
                elf::EF_ARM_ABI_FLOAT_SOFT => " soft-float",
                _ => "",
            };
            match flags >> 24 {
                0 => format!("OABI{float}"),
                v => format!("EABI{v}{float}"),
            }
        }
        (elf::EM_MIPS, ElfClass::Elf64) => "n64".into(),
        (elf::EM_MIPS, _) if flags & elf::EF_MIPS_ABI2 != 0 => "n32".into(),
        (elf::EM_MIPS, _) => "o32".into(),
        (elf::EM_RISCV, c) => {
            let base = if c == ElfClass::Elf64 {
                "lp64"
            } else {
                "ilp32"
            };
            let float = ["", "f", "d", "q"][((flags & elf::EF_RISCV_FLOAT_ABI) >> 1) as usize];
            format!("{base}{float}")
        }
        (elf::EM_PPC64, _) => match flags & 3 {
            1 => "ELFv1".into(),
            2 => "ELFv2".into(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    if cpu.is_empty() {
        os
    } else {
        format!("{os}, {cpu}")
    }
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;
