use super::*;

#[test]
fn elf_kind_separates_programs_from_libraries() {
    assert_eq!(elf_kind(elf::ET_DYN, true, 0), ElfKind::PieExecutable);
    assert_eq!(
        elf_kind(elf::ET_DYN, false, u64::from(elf::DF_1_PIE)),
        ElfKind::StaticPie
    );
    assert_eq!(elf_kind(elf::ET_DYN, false, 0), ElfKind::SharedLibrary);
    assert!(!ElfKind::Relocatable.is_program());
}

#[test]
fn abi_names_arm_float_convention_and_mips_n32() {
    let mut head = [0u8; 16];
    assert_eq!(
        abi(&head, elf::EM_ARM, ElfClass::Elf32, 0x0500_0400),
        "SYSV, EABI5 hard-float"
    );
    assert_eq!(
        abi(&head, elf::EM_MIPS, ElfClass::Elf32, elf::EF_MIPS_ABI2),
        "SYSV, n32"
    );
    head[EI_OSABI] = elf::ELFOSABI_GNU;
    assert_eq!(
        abi(&head, elf::EM_RISCV, ElfClass::Elf64, 0x5),
        "GNU/Linux, lp64d"
    );
}
