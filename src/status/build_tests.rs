use super::*;
use crate::arch::lookup;
use crate::entry::{Flags, Matcher};

fn entry(name: &str, arch: &str, flags: &str, enabled: bool) -> Entry {
    let a = lookup(arch).unwrap();
    Entry {
        name: name.into(),
        enabled,
        interpreter: format!("/q/qemu-{arch}").into(),
        flags: Flags::parse(flags).unwrap(),
        unknown_flags: String::new(),
        matcher: Matcher::Magic {
            offset: 0,
            magic: a.magic.to_vec(),
            mask: a.mask.to_vec(),
        },
    }
}

fn proof(ran: bool, argv0: Option<Argv0Mode>) -> ProbeResult {
    ProbeResult {
        ok: ran && argv0 != Some(Argv0Mode::Shifted),
        argv0,
        detail: if ran {
            "ok".into()
        } else {
            "exec format error (ENOEXEC)".into()
        },
        millis: 1,
    }
}

fn row<'a>(s: &'a Status, arch: &str) -> &'a super::super::Format {
    s.formats.iter().find(|f| f.arch == arch).unwrap()
}

#[test]
fn states_follow_entries_and_proofs() {
    let mut obs = Observed {
        native: vec![lookup("x86_64").unwrap(), lookup("i386").unwrap()],
        entries: vec![
            entry("binfmtd-aarch64", "aarch64", "PF", true),
            entry("qemu-aarch64", "aarch64", "OPF", true),
            entry("qemu-riscv64", "riscv64", "OPF", true),
            entry("binfmtd-s390x", "s390x", "PF", true),
            entry("binfmtd-mips64el", "mips64el", "PF", false),
            entry("binfmtd-alpha", "alpha", "F", true),
            entry("qemu-i386", "i386", "F", true),
        ],
        ..Default::default()
    };
    obs.proofs
        .insert("aarch64", proof(true, Some(Argv0Mode::Preserved)));
    obs.proofs
        .insert("riscv64", proof(true, Some(Argv0Mode::Preserved)));
    obs.proofs
        .insert("s390x", proof(true, Some(Argv0Mode::Shifted)));
    obs.proofs
        .insert("i386", proof(true, Some(Argv0Mode::Replaced)));
    let s = build(lookup("x86_64").unwrap(), &obs);
    let cases = [
        ("x86_64", State::Native, None),
        ("aarch64", State::EmulatedWorking, Some("binfmtd")),
        ("riscv64", State::Foreign, Some("foreign")),
        ("s390x", State::RegisteredFailing, Some("binfmtd")),
        ("mips64el", State::RegisteredFailing, Some("binfmtd")),
        ("alpha", State::RegisteredUnproven, Some("binfmtd")),
        ("i386", State::RegisteredFailing, Some("foreign")),
        ("ppc64le", State::Absent, None),
    ];
    for (arch, state, owner) in cases {
        let f = row(&s, arch);
        assert_eq!((f.state, f.owner), (state, owner), "{arch}");
        assert_eq!(f.working, state.working(), "{arch}");
    }
    assert_eq!(row(&s, "aarch64").other_entries, vec!["qemu-aarch64"]);
    assert!(row(&s, "s390x")
        .reason
        .as_ref()
        .unwrap()
        .contains("shifted"));
    assert!(row(&s, "i386").reason.as_ref().unwrap().contains("hijacks"));
    assert!(s.summary.working.contains(&"riscv64") && s.summary.failing.contains(&"s390x"));
    assert!(!s.summary.failing.contains(&"ppc64le"));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["schema"], "binfmtd.status/v1");
    assert_eq!(json["formats"][2]["arch"], "x86_64");
    assert_eq!(json["formats"][2]["state"], "native");
    // The labels it implies: the hijacked native i386 and the failing s390x have none.
    let labels = json["labels"].as_object().unwrap();
    let want = serde_json::json!({
        "binfmtd.io/amd64": "native",
        "binfmtd.io/arm64": "emulated",
        "binfmtd.io/riscv64": "emulated",
    });
    assert_eq!(&serde_json::Value::Object(labels.clone()), &want);
    let table = super::super::table(&s);
    assert!(
        table.contains("emulated-working") && table.contains("Hint:"),
        "{table}"
    );
    assert!(
        table.contains(
            "node labels: binfmtd.io/amd64=native binfmtd.io/arm64=emulated binfmtd.io/riscv64=emulated"
        ),
        "{table}"
    );
}

#[test]
fn a_failing_foreign_entry_gets_a_reason_and_a_hint() {
    let mut obs = Observed {
        entries: vec![entry("qemu-aarch64", "aarch64", "OPF", true)],
        ..Default::default()
    };
    obs.proofs.insert("aarch64", proof(false, None));
    obs.interpreters.insert(
        "/q/qemu-aarch64".into(),
        InterpreterFacts {
            present: false,
            ..Default::default()
        },
    );
    let s = build(lookup("x86_64").unwrap(), &obs);
    let f = row(&s, "aarch64");
    assert_eq!(f.state, State::RegisteredFailing);
    let reason = f.reason.as_ref().unwrap();
    assert!(
        reason.contains("ENOEXEC") && reason.contains("does not exist"),
        "{reason}"
    );
    assert!(f.hint.as_ref().unwrap().contains("--replace-foreign"));
}

#[test]
fn an_undecided_compat_format_says_why_and_offers_no_install_hint() {
    let why = "cannot tell whether this host runs i386 natively (killed by SIGSYS)";
    let obs = Observed {
        native: vec![lookup("x86_64").unwrap()],
        native_unknown: vec![(lookup("i386").unwrap(), why.to_string())],
        ..Default::default()
    };
    let s = build(lookup("x86_64").unwrap(), &obs);
    assert_eq!(
        s.host.native_unknown.get("i386").map(String::as_str),
        Some(why)
    );
    let f = row(&s, "i386");
    assert_eq!(
        (f.state, f.reason.as_deref(), f.hint.as_deref()),
        (State::Absent, Some(why), None)
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["host"]["native_unknown"]["i386"], why);
    assert!(super::super::table(&s).contains(&format!("native: i386 UNKNOWN: {why}")));
}

/// An entry whose interpreter fails the trust rule is failing, whatever else is known, and
/// the reason names the entry, the file and why.
#[test]
fn an_untrusted_interpreter_fails_its_format() {
    let mut obs = Observed {
        native: vec![lookup("x86_64").unwrap()],
        entries: vec![entry("qemu-riscv64", "riscv64", "OPF", true)],
        ..Default::default()
    };
    let facts = InterpreterFacts {
        present: true,
        untrusted: Some("directory /q is owned by uid 1000, not root".into()),
        ..Default::default()
    };
    obs.interpreters.insert("/q/qemu-riscv64".into(), facts);
    assert!(untrusted_entry(lookup("riscv64").unwrap(), &obs));
    let s = build(lookup("x86_64").unwrap(), &obs);
    let f = row(&s, "riscv64");
    assert_eq!(f.state, State::RegisteredFailing);
    let why = f.reason.as_deref().unwrap();
    assert!(
        why.contains("qemu-riscv64") && why.contains("uid 1000"),
        "{why}"
    );
    assert!(f.hint.as_deref().unwrap().contains("--replace-foreign"));
}
