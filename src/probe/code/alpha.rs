//! Alpha (with the BWX byte loads/stores every EV56+ CPU has). callsys with v0 =
//! write(4) / exit_group(405); arguments in a0..a2. sp points at argc. D is addressed
//! absolutely (ldah/lda of BASE + 0x80). Register names as objdump prints them.

#[rustfmt::skip]
pub const ALPHA: &[u32] = &[
    0x253f0040, // ldah s0,64
    0x21290080, // lda s0,128(s0) ; s0 = D
    0xa55e0000, // ldq s1,0(sp) ; argc
    0xa57e0008, // ldq s2,8(sp) ; argv[0]
    0x296b0000, // ldbu s2,0(s2)
    0x4940968c, // srl s1,0x4,s3
    0x4581f00c, // and s3,0xf,s3
    0x412c040c, // addq s0,s3,s3
    0x298c0000, // ldbu s3,0(s3)
    0x39890027, // stb s3,39(s0)
    0x4541f00c, // and s1,0xf,s3
    0x412c040c, // addq s0,s3,s3
    0x298c0000, // ldbu s3,0(s3)
    0x39890028, // stb s3,40(s0)
    0x4960968c, // srl s2,0x4,s3
    0x412c040c, // addq s0,s3,s3
    0x298c0000, // ldbu s3,0(s3)
    0x39890030, // stb s3,48(s0)
    0x4561f00c, // and s2,0xf,s3
    0x412c040c, // addq s0,s3,s3
    0x298c0000, // ldbu s3,0(s3)
    0x39890031, // stb s3,49(s0)
    0x221f0001, // lda a0,1
    0x22290014, // lda a1,20(s0)
    0xa2490010, // ldl a2,16(s0)
    0x201f0004, // lda v0,4
    0x00000083, // callsys
    0x221f0000, // lda a0,0
    0x201f0195, // lda v0,405
    0x00000083, // callsys
];
