//! Per-arch machine code for the probe, and the table that pairs it with arch rows.
//!
//! Every program does the same thing (see `elf.rs` for the data block it uses):
//! read argc and argv[0]'s first byte from the initial stack, turn each into two hex
//! digits through the table at D, patch them into the message, write(1, message, length),
//! exit_group(0). The assembly sits beside the bytes in each file; all but LoongArch were
//! produced by GNU as for that target and checked with objdump. The code does not branch,
//! so delay slots matter only on hppa, whose syscall is itself a branch (see hppa.rs).

mod alpha;
mod arm;
mod hppa;
mod loongarch;
mod m68k;
mod mips;
mod or1k;
mod power;
mod riscv;
mod s390x;
mod sh;
mod sparc;
mod x86;

use crate::arch::Endian;

/// Machine code as stored: raw bytes (variable-length ISAs), 32-bit instruction words
/// laid out in the target's byte order, or words that are little-endian whatever the
/// data byte order (AArch64 fetches instructions little-endian even on aarch64_be).
pub enum Code {
    Bytes(&'static [u8]),
    Words(&'static [u32]),
    LittleWords(&'static [u32]),
    /// 16-bit instruction units in the target's byte order (SuperH).
    Halves(&'static [u16]),
}

impl Code {
    pub fn to_bytes(&self, endian: Endian) -> Vec<u8> {
        match self {
            Code::Bytes(b) => b.to_vec(),
            Code::Words(w) => w
                .iter()
                .flat_map(|w| match endian {
                    Endian::Little => w.to_le_bytes(),
                    Endian::Big => w.to_be_bytes(),
                })
                .collect(),
            Code::LittleWords(w) => w.iter().flat_map(|w| w.to_le_bytes()).collect(),
            Code::Halves(h) => h
                .iter()
                .flat_map(|h| match endian {
                    Endian::Little => h.to_le_bytes(),
                    Endian::Big => h.to_be_bytes(),
                })
                .collect(),
        }
    }
}

/// A probe for one arch row, named by the row's qemu name.
pub struct Program {
    pub qemu: &'static str,
    pub e_flags: u32,
    pub code: Code,
}

/// ARM EABI version 5 (EF_ARM_EABI_VER5); qemu and the kernel take syscalls EABI-style.
const EF_ARM_EABI5: u32 = 0x0500_0000;

pub static PROGRAMS: &[Program] = &[
    Program {
        qemu: "x86_64",
        e_flags: 0,
        code: Code::Bytes(x86::X86_64),
    },
    Program {
        qemu: "i386",
        e_flags: 0,
        code: Code::Bytes(x86::I386),
    },
    Program {
        qemu: "i486",
        e_flags: 0,
        code: Code::Bytes(x86::I386),
    },
    Program {
        qemu: "aarch64",
        e_flags: 0,
        code: Code::LittleWords(arm::AARCH64),
    },
    Program {
        qemu: "arm",
        e_flags: EF_ARM_EABI5,
        code: Code::Words(arm::ARM),
    },
    Program {
        qemu: "riscv64",
        e_flags: 0,
        code: Code::Words(riscv::RISCV64),
    },
    Program {
        qemu: "ppc64le",
        e_flags: power::EF_PPC64_ELFV2,
        code: Code::Words(power::PPC64),
    },
    Program {
        qemu: "s390x",
        e_flags: 0,
        code: Code::Bytes(s390x::S390X),
    },
    Program {
        qemu: "mips64el",
        e_flags: mips::EF_N64,
        code: Code::Words(mips::MIPS64_N64),
    },
    // Beyond the required set: the same programs in the other byte order or width.
    Program {
        qemu: "aarch64_be",
        e_flags: 0,
        code: Code::LittleWords(arm::AARCH64),
    },
    Program {
        qemu: "armeb",
        e_flags: EF_ARM_EABI5,
        code: Code::Words(arm::ARM),
    },
    Program {
        qemu: "riscv32",
        e_flags: 0,
        code: Code::Words(riscv::RISCV32),
    },
    Program {
        qemu: "ppc64",
        e_flags: power::EF_PPC64_ELFV2,
        code: Code::Words(power::PPC64),
    },
    Program {
        qemu: "mips64",
        e_flags: mips::EF_N64,
        code: Code::Words(mips::MIPS64_N64),
    },
    Program {
        qemu: "mips",
        e_flags: mips::EF_O32,
        code: Code::Words(mips::MIPS_O32),
    },
    Program {
        qemu: "mipsel",
        e_flags: mips::EF_O32,
        code: Code::Words(mips::MIPS_O32),
    },
    Program {
        qemu: "mipsn32",
        e_flags: mips::EF_N32,
        code: Code::Words(mips::MIPS_N32),
    },
    Program {
        qemu: "mipsn32el",
        e_flags: mips::EF_N32,
        code: Code::Words(mips::MIPS_N32),
    },
    Program {
        qemu: "ppc",
        e_flags: 0,
        code: Code::Words(power::PPC32),
    },
    Program {
        qemu: "sparc64",
        e_flags: 0,
        code: Code::Words(sparc::SPARC64),
    },
    Program {
        qemu: "sparc",
        e_flags: 0,
        code: Code::Words(sparc::SPARC32),
    },
    Program {
        qemu: "sparc32plus",
        e_flags: sparc::EF_SPARC_32PLUS,
        code: Code::Words(sparc::SPARC32),
    },
    Program {
        qemu: "m68k",
        e_flags: 0,
        code: Code::Bytes(m68k::M68K),
    },
    Program {
        qemu: "alpha",
        e_flags: 0,
        code: Code::Words(alpha::ALPHA),
    },
    Program {
        qemu: "sh4",
        e_flags: 0,
        code: Code::Halves(sh::SH4),
    },
    Program {
        qemu: "sh4eb",
        e_flags: 0,
        code: Code::Halves(sh::SH4),
    },
    Program {
        qemu: "hppa",
        e_flags: hppa::EF_PARISC_1_1,
        code: Code::Words(hppa::HPPA),
    },
    Program {
        qemu: "or1k",
        e_flags: 0,
        code: Code::Words(or1k::OR1K),
    },
    Program {
        qemu: "loongarch64",
        e_flags: loongarch::EF_LP64D_V1,
        code: Code::Words(loongarch::LOONGARCH64),
    },
];

/// The program for the row whose qemu name is `qemu`.
pub fn for_arch(qemu: &str) -> Option<&'static Program> {
    PROGRAMS.iter().find(|p| p.qemu == qemu)
}
