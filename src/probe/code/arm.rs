//! AArch64 and 32-bit ARM (A32 instructions, EABI). Fixed 32-bit instruction words,
//! written out in the target's byte order, so the big-endian variants reuse them.

/// AArch64: svc #0 with x8 = write(64) / exit_group(94); arguments in x0..x2.
/// sp points at argc on entry.
#[rustfmt::skip]
pub const AARCH64: &[u32] = &[
    0x10fffc09, // adr   x9, D                 ; x9 = D (pc - 0x80)
    0xf94003ea, // ldr   x10, [sp]             ; argc
    0xf94007eb, // ldr   x11, [sp, #8]         ; argv[0]
    0x3940016b, // ldrb  w11, [x11]            ; argv[0][0]
    0xd3441d4c, // ubfx  x12, x10, #4, #4      ; high nibble of argc
    0x386c692c, // ldrb  w12, [x9, x12]        ; hex digit
    0x39009d2c, // strb  w12, [x9, #0x27]
    0x92400d4c, // and   x12, x10, #0xf
    0x386c692c, // ldrb  w12, [x9, x12]
    0x3900a12c, // strb  w12, [x9, #0x28]
    0xd344fd6c, // lsr   x12, x11, #4
    0x386c692c, // ldrb  w12, [x9, x12]
    0x3900c12c, // strb  w12, [x9, #0x30]
    0x92400d6c, // and   x12, x11, #0xf
    0x386c692c, // ldrb  w12, [x9, x12]
    0x3900c52c, // strb  w12, [x9, #0x31]
    0xd2800020, // mov   x0, #1                ; stdout
    0x91005121, // add   x1, x9, #0x14         ; message
    0xb9401122, // ldr   w2, [x9, #0x10]       ; length
    0xd2800808, // mov   x8, #64               ; write
    0xd4000001, // svc   #0
    0xd2800000, // mov   x0, #0
    0xd2800bc8, // mov   x8, #94               ; exit_group
    0xd4000001, // svc   #0
];

/// ARM EABI: svc #0 with r7 = write(4) / exit_group(248); arguments in r0..r2.
/// Reading pc gives the instruction's address + 8.
#[rustfmt::skip]
pub const ARM: &[u32] = &[
    0xe24f4088, // sub   r4, pc, #0x88         ; r4 = D
    0xe59d5000, // ldr   r5, [sp]              ; argc
    0xe59d6004, // ldr   r6, [sp, #4]          ; argv[0]
    0xe5d66000, // ldrb  r6, [r6]              ; argv[0][0]
    0xe1a03225, // lsr   r3, r5, #4
    0xe203300f, // and   r3, r3, #15
    0xe7d43003, // ldrb  r3, [r4, r3]          ; hex digit
    0xe5c43027, // strb  r3, [r4, #0x27]
    0xe205300f, // and   r3, r5, #15
    0xe7d43003, // ldrb  r3, [r4, r3]
    0xe5c43028, // strb  r3, [r4, #0x28]
    0xe1a03226, // lsr   r3, r6, #4
    0xe7d43003, // ldrb  r3, [r4, r3]
    0xe5c43030, // strb  r3, [r4, #0x30]
    0xe206300f, // and   r3, r6, #15
    0xe7d43003, // ldrb  r3, [r4, r3]
    0xe5c43031, // strb  r3, [r4, #0x31]
    0xe3a00001, // mov   r0, #1                ; stdout
    0xe2841014, // add   r1, r4, #0x14         ; message
    0xe5942010, // ldr   r2, [r4, #0x10]       ; length
    0xe3a07004, // mov   r7, #4                ; write
    0xef000000, // svc   #0
    0xe3a00000, // mov   r0, #0
    0xe3a070f8, // mov   r7, #248              ; exit_group
    0xef000000, // svc   #0
];
