//! A minimal static ELF executable: one header, one PT_LOAD, no sections.
//!
//! Image layout (file offset == offset from `BASE` in memory):
//!
//! | offset  | contents                                                          |
//! |---------|-------------------------------------------------------------------|
//! | 0x00    | ELF header, then the single program header                        |
//! | 0x80    | data block `D` (below); the machine code reads and patches it      |
//! | 0x100   | machine code; `e_entry` = BASE + 0x100                            |
//!
//! Data block `D`:
//!
//! | offset | contents                                                             |
//! |--------|----------------------------------------------------------------------|
//! | D+0x00 | `0123456789abcdef`, the nibble-to-hex table                          |
//! | D+0x10 | message length, u32 in the target's byte order                       |
//! | D+0x14 | the message, `BINFMTD-PROBE argc=?? argv0=?? arch=<name>\n`           |
//!
//! Fixed offsets keep every per-arch program independent of the message: the code patches
//! the `??` at D+0x27/0x28 (argc) and D+0x30/0x31 (argv[0]'s first byte) and writes
//! D+0x14 for the stored length. The one segment is RWX because the code patches its
//! own data; nothing else runs in this process.

use crate::arch::{Arch, ElfClass, Endian};

/// Load address. Page-aligned for every target (64 KiB covers 4K/16K/64K page guests),
/// above mmap_min_addr, and small enough for a 32-bit absolute `lui`/`lis`/`mov`.
pub const BASE: u64 = 0x40_0000;
/// File offset (and offset from BASE) of the data block.
pub const DATA: usize = 0x80;
/// File offset (and offset from BASE) of the first instruction.
pub const CODE: usize = 0x100;

/// Offsets inside the data block, fixed by the machine code (see the module doc).
pub const MSG_LEN_AT: usize = 0x10;
pub const MSG_AT: usize = 0x14;
pub const ARGC_DIGITS_AT: usize = 0x27;
pub const ARGV0_DIGITS_AT: usize = 0x30;

const HEX: &[u8; 16] = b"0123456789abcdef";
const SEGMENT_ALIGN: u64 = 0x1_0000;
const PT_LOAD: u32 = 1;
const PF_RWX: u32 = 7;
const ET_EXEC: u16 = 2;

/// The message template; the code overwrites each `??`.
pub fn message(name: &str) -> String {
    format!("BINFMTD-PROBE argc=?? argv0=?? arch={name}\n")
}

/// Build the image for `arch` with its `e_flags`, `code` already in target byte order,
/// and `name` baked into the message. None if the message does not fit the data block.
pub fn build(arch: &Arch, e_flags: u32, code: &[u8], name: &str) -> Option<Vec<u8>> {
    let msg = message(name);
    if MSG_AT + msg.len() > CODE - DATA {
        return None;
    }
    let mut out = Vec::with_capacity(CODE + code.len());
    let w = Writer {
        endian: arch.endian(),
        class: arch.elf_class(),
    };
    w.header(&mut out, arch.elf_machine(), e_flags);
    w.program_header(&mut out, (CODE + code.len()) as u64);
    out.resize(DATA, 0);
    out.extend_from_slice(HEX);
    debug_assert_eq!(out.len(), DATA + MSG_LEN_AT);
    w.u32(&mut out, msg.len() as u32);
    debug_assert_eq!(out.len(), DATA + MSG_AT);
    out.extend_from_slice(msg.as_bytes());
    out.resize(CODE, 0);
    out.extend_from_slice(code);
    debug_assert_eq!(&out[DATA + ARGC_DIGITS_AT..][..2], b"??");
    debug_assert_eq!(&out[DATA + ARGV0_DIGITS_AT..][..2], b"??");
    Some(out)
}

/// Encodes ELF fields in the target's class and byte order.
struct Writer {
    endian: Endian,
    class: ElfClass,
}

impl Writer {
    fn u16(&self, out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        });
    }

    fn u32(&self, out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        });
    }

    /// An address or offset: 4 bytes in ELF32, 8 in ELF64.
    fn addr(&self, out: &mut Vec<u8>, v: u64) {
        match (self.class, self.endian) {
            (ElfClass::Elf32, _) => self.u32(out, v as u32),
            (ElfClass::Elf64, Endian::Little) => out.extend_from_slice(&v.to_le_bytes()),
            (ElfClass::Elf64, Endian::Big) => out.extend_from_slice(&v.to_be_bytes()),
        }
    }

    fn sizes(&self) -> (u16, u16, u16) {
        // (e_ehsize, e_phentsize, e_shentsize); qemu rejects a wrong e_ehsize/e_phentsize.
        match self.class {
            ElfClass::Elf32 => (52, 32, 40),
            ElfClass::Elf64 => (64, 56, 64),
        }
    }

    fn header(&self, out: &mut Vec<u8>, machine: u16, e_flags: u32) {
        let class = match self.class {
            ElfClass::Elf32 => 1,
            ElfClass::Elf64 => 2,
        };
        let data = match self.endian {
            Endian::Little => 1,
            Endian::Big => 2,
        };
        // e_ident: magic, class, byte order, EV_CURRENT, ELFOSABI_SYSV, ABI version 0,
        // and EI_PAD (9..16) all zero, which every standard binfmt mask requires.
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', class, data, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        let (ehsize, phentsize, shentsize) = self.sizes();
        self.u16(out, ET_EXEC);
        self.u16(out, machine);
        self.u32(out, 1); // e_version
        self.addr(out, BASE + CODE as u64); // e_entry
        self.addr(out, u64::from(ehsize)); // e_phoff: right after this header
        self.addr(out, 0); // e_shoff: no sections
        self.u32(out, e_flags);
        self.u16(out, ehsize);
        self.u16(out, phentsize);
        self.u16(out, 1); // e_phnum
        self.u16(out, shentsize);
        self.u16(out, 0); // e_shnum
        self.u16(out, 0); // e_shstrndx
    }

    fn program_header(&self, out: &mut Vec<u8>, size: u64) {
        self.u32(out, PT_LOAD);
        if self.class == ElfClass::Elf64 {
            self.u32(out, PF_RWX); // p_flags sits here in ELF64 only
        }
        self.addr(out, 0); // p_offset: the whole file, headers included
        self.addr(out, BASE); // p_vaddr
        self.addr(out, BASE); // p_paddr
        self.addr(out, size); // p_filesz
        self.addr(out, size); // p_memsz
        if self.class == ElfClass::Elf32 {
            self.u32(out, PF_RWX);
        }
        self.addr(out, SEGMENT_ALIGN);
    }
}
