//! MIPS. The n64 code has no branches, so no delay slots to mind; loads are interlocked
//! on every MIPS64 core. D is addressed absolutely (lui/ori of BASE + 0x80).

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
