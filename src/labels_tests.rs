use super::*;
use crate::arch::{lookup, ARCHES};

fn format(arch: &str, state: State) -> Format {
    let a = lookup(arch).unwrap();
    Format {
        arch: a.qemu,
        platform: a.platform(),
        goarch: a.goarch,
        debian: a.debian,
        state,
        working: state.working(),
        owner: None,
        entry: None,
        other_entries: vec![],
        enabled: None,
        flags: None,
        interpreter: None,
        interpreter_present: None,
        sha256: None,
        qemu_version: None,
        source: None,
        probe: None,
        reason: None,
        hint: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn desired_labels_follow_states() {
    use State::*;
    let formats = [
        format("x86_64", Native),
        format("i386", Native),
        format("i486", Native),
        format("aarch64", EmulatedWorking),
        format("riscv64", Foreign),
        format("s390x", RegisteredFailing),
        format("alpha", RegisteredUnproven),
        format("ppc64le", Absent),
        format("sparc64", EmulatedWorking),
        format("loongarch64", EmulatedWorking),
        format("mipsel", EmulatedWorking),
    ];
    let got = desired(&formats, &Prefix::default());
    let want = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/386", "native"),
        ("binfmtd.io/i486", "native"),
        ("binfmtd.io/arm64", "emulated"),
        ("binfmtd.io/riscv64", "emulated"),
        ("binfmtd.io/sparc64", "emulated"),
        ("binfmtd.io/loong64", "emulated"),
        ("binfmtd.io/mipsle", "emulated"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn every_arch_has_a_distinct_valid_label_name() {
    let mut seen = std::collections::BTreeSet::new();
    for a in ARCHES {
        let f = format(a.qemu, State::EmulatedWorking);
        let name = arch_name(&f);
        assert!(valid_name(name), "{} -> {name}", a.qemu);
        assert!(seen.insert(name), "two arches share label name {name}");
    }
    for v in ["native", "emulated"] {
        assert!(valid_name(v));
    }
    // The GOARCH names Kubernetes uses, exactly.
    let k8s = [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("arm", "arm"),
        ("i386", "386"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("ppc64", "ppc64"),
        ("s390x", "s390x"),
        ("mips64el", "mips64le"),
        ("mips64", "mips64"),
        ("mipsel", "mipsle"),
        ("mips", "mips"),
        ("loongarch64", "loong64"),
    ];
    for (qemu, goarch) in k8s {
        assert_eq!(arch_name(&format(qemu, State::Native)), goarch, "{qemu}");
    }
}

#[test]
fn prefixes_are_validated() {
    let ok = [
        "binfmtd.io",
        "emulation.example.com",
        "a",
        "x-1.y2",
        "kubernetes.io.example.com",
    ];
    for p in ok {
        assert_eq!(Prefix::parse(p).unwrap().as_str(), p);
    }
    let bad = [
        ("", "empty"),
        ("Binfmtd.io", "lowercase"),
        ("binfmtd.io/", "lowercase"),
        ("binfmtd..io", "empty part"),
        (".binfmtd.io", "empty part"),
        ("-x.io", "starts or ends"),
        ("x-.io", "starts or ends"),
        ("under_score.io", "lowercase"),
    ];
    for (p, why) in bad {
        let err = Prefix::parse(p).unwrap_err().to_string();
        assert!(err.contains(why), "{p:?}: {err}");
        assert!(err.contains(&format!("'{p}'")), "{err}");
    }
    let long = format!("{}.io", "a".repeat(64));
    assert!(Prefix::parse(&long).unwrap_err().to_string().contains("63"));
    let longer = vec!["a".repeat(60); 5].join(".");
    assert!(Prefix::parse(&longer)
        .unwrap_err()
        .to_string()
        .contains("253"));
    for p in ["kubernetes.io", "node.kubernetes.io", "k8s.io", "x.k8s.io"] {
        assert_eq!(
            Prefix::parse(p),
            Err(LabelError::ReservedPrefix(p.to_string()))
        );
    }
}

#[test]
fn prefix_owns_only_its_own_keys() {
    let p = Prefix::default();
    assert!(p.owns("binfmtd.io/amd64"));
    assert!(!p.owns("binfmtd.io"));
    assert!(!p.owns("binfmtd.iox/amd64"));
    assert!(!p.owns("sub.binfmtd.io/amd64"));
    assert!(!p.owns("kubernetes.io/arch"));
}

#[test]
fn names_are_validated() {
    for n in ["amd64", "386", "aarch64_be", "a.b-c_d", "x"] {
        assert!(valid_name(n), "{n}");
    }
    for n in ["", "-a", "a-", "_a", "a/b", "a b", &"a".repeat(64)] {
        assert!(!valid_name(n), "{n}");
    }
}

#[test]
fn merge_patch_table() {
    let p = Prefix::default();
    struct Case {
        name: &'static str,
        current: &'static [(&'static str, &'static str)],
        desired: &'static [(&'static str, &'static str)],
        patch: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "steady state: no write",
            current: &[
                ("binfmtd.io/amd64", "native"),
                ("kubernetes.io/arch", "amd64"),
            ],
            desired: &[("binfmtd.io/amd64", "native")],
            patch: None,
        },
        Case {
            name: "empty node gets every label",
            current: &[],
            desired: &[
                ("binfmtd.io/amd64", "native"),
                ("binfmtd.io/arm64", "emulated"),
            ],
            patch: Some(
                r#"{"metadata":{"labels":{"binfmtd.io/amd64":"native","binfmtd.io/arm64":"emulated"}}}"#,
            ),
        },
        Case {
            name: "changed value is set, same one is left out",
            current: &[
                ("binfmtd.io/amd64", "native"),
                ("binfmtd.io/arm64", "native"),
            ],
            desired: &[
                ("binfmtd.io/amd64", "native"),
                ("binfmtd.io/arm64", "emulated"),
            ],
            patch: Some(r#"{"metadata":{"labels":{"binfmtd.io/arm64":"emulated"}}}"#),
        },
        Case {
            name: "stale key under the prefix is deleted",
            current: &[
                ("binfmtd.io/amd64", "native"),
                ("binfmtd.io/mips", "emulated"),
            ],
            desired: &[("binfmtd.io/amd64", "native")],
            patch: Some(r#"{"metadata":{"labels":{"binfmtd.io/mips":null}}}"#),
        },
        Case {
            name: "nothing desired deletes only our keys",
            current: &[
                ("binfmtd.io/arm64", "emulated"),
                ("binfmtd.io-other/arm64", "x"),
                ("other.io/arm64", "emulated"),
                ("sub.binfmtd.io/arm64", "y"),
            ],
            desired: &[],
            patch: Some(r#"{"metadata":{"labels":{"binfmtd.io/arm64":null}}}"#),
        },
        Case {
            name: "foreign keys never appear",
            current: &[("kubernetes.io/arch", "amd64"), ("team", "a")],
            desired: &[],
            patch: None,
        },
    ];
    for c in cases {
        let got = merge_patch(&labels(c.current), &labels(c.desired), &p);
        let want: Option<Value> = c.patch.map(|s| serde_json::from_str(s).unwrap());
        assert_eq!(got, want, "{}", c.name);
    }
}

#[test]
fn owned_keeps_only_prefixed_keys() {
    let current = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("kubernetes.io/arch", "amd64"),
    ]);
    assert_eq!(
        owned(&current, &Prefix::default()),
        labels(&[("binfmtd.io/amd64", "native")])
    );
}
