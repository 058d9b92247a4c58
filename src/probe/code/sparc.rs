//! SPARC. Syscall number in %g1, arguments in %o0..%o2. No branches, so no delay slots.
//! D is addressed absolutely (sethi/or of BASE + 0x80).

/// 64-bit (sparc64): `ta 0x6d`; write = 4, exit_group = 188. The stack pointer carries
/// the V9 bias of 2047 and a 128-byte register save area sits below argc.
#[rustfmt::skip]
pub const SPARC64: &[u32] = &[
    0x21001000, // sethi %hi(0x400000), %l0
    0xa0142080, // or %l0, 0x80, %l0 ; l0 = D
    0xe25ba87f, // ldx [ %sp + 0x87f ], %l1 ; argc
    0xe45ba887, // ldx [ %sp + 0x887 ], %l2 ; argv[0]
    0xe40c8000, // ldub [ %l2 ], %l2
    0xa7347004, // srlx %l1, 4, %l3
    0xa60ce00f, // and %l3, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2027, // stb %l3, [ %l0 + 0x27 ]
    0xa60c600f, // and %l1, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2028, // stb %l3, [ %l0 + 0x28 ]
    0xa734b004, // srlx %l2, 4, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2030, // stb %l3, [ %l0 + 0x30 ]
    0xa60ca00f, // and %l2, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2031, // stb %l3, [ %l0 + 0x31 ]
    0x90102001, // mov 1, %o0
    0x92042014, // add %l0, 0x14, %o1
    0xd4042010, // ld [ %l0 + 0x10 ], %o2
    0x82102004, // mov 4, %g1
    0x91d0206d, // ta 0x6d
    0x90102000, // clr %o0
    0x821020bc, // mov 0xbc, %g1
    0x91d0206d, // ta 0x6d
];

/// 32-bit (sparc, sparc32plus): `ta 0x10`, same numbers; argc sits above a 64-byte
/// register save area.
#[rustfmt::skip]
pub const SPARC32: &[u32] = &[
    0x21001000, // sethi %hi(0x400000), %l0
    0xa0142080, // or %l0, 0x80, %l0 ; l0 = D
    0xe203a040, // ld [ %sp + 0x40 ], %l1 ; argc
    0xe403a044, // ld [ %sp + 0x44 ], %l2 ; argv[0]
    0xe40c8000, // ldub [ %l2 ], %l2
    0xa7346004, // srl %l1, 4, %l3
    0xa60ce00f, // and %l3, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2027, // stb %l3, [ %l0 + 0x27 ]
    0xa60c600f, // and %l1, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2028, // stb %l3, [ %l0 + 0x28 ]
    0xa734a004, // srl %l2, 4, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2030, // stb %l3, [ %l0 + 0x30 ]
    0xa60ca00f, // and %l2, 0xf, %l3
    0xe60c0013, // ldub [ %l0 + %l3 ], %l3
    0xe62c2031, // stb %l3, [ %l0 + 0x31 ]
    0x90102001, // mov 1, %o0
    0x92042014, // add %l0, 0x14, %o1
    0xd4042010, // ld [ %l0 + 0x10 ], %o2
    0x82102004, // mov 4, %g1
    0x91d02010, // ta 0x10
    0x90102000, // clr %o0
    0x821020bc, // mov 0xbc, %g1
    0x91d02010, // ta 0x10
];
/// EF_SPARC_32PLUS: a V8+ binary (32-bit ABI on a V9 CPU), what qemu-sparc32plus runs.
pub const EF_SPARC_32PLUS: u32 = 0x100;
