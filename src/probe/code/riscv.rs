//! RISC-V, base integer instructions only (no compressed encodings, so any RV64I/RV32I
//! core runs it). ecall with a7 = write(64) / exit_group(94); arguments in a0..a2.

/// RV64: sp points at argc (8 bytes), then argv[0].
#[rustfmt::skip]
pub const RISCV64: &[u32] = &[
    0x00000697, // auipc a3, 0
    0xf8068693, // addi  a3, a3, -0x80         ; a3 = D
    0x00013703, // ld    a4, 0(sp)             ; argc
    0x00813783, // ld    a5, 8(sp)             ; argv[0]
    0x0007c783, // lbu   a5, 0(a5)             ; argv[0][0]
    0x00475293, // srli  t0, a4, 4
    0x00f2f293, // andi  t0, t0, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)             ; hex digit
    0x025683a3, // sb    t0, 0x27(a3)
    0x00f77293, // andi  t0, a4, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x02568423, // sb    t0, 0x28(a3)
    0x0047d293, // srli  t0, a5, 4
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x02568823, // sb    t0, 0x30(a3)
    0x00f7f293, // andi  t0, a5, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x025688a3, // sb    t0, 0x31(a3)
    0x00100513, // li    a0, 1                 ; stdout
    0x01468593, // addi  a1, a3, 0x14          ; message
    0x0106a603, // lw    a2, 0x10(a3)          ; length
    0x04000893, // li    a7, 64                ; write
    0x00000073, // ecall
    0x00000513, // li    a0, 0
    0x05e00893, // li    a7, 94                ; exit_group
    0x00000073, // ecall
];

/// RV32: the same program with 4-byte stack slots (sp points at argc, then argv[0]).
#[rustfmt::skip]
pub const RISCV32: &[u32] = &[
    0x00000697, // auipc a3, 0
    0xf8068693, // addi  a3, a3, -0x80         ; a3 = D
    0x00012703, // lw    a4, 0(sp)             ; argc
    0x00412783, // lw    a5, 4(sp)             ; argv[0]
    0x0007c783, // lbu   a5, 0(a5)             ; argv[0][0]
    0x00475293, // srli  t0, a4, 4
    0x00f2f293, // andi  t0, t0, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)             ; hex digit
    0x025683a3, // sb    t0, 0x27(a3)
    0x00f77293, // andi  t0, a4, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x02568423, // sb    t0, 0x28(a3)
    0x0047d293, // srli  t0, a5, 4
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x02568823, // sb    t0, 0x30(a3)
    0x00f7f293, // andi  t0, a5, 15
    0x005682b3, // add   t0, a3, t0
    0x0002c283, // lbu   t0, 0(t0)
    0x025688a3, // sb    t0, 0x31(a3)
    0x00100513, // li    a0, 1                 ; stdout
    0x01468593, // addi  a1, a3, 0x14          ; message
    0x0106a603, // lw    a2, 0x10(a3)          ; length
    0x04000893, // li    a7, 64                ; write
    0x00000073, // ecall
    0x00000513, // li    a0, 0
    0x05e00893, // li    a7, 94                ; exit_group
    0x00000073, // ecall
];
