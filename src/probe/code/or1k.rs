//! OpenRISC 1000 (or1k), 32-bit big-endian. `l.sys 1` with r11 = write(64) /
//! exit_group(94); arguments in r3..r5; r1 points at argc. Each `l.sys` is followed by
//! the customary `l.nop`. D is addressed absolutely (l.movhi/l.ori). Bookworm's
//! binutils-multiarch lacks or1k; these words come from binutils-or1k-elf.

#[rustfmt::skip]
pub const OR1K: &[u32] = &[
    0x19a00040, // l.movhi r13,0x40
    0xa9ad0080, // l.ori r13,r13,0x80 ; r13 = D
    0x85e10000, // l.lwz r15,0(r1) ; argc
    0x86210004, // l.lwz r17,4(r1) ; argv[0]
    0x8e310000, // l.lbz r17,0(r17)
    0xba6f0044, // l.srli r19,r15,0x4
    0xa673000f, // l.andi r19,r19,0xf
    0xe2736800, // l.add r19,r19,r13
    0x8e730000, // l.lbz r19,0(r19) ; hex digit
    0xd80d9827, // l.sb 39(r13),r19
    0xa66f000f, // l.andi r19,r15,0xf
    0xe2736800, // l.add r19,r19,r13
    0x8e730000, // l.lbz r19,0(r19)
    0xd80d9828, // l.sb 40(r13),r19
    0xba710044, // l.srli r19,r17,0x4
    0xe2736800, // l.add r19,r19,r13
    0x8e730000, // l.lbz r19,0(r19)
    0xd80d9830, // l.sb 48(r13),r19
    0xa671000f, // l.andi r19,r17,0xf
    0xe2736800, // l.add r19,r19,r13
    0x8e730000, // l.lbz r19,0(r19)
    0xd80d9831, // l.sb 49(r13),r19
    0x9c600001, // l.addi r3,r0,1
    0x9c8d0014, // l.addi r4,r13,20
    0x84ad0010, // l.lwz r5,16(r13)
    0x9d600040, // l.addi r11,r0,64 ; write
    0x20000001, // l.sys 0x1
    0x15000000, // l.nop 0x0
    0x9c600000, // l.addi r3,r0,0
    0x9d60005e, // l.addi r11,r0,94 ; exit_group
    0x20000001, // l.sys 0x1
    0x15000000, // l.nop 0x0
];
