//! m68k (68020 and later addressing modes). Variable-length big-endian instructions, so
//! the code is a byte string. `trap #0` with d0 = write(4) / exit_group(247); arguments in
//! d1..d3. sp points at argc on entry.

#[rustfmt::skip]
pub const M68K: &[u8] = &[
    0x41, 0xfa, 0xff, 0x7e,              // lea %pc@(D),%a0 ; a0 = D
    0x28, 0x17,                          // movel %sp@,%d4 ; argc
    0x22, 0x6f, 0x00, 0x04,              // moveal %sp@(4),%a1 ; argv[0]
    0x7a, 0x00,                          // moveq #0,%d5
    0x1a, 0x11,                          // moveb %a1@,%d5
    0x20, 0x04,                          // movel %d4,%d0
    0xe8, 0x88,                          // lsrl #4,%d0
    0x02, 0x80, 0x00, 0x00, 0x00, 0x0f,  // andil #15,%d0
    0x11, 0x70, 0x08, 0x00, 0x00, 0x27,  // moveb %a0@(0,%d0:l),%a0@(39)
    0x20, 0x04,                          // movel %d4,%d0
    0x02, 0x80, 0x00, 0x00, 0x00, 0x0f,  // andil #15,%d0
    0x11, 0x70, 0x08, 0x00, 0x00, 0x28,  // moveb %a0@(0,%d0:l),%a0@(40)
    0x20, 0x05,                          // movel %d5,%d0
    0xe8, 0x88,                          // lsrl #4,%d0
    0x11, 0x70, 0x08, 0x00, 0x00, 0x30,  // moveb %a0@(0,%d0:l),%a0@(48)
    0x20, 0x05,                          // movel %d5,%d0
    0x02, 0x80, 0x00, 0x00, 0x00, 0x0f,  // andil #15,%d0
    0x11, 0x70, 0x08, 0x00, 0x00, 0x31,  // moveb %a0@(0,%d0:l),%a0@(49)
    0x72, 0x01,                          // moveq #1,%d1
    0x43, 0xe8, 0x00, 0x14,              // lea %a0@(20),%a1
    0x24, 0x09,                          // movel %a1,%d2
    0x26, 0x28, 0x00, 0x10,              // movel %a0@(16),%d3
    0x70, 0x04,                          // moveq #4,%d0
    0x4e, 0x40,                          // trap #0
    0x72, 0x00,                          // moveq #0,%d1
    0x20, 0x3c, 0x00, 0x00, 0x00, 0xf7,  // movel #247,%d0
    0x4e, 0x40,                          // trap #0
];
