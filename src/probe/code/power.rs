//! 64-bit PowerPC (ELFv2: e_entry is the first instruction, not a function descriptor).
//! sc with r0 = write(4) / exit_group(234); arguments in r3..r5. r1 points at argc.
//! D is addressed absolutely (lis/ori of BASE + 0x80), which needs no PC trick.

#[rustfmt::skip]
pub const PPC64: &[u32] = &[
    0x3d200040, // lis   r9, 0x40
    0x61290080, // ori   r9, r9, 0x80          ; r9 = D
    0xe9410000, // ld    r10, 0(r1)            ; argc
    0xe9610008, // ld    r11, 8(r1)            ; argv[0]
    0x896b0000, // lbz   r11, 0(r11)           ; argv[0][0]
    0x794ce102, // srdi  r12, r10, 4
    0x718c000f, // andi. r12, r12, 15
    0x7d8960ae, // lbzx  r12, r9, r12          ; hex digit
    0x99890027, // stb   r12, 0x27(r9)
    0x714c000f, // andi. r12, r10, 15
    0x7d8960ae, // lbzx  r12, r9, r12
    0x99890028, // stb   r12, 0x28(r9)
    0x796ce102, // srdi  r12, r11, 4
    0x7d8960ae, // lbzx  r12, r9, r12
    0x99890030, // stb   r12, 0x30(r9)
    0x716c000f, // andi. r12, r11, 15
    0x7d8960ae, // lbzx  r12, r9, r12
    0x99890031, // stb   r12, 0x31(r9)
    0x38600001, // li    r3, 1                 ; stdout
    0x38890014, // addi  r4, r9, 0x14          ; message
    0x80a90010, // lwz   r5, 0x10(r9)          ; length
    0x38000004, // li    r0, 4                 ; write
    0x44000002, // sc
    0x38600000, // li    r3, 0
    0x380000ea, // li    r0, 234               ; exit_group
    0x44000002, // sc
];

/// ELF e_flags for the ELFv2 ABI (EF_PPC64_ABI = 2), so loaders take e_entry as code.
pub const EF_PPC64_ELFV2: u32 = 2;

/// 32-bit PowerPC (ppc): 4-byte stack slots, same syscall numbers.
#[rustfmt::skip]
pub const PPC32: &[u32] = &[
    0x3d200040, // lis r9,64
    0x61290080, // ori r9,r9,128 ; r9 = D
    0x81410000, // lwz r10,0(r1) ; argc
    0x81610004, // lwz r11,4(r1) ; argv[0]
    0x896b0000, // lbz r11,0(r11)
    0x554ce13e, // srwi r12,r10,4
    0x718c000f, // andi. r12,r12,15
    0x7d8960ae, // lbzx r12,r9,r12
    0x99890027, // stb r12,39(r9)
    0x714c000f, // andi. r12,r10,15
    0x7d8960ae, // lbzx r12,r9,r12
    0x99890028, // stb r12,40(r9)
    0x556ce13e, // srwi r12,r11,4
    0x7d8960ae, // lbzx r12,r9,r12
    0x99890030, // stb r12,48(r9)
    0x716c000f, // andi. r12,r11,15
    0x7d8960ae, // lbzx r12,r9,r12
    0x99890031, // stb r12,49(r9)
    0x38600001, // li r3,1
    0x38890014, // addi r4,r9,20
    0x80a90010, // lwz r5,16(r9)
    0x38000004, // li r0,4
    0x44000002, // sc
    0x38600000, // li r3,0
    0x380000ea, // li r0,234
    0x44000002, // sc
];
