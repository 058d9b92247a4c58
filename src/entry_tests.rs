use super::*;
use crate::arch;

const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

#[test]
fn parses_a_kernel_entry() {
    let e = parse_entry("qemu-aarch64", DEBIAN_AARCH64).unwrap();
    assert!(e.enabled && !e.is_own());
    assert_eq!(e.flags.to_string(), "POF");
    assert_eq!(
        e.interpreter,
        PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    );
    let a = arch::lookup("arm64").unwrap();
    assert!(e.same_format_as(a.magic, a.mask));
    assert!(e.matches_header(a.magic));
    assert!(!e.matches_header(arch::lookup("x86_64").unwrap().magic));
}

#[test]
fn parses_disabled_extension_entries() {
    let e = parse_entry(
        "py",
        "disabled\ninterpreter /usr/bin/python3\nflags: \nextension .py\n",
    )
    .unwrap();
    assert!(!e.enabled);
    assert_eq!(e.matcher, Matcher::Extension("py".into()));
    assert!(!e.matches_header(b"anything"));
}

#[test]
fn rejects_malformed_entries() {
    for bad in [
        "interpreter /x\nmagic 00\n",
        "enabled\nmagic 00\n",
        "enabled\ninterpreter /x\n",
        "enabled\ninterpreter /x\nmagic 0g\n",
    ] {
        assert!(parse_entry("x", bad).is_err(), "{bad:?}");
    }
}

/// A flag letter from a newer kernel must not make the entry (and so the whole listing that
/// `install` and `status` read) unparseable: the known flags hold, the rest is kept.
#[test]
fn unknown_flag_letters_are_kept_not_fatal() {
    for (shown, known, unknown) in [
        ("F", "F", ""),
        ("POCF", "POCF", ""),
        ("Z", "", "Z"),
        ("POFZ", "POF", "Z"),
        ("XFY", "F", "XY"),
        ("", "", ""),
    ] {
        let text = format!("enabled\ninterpreter /x\nflags: {shown}\noffset 0\nmagic 00\n");
        let e = parse_entry("x", &text).unwrap_or_else(|err| panic!("{shown:?}: {err}"));
        assert_eq!(e.flags.to_string(), known, "{shown:?}");
        assert_eq!(e.unknown_flags, unknown, "{shown:?}");
        assert_eq!(e.flag_letters(), format!("{known}{unknown}"), "{shown:?}");
    }
    // Registrations stay strict: binfmtd never writes a letter it does not know.
    assert!(Flags::parse("FZ").is_err());
}

#[test]
fn encodes_every_byte_escaped() {
    let a = arch::lookup("riscv64").unwrap();
    let flags = Flags::parse("PF").unwrap();
    let r = Registration::own(a, "/var/lib/binfmtd/qemu-riscv64".into(), flags);
    let s = String::from_utf8(r.encode().unwrap()).unwrap();
    assert!(
        s.starts_with(":binfmtd-riscv64:M::\\x7f\\x45\\x4c\\x46\\x02"),
        "{s}"
    );
    assert!(s.ends_with(":/var/lib/binfmtd/qemu-riscv64:PF"), "{s}");
    assert!(!s.contains('\0'));
    // The same bytes read back from the kernel realise the registration.
    let text = format!(
        "enabled\ninterpreter /var/lib/binfmtd/qemu-riscv64\nflags: PF\noffset 0\nmagic {}\nmask {}\n",
        hex(a.magic),
        hex(a.mask)
    );
    assert!(r.is_realised_by(&parse_entry("binfmtd-riscv64", &text).unwrap()));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn refuses_unsafe_registrations() {
    let a = arch::lookup("arm").unwrap();
    let ok = Registration::own(a, "/q/qemu-arm".into(), Flags::default());
    let mut cases = vec![];
    let mut r = ok.clone();
    r.interpreter = "/a:b/qemu".into();
    cases.push(r);
    let mut r = ok.clone();
    r.interpreter = "relative/qemu".into();
    cases.push(r);
    let mut r = ok.clone();
    r.interpreter = format!("/{}", "x".repeat(200)).into();
    cases.push(r);
    let mut r = ok.clone();
    r.name = "a/b".into();
    cases.push(r);
    let mut r = ok.clone();
    r.mask.pop();
    cases.push(r);
    for c in cases {
        assert!(c.encode().is_err(), "{c:?}");
    }
    assert!(ok.encode().is_ok());
}

#[test]
fn flags_round_trip_in_kernel_order() {
    for s in ["", "F", "PF", "POCF", "OCF", "OF"] {
        assert_eq!(Flags::parse(s).unwrap().to_string(), s);
    }
    assert_eq!(Flags::parse("FCOP").unwrap().to_string(), "POCF");
}
