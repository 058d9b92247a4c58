//! MIPS. The code has no branches, so no delay slots to mind; loads are interlocked on
//! the MIPS32r2/MIPS64r2 cores the e_flags name. D is addressed absolutely (lui/ori of
//! BASE + 0x80). The same words serve both byte orders.

/// n64 ABI (mips64el, mips64): syscall with v0 = write(5001) / exit_group(5205);
/// arguments in a0..a2. sp points at argc (8 bytes).
#[rustfmt::skip]
pub const MIPS64_N64: &[u32] = &[
    0x3c0c0040, // lui    t0, 0x40
    0x358c0080, // ori    t0, t0, 0x80         ; t0 = D
    0xdfad0000, // ld     t1, 0(sp)            ; argc
    0xdfae0008, // ld     t2, 8(sp)            ; argv[0]
    0x91ce0000, // lbu    t2, 0(t2)            ; argv[0][0]
    0x000d793a, // dsrl   t3, t1, 4
    0x31ef000f, // andi   t3, t3, 15
    0x01ec782d, // daddu  t3, t3, t0
    0x91ef0000, // lbu    t3, 0(t3)            ; hex digit
    0xa18f0027, // sb     t3, 0x27(t0)
    0x31af000f, // andi   t3, t1, 15
    0x01ec782d, // daddu  t3, t3, t0
    0x91ef0000, // lbu    t3, 0(t3)
    0xa18f0028, // sb     t3, 0x28(t0)
    0x000e793a, // dsrl   t3, t2, 4
    0x01ec782d, // daddu  t3, t3, t0
    0x91ef0000, // lbu    t3, 0(t3)
    0xa18f0030, // sb     t3, 0x30(t0)
    0x31cf000f, // andi   t3, t2, 15
    0x01ec782d, // daddu  t3, t3, t0
    0x91ef0000, // lbu    t3, 0(t3)
    0xa18f0031, // sb     t3, 0x31(t0)
    0x24040001, // li     a0, 1                ; stdout
    0x65850014, // daddiu a1, t0, 0x14         ; message
    0x8d860010, // lw     a2, 0x10(t0)         ; length
    0x24021389, // li     v0, 5001             ; write
    0x0000000c, // syscall
    0x24040000, // li     a0, 0
    0x24021455, // li     v0, 5205             ; exit_group
    0x0000000c, // syscall
];

/// e_flags for n64: EF_MIPS_ARCH_64R2 | EF_MIPS_NOREORDER, and neither EF_MIPS_ABI2
/// (that would be n32) nor an EF_MIPS_ABI_* value (o32/o64).
pub const EF_N64: u32 = 0x8000_0001;

/// 4-byte stack slots (o32 and n32 both put argc at 0(sp) and argv[0] at 4(sp)); the two
/// ABIs differ only in syscall numbers, so the words are built from them.
#[rustfmt::skip]
const fn mips32(write: u32, exit_group: u32) -> [u32; 30] {
    [
        0x3c080040,              // lui    t0, 0x40
        0x35080080,              // ori    t0, t0, 0x80         ; t0 = D
        0x8fa90000,              // lw     t1, 0(sp)            ; argc
        0x8faa0004,              // lw     t2, 4(sp)            ; argv[0]
        0x914a0000,              // lbu    t2, 0(t2)            ; argv[0][0]
        0x00095902,              // srl    t3, t1, 4
        0x316b000f,              // andi   t3, t3, 15
        0x01685821,              // addu   t3, t3, t0
        0x916b0000,              // lbu    t3, 0(t3)            ; hex digit
        0xa10b0027,              // sb     t3, 0x27(t0)
        0x312b000f,              // andi   t3, t1, 15
        0x01685821,              // addu   t3, t3, t0
        0x916b0000,              // lbu    t3, 0(t3)
        0xa10b0028,              // sb     t3, 0x28(t0)
        0x000a5902,              // srl    t3, t2, 4
        0x01685821,              // addu   t3, t3, t0
        0x916b0000,              // lbu    t3, 0(t3)
        0xa10b0030,              // sb     t3, 0x30(t0)
        0x314b000f,              // andi   t3, t2, 15
        0x01685821,              // addu   t3, t3, t0
        0x916b0000,              // lbu    t3, 0(t3)
        0xa10b0031,              // sb     t3, 0x31(t0)
        0x24040001,              // li     a0, 1                ; stdout
        0x25050014,              // addiu  a1, t0, 0x14         ; message
        0x8d060010,              // lw     a2, 0x10(t0)         ; length
        0x24020000 | write,      // li     v0, <write>
        0x0000000c,              // syscall
        0x24040000,              // li     a0, 0
        0x24020000 | exit_group, // li     v0, <exit_group>
        0x0000000c,              // syscall
    ]
}

/// o32 (mips, mipsel): write = 4004, exit_group = 4246.
pub const MIPS_O32: &[u32] = &mips32(4004, 4246);
/// n32 (mipsn32, mipsn32el): write = 6001, exit_group = 6205.
pub const MIPS_N32: &[u32] = &mips32(6001, 6205);

/// o32: EF_MIPS_ARCH_32R2 | EF_MIPS_ABI_O32 | EF_MIPS_NOREORDER. The o32 binfmt masks
/// test that EF_MIPS_ABI2 (0x20) is clear.
pub const EF_O32: u32 = 0x7000_1001;
/// n32: EF_MIPS_ARCH_64R2 | EF_MIPS_ABI2 | EF_MIPS_NOREORDER. The n32 masks test 0x20.
pub const EF_N32: u32 = 0x8000_0021;
