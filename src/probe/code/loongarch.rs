//! LoongArch64. Bookworm has no LoongArch assembler, so these words are encoded by hand
//! from the ISA manual's formats (opcode | imm << 10 | rj << 5 | rd, or si20 << 5 | rd);
//! the unit tests re-encode them field by field and the integration test runs them.
//! syscall 0 with a7 = write(64) / exit_group(94); arguments in a0..a2. sp points at argc.
//! Register numbers: sp=r3, a0..a5=r4..r9, a7=r11, t0=r12.

#[rustfmt::skip]
pub const LOONGARCH64: &[u32] = &[
    0x19fffc07, // pcaddi  $a3, -32            ; a3 = pc + (-32 << 2) = D
    0x28c00068, // ld.d    $a4, $sp, 0         ; argc
    0x28c02069, // ld.d    $a5, $sp, 8         ; argv[0]
    0x2a000129, // ld.bu   $a5, $a5, 0         ; argv[0][0]
    0x0045110c, // srli.d  $t0, $a4, 4
    0x03403d8c, // andi    $t0, $t0, 15
    0x382030ec, // ldx.bu  $t0, $a3, $t0       ; hex digit
    0x29009cec, // st.b    $t0, $a3, 0x27
    0x03403d0c, // andi    $t0, $a4, 15
    0x382030ec, // ldx.bu  $t0, $a3, $t0
    0x2900a0ec, // st.b    $t0, $a3, 0x28
    0x0045112c, // srli.d  $t0, $a5, 4
    0x382030ec, // ldx.bu  $t0, $a3, $t0
    0x2900c0ec, // st.b    $t0, $a3, 0x30
    0x03403d2c, // andi    $t0, $a5, 15
    0x382030ec, // ldx.bu  $t0, $a3, $t0
    0x2900c4ec, // st.b    $t0, $a3, 0x31
    0x02c00404, // addi.d  $a0, $zero, 1       ; stdout
    0x02c050e5, // addi.d  $a1, $a3, 0x14      ; message
    0x2a8040e6, // ld.wu   $a2, $a3, 0x10      ; length
    0x02c1000b, // addi.d  $a7, $zero, 64      ; write
    0x002b0000, // syscall 0
    0x02c00004, // addi.d  $a0, $zero, 0
    0x02c1780b, // addi.d  $a7, $zero, 94      ; exit_group
    0x002b0000, // syscall 0
];

/// e_flags: LP64D ABI (EF_LOONGARCH_ABI_DOUBLE_FLOAT = 3) | EF_LOONGARCH_OBJABI_V1 (0x40).
pub const EF_LP64D_V1: u32 = 0x43;

#[cfg(test)]
mod tests {
    //! Re-derive every hand-encoded word from its fields, with the opcodes as the ISA
    //! manual (and binutils' loongarch-opc.c) list them.

    const SP: u32 = 3;
    const ZERO: u32 = 0;
    const A0: u32 = 4;
    const A1: u32 = 5;
    const A2: u32 = 6;
    const A3: u32 = 7;
    const A4: u32 = 8;
    const A5: u32 = 9;
    const A7: u32 = 11;
    const T0: u32 = 12;

    /// 2RI12 format: opcode | si12/ui12 << 10 | rj << 5 | rd.
    fn ri12(op: u32, rd: u32, rj: u32, imm: i32) -> u32 {
        op | ((imm as u32 & 0xfff) << 10) | (rj << 5) | rd
    }
    /// 3R format: opcode | rk << 10 | rj << 5 | rd.
    fn r3(op: u32, rd: u32, rj: u32, rk: u32) -> u32 {
        op | (rk << 10) | (rj << 5) | rd
    }
    fn srli_d(rd: u32, rj: u32, ui6: u32) -> u32 {
        0x0045_0000 | (ui6 << 10) | (rj << 5) | rd
    }
    fn pcaddi(rd: u32, si20: i32) -> u32 {
        0x1800_0000 | ((si20 as u32 & 0xf_ffff) << 5) | rd
    }
    const LD_D: u32 = 0x28c0_0000;
    const LD_BU: u32 = 0x2a00_0000;
    const LD_WU: u32 = 0x2a80_0000;
    const ST_B: u32 = 0x2900_0000;
    const ANDI: u32 = 0x0340_0000;
    const ADDI_D: u32 = 0x02c0_0000;
    const LDX_BU: u32 = 0x3820_0000;
    const SYSCALL: u32 = 0x002b_0000;

    #[test]
    fn hand_encoded_words_match_their_fields() {
        let expected = [
            pcaddi(A3, -(0x80 / 4)),
            ri12(LD_D, A4, SP, 0),
            ri12(LD_D, A5, SP, 8),
            ri12(LD_BU, A5, A5, 0),
            srli_d(T0, A4, 4),
            ri12(ANDI, T0, T0, 15),
            r3(LDX_BU, T0, A3, T0),
            ri12(ST_B, T0, A3, 0x27),
            ri12(ANDI, T0, A4, 15),
            r3(LDX_BU, T0, A3, T0),
            ri12(ST_B, T0, A3, 0x28),
            srli_d(T0, A5, 4),
            r3(LDX_BU, T0, A3, T0),
            ri12(ST_B, T0, A3, 0x30),
            ri12(ANDI, T0, A5, 15),
            r3(LDX_BU, T0, A3, T0),
            ri12(ST_B, T0, A3, 0x31),
            ri12(ADDI_D, A0, ZERO, 1),
            ri12(ADDI_D, A1, A3, 0x14),
            ri12(LD_WU, A2, A3, 0x10),
            ri12(ADDI_D, A7, ZERO, 64),
            SYSCALL,
            ri12(ADDI_D, A0, ZERO, 0),
            ri12(ADDI_D, A7, ZERO, 94),
            SYSCALL,
        ];
        assert_eq!(super::LOONGARCH64, &expected[..]);
    }
}
