use super::*;

#[test]
fn every_user_facing_name_resolves() {
    let cases = [
        ("aarch64", "aarch64"),
        ("linux/arm64", "aarch64"),
        ("ARM64", "aarch64"),
        ("linux/arm/v7", "arm"),
        ("armhf", "arm"),
        ("armel", "arm"),
        ("386", "i386"),
        ("linux/386", "i386"),
        ("amd64", "x86_64"),
        ("mips64le", "mips64el"),
        ("mips64el", "mips64el"),
        ("loong64", "loongarch64"),
        ("linux/loong64", "loongarch64"),
        ("ppc64el", "ppc64le"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/riscv64", "riscv64"),
        ("mipsle", "mipsel"),
        ("s390x", "s390x"),
    ];
    for (name, qemu) in cases {
        assert_eq!(lookup(name).unwrap().qemu, qemu, "{name}");
    }
}

#[test]
fn names_are_unique_across_rows() {
    let mut seen = std::collections::HashMap::new();
    for a in ARCHES {
        for n in a.names() {
            if let Some(prev) = seen.insert(n, a.qemu).filter(|p| *p != a.qemu) {
                panic!("{n} names both {prev} and {}", a.qemu);
            }
        }
    }
}

#[test]
fn unknown_name_suggests_close_ones() {
    let err = lookup("arm46").unwrap_err();
    assert!(err.suggestions.contains(&"arm64"), "{err}");
    assert!(err.to_string().contains("unknown architecture \"arm46\""));
    let err = lookup("riscv").unwrap_err();
    assert!(
        err.suggestions.iter().any(|s| s.starts_with("riscv")),
        "{err}"
    );
}

#[test]
fn list_expands_all_and_folds_duplicates() {
    assert_eq!(lookup_list("all").unwrap().len(), ARCHES.len());
    let l = lookup_list("arm64, aarch64,linux/arm64,riscv64").unwrap();
    assert_eq!(
        l.iter().map(|a| a.qemu).collect::<Vec<_>>(),
        ["aarch64", "riscv64"]
    );
    assert!(lookup_list("arm64,nope").is_err());
}

#[test]
fn elf_facts_follow_from_the_magic() {
    let cases = [
        ("x86_64", 62, ElfClass::Elf64, Endian::Little),
        ("i386", 3, ElfClass::Elf32, Endian::Little),
        ("aarch64", 183, ElfClass::Elf64, Endian::Little),
        ("aarch64_be", 183, ElfClass::Elf64, Endian::Big),
        ("arm", 40, ElfClass::Elf32, Endian::Little),
        ("s390x", 22, ElfClass::Elf64, Endian::Big),
        ("ppc64le", 21, ElfClass::Elf64, Endian::Little),
        ("riscv64", 243, ElfClass::Elf64, Endian::Little),
        ("loongarch64", 258, ElfClass::Elf64, Endian::Little),
        ("mips64el", 8, ElfClass::Elf64, Endian::Little),
        ("hppa", 15, ElfClass::Elf32, Endian::Big),
    ];
    for (q, m, c, e) in cases {
        let a = lookup(q).unwrap();
        assert_eq!(
            (a.elf_machine(), a.elf_class(), a.endian()),
            (m, c, e),
            "{q}"
        );
    }
}

#[test]
fn magic_matching_is_exact_and_unambiguous() {
    for a in ARCHES {
        assert_eq!(a.magic.len(), a.mask.len(), "{}", a.qemu);
        assert!(a.magic.len() <= 128, "{}", a.qemu);
        assert!(a.matches(a.magic), "{} must match its own magic", a.qemu);
        let others: Vec<_> = ARCHES
            .iter()
            .filter(|b| b.qemu != a.qemu && b.matches(a.magic))
            .map(|b| b.qemu)
            .collect();
        assert!(
            others.is_empty(),
            "{} magic also matches {others:?}",
            a.qemu
        );
    }
    let mut hdr = lookup("aarch64").unwrap().magic.to_vec();
    hdr[16] = 3; // ET_DYN still matches: the mask's 0xfe on e_type
    assert_eq!(from_header(&hdr).unwrap().qemu, "aarch64");
    hdr[18] = 0x3e;
    assert_eq!(from_header(&hdr).unwrap().qemu, "x86_64");
    assert!(from_header(b"\x7fELF").is_none());
}

#[test]
fn host_is_in_table() {
    assert_eq!(host().qemu, std::env::consts::ARCH);
}
