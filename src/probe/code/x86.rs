//! x86_64 and i386. Variable-length instructions, so the code is a byte string.
//! Registers on entry: rsp/esp points at argc, then the argv pointers.

/// x86_64: syscall numbers write=1, exit_group=231; arguments in rdi, rsi, rdx.
#[rustfmt::skip]
pub const X86_64: &[u8] = &[
    0x48, 0x8d, 0x35, 0x79, 0xff, 0xff, 0xff, // lea   rsi, [rip - 0x87]    ; rsi = D
    0x8b, 0x04, 0x24,                         // mov   eax, [rsp]           ; argc
    0x48, 0x8b, 0x4c, 0x24, 0x08,             // mov   rcx, [rsp + 8]       ; argv[0]
    0x0f, 0xb6, 0x09,                         // movzx ecx, byte [rcx]      ; argv[0][0]
    0x89, 0xc2,                               // mov   edx, eax
    0xc1, 0xea, 0x04,                         // shr   edx, 4
    0x83, 0xe2, 0x0f,                         // and   edx, 15
    0x8a, 0x14, 0x16,                         // mov   dl, [rsi + rdx]      ; hex digit
    0x88, 0x56, 0x27,                         // mov   [rsi + 0x27], dl
    0x83, 0xe0, 0x0f,                         // and   eax, 15
    0x8a, 0x04, 0x06,                         // mov   al, [rsi + rax]
    0x88, 0x46, 0x28,                         // mov   [rsi + 0x28], al
    0x89, 0xca,                               // mov   edx, ecx
    0xc1, 0xea, 0x04,                         // shr   edx, 4
    0x8a, 0x14, 0x16,                         // mov   dl, [rsi + rdx]
    0x88, 0x56, 0x30,                         // mov   [rsi + 0x30], dl
    0x83, 0xe1, 0x0f,                         // and   ecx, 15
    0x8a, 0x0c, 0x0e,                         // mov   cl, [rsi + rcx]
    0x88, 0x4e, 0x31,                         // mov   [rsi + 0x31], cl
    0x8b, 0x56, 0x10,                         // mov   edx, [rsi + 0x10]    ; length
    0x48, 0x83, 0xc6, 0x14,                   // add   rsi, 0x14            ; message
    0xbf, 0x01, 0x00, 0x00, 0x00,             // mov   edi, 1               ; stdout
    0xb8, 0x01, 0x00, 0x00, 0x00,             // mov   eax, 1               ; write
    0x0f, 0x05,                               // syscall
    0x31, 0xff,                               // xor   edi, edi
    0xb8, 0xe7, 0x00, 0x00, 0x00,             // mov   eax, 231             ; exit_group
    0x0f, 0x05,                               // syscall
];

/// i386 (and i486): int 0x80 with write=4, exit_group=252; arguments in ebx, ecx, edx.
/// D is addressed absolutely (BASE + 0x80): i386 has no PC-relative data addressing.
#[rustfmt::skip]
pub const I386: &[u8] = &[
    0xbe, 0x80, 0x00, 0x40, 0x00,             // mov   esi, 0x400080        ; esi = D
    0x8b, 0x04, 0x24,                         // mov   eax, [esp]           ; argc
    0x8b, 0x4c, 0x24, 0x04,                   // mov   ecx, [esp + 4]       ; argv[0]
    0x0f, 0xb6, 0x09,                         // movzx ecx, byte [ecx]
    0x89, 0xc2,                               // mov   edx, eax
    0xc1, 0xea, 0x04,                         // shr   edx, 4
    0x83, 0xe2, 0x0f,                         // and   edx, 15
    0x8a, 0x14, 0x16,                         // mov   dl, [esi + edx]
    0x88, 0x56, 0x27,                         // mov   [esi + 0x27], dl
    0x83, 0xe0, 0x0f,                         // and   eax, 15
    0x8a, 0x04, 0x06,                         // mov   al, [esi + eax]
    0x88, 0x46, 0x28,                         // mov   [esi + 0x28], al
    0x89, 0xca,                               // mov   edx, ecx
    0xc1, 0xea, 0x04,                         // shr   edx, 4
    0x8a, 0x14, 0x16,                         // mov   dl, [esi + edx]
    0x88, 0x56, 0x30,                         // mov   [esi + 0x30], dl
    0x83, 0xe1, 0x0f,                         // and   ecx, 15
    0x8a, 0x0c, 0x0e,                         // mov   cl, [esi + ecx]
    0x88, 0x4e, 0x31,                         // mov   [esi + 0x31], cl
    0x8b, 0x56, 0x10,                         // mov   edx, [esi + 0x10]    ; length
    0x8d, 0x4e, 0x14,                         // lea   ecx, [esi + 0x14]    ; message
    0xbb, 0x01, 0x00, 0x00, 0x00,             // mov   ebx, 1               ; stdout
    0xb8, 0x04, 0x00, 0x00, 0x00,             // mov   eax, 4               ; write
    0xcd, 0x80,                               // int   0x80
    0x31, 0xdb,                               // xor   ebx, ebx
    0xb8, 0xfc, 0x00, 0x00, 0x00,             // mov   eax, 252             ; exit_group
    0xcd, 0x80,                               // int   0x80
];
