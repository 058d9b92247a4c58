//! SuperH (sh4, sh4eb): 16-bit instructions, laid out in the target's byte order.
//! trapa with r3 = write(4) / exit_group(252); arguments in r4..r6 (the trap number is
//! 0x10 + the argument count, the Linux SH convention). r15 points at argc.
//! D is built in r0 (mov/shll16/or) since immediates are 8 bits; byte loads index off r0.

#[rustfmt::skip]
pub const SH4: &[u16] = &[
    0xe040, // mov #64,r0
    0x4028, // shll16 r0
    0xcb80, // or #128,r0
    0x6803, // mov r0,r8 ; r8 = D
    0x69f2, // mov.l @r15,r9 ; argc
    0x5af1, // mov.l @(4,r15),r10 ; argv[0]
    0x6aa0, // mov.b @r10,r10
    0x6aac, // extu.b r10,r10
    0x6093, // mov r9,r0
    0x4009, // shlr2 r0
    0x4009, // shlr2 r0
    0xc90f, // and #15,r0
    0x0b8c, // mov.b @(r0,r8),r11
    0x6183, // mov r8,r1
    0x7127, // add #39,r1
    0x21b0, // mov.b r11,@r1
    0x6093, // mov r9,r0
    0xc90f, // and #15,r0
    0x0b8c, // mov.b @(r0,r8),r11
    0x7101, // add #1,r1
    0x21b0, // mov.b r11,@r1
    0x60a3, // mov r10,r0
    0x4009, // shlr2 r0
    0x4009, // shlr2 r0
    0x0b8c, // mov.b @(r0,r8),r11
    0x7108, // add #8,r1
    0x21b0, // mov.b r11,@r1
    0x60a3, // mov r10,r0
    0xc90f, // and #15,r0
    0x0b8c, // mov.b @(r0,r8),r11
    0x7101, // add #1,r1
    0x21b0, // mov.b r11,@r1
    0xe401, // mov #1,r4
    0x6583, // mov r8,r5
    0x7514, // add #20,r5
    0x5684, // mov.l @(16,r8),r6
    0xe304, // mov #4,r3
    0xc313, // trapa #19
    0xe400, // mov #0,r4
    0xe3fc, // mov #-4,r3
    0x633c, // extu.b r3,r3 ; r3 = 252
    0xc311, // trapa #17
];
