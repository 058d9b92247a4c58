//! PA-RISC (hppa), 32-bit big-endian. The kernel passes argc in r25 and argv in r24
//! (the stack grows upward here, so the registers are the portable source). Syscalls
//! branch to the gateway page, `ble 0x100(%sr2, %r0)`, with the number in r20 set in the
//! branch's delay slot: write = 4, exit_group = 222; arguments in r26, r25, r24.
//! objdump prints offsets in hex without 0x; D is addressed absolutely (ldil/ldo).

#[rustfmt::skip]
pub const HPPA: &[u32] = &[
    0x22600008, // ldil L%400000,r19
    0x36730100, // ldo 80(r19),r19 ; r19 = D
    0x08190255, // copy r25,r21 ; argc (the kernel passes it in r25)
    0x0f001096, // ldw 0(r24),r22 ; argv[0] (r24 = argv)
    0x0ec01016, // ldb 0(r22),r22
    0xd2a11b7c, // extrw,u r21,27,4,r1
    0x0e610001, // ldb r1(r19),r1
    0x6261004e, // stb r1,27(r19)
    0xd2a11bfc, // extrw,u r21,31,4,r1
    0x0e610001, // ldb r1(r19),r1
    0x62610050, // stb r1,28(r19)
    0xd2c11b7c, // extrw,u r22,27,4,r1
    0x0e610001, // ldb r1(r19),r1
    0x62610060, // stb r1,30(r19)
    0xd2c11bfc, // extrw,u r22,31,4,r1
    0x0e610001, // ldb r1(r19),r1
    0x62610062, // stb r1,31(r19)
    0x341a0002, // ldi 1,r26
    0x36790028, // ldo 14(r19),r25
    0x4a780020, // ldw 10(r19),r24
    0xe4008200, // be,l 100(sr2,r0),sr0,r31
    0x34140008, // ldi 4,r20 ; delay slot: write
    0x341a0000, // ldi 0,r26
    0xe4008200, // be,l 100(sr2,r0),sr0,r31
    0x341401bc, // ldi de,r20 ; delay slot: exit_group (222)
];

/// EFA_PARISC_1_1: PA-RISC 1.1 code.
pub const EF_PARISC_1_1: u32 = 0x0210;
