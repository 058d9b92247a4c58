use super::*;
use crate::placement::test_support::*;

struct Row {
    case: &'static str,
    pod: Pod,
    images: BTreeMap<String, PlatformSet>,
    nodes: Vec<NodeCaps>,
    outcome: Outcome,
    /// (container, init, index, new image)
    rewrites: Vec<(&'static str, bool, usize, String)>,
    message: &'static [&'static str],
}

fn multi() -> PlatformSet {
    index(&[("amd64", '1'), ("arm64", '2')])
}

fn amd_only() -> PlatformSet {
    index(&[("amd64", 'a')])
}

fn rows() -> Vec<Row> {
    let app = |img: &str| pod(&[], &[("app", img)]);
    vec![
        Row { case: "multi-arch index covers the mixed cluster", pod: app("nginx:1"), images: images(&[("nginx:1", multi())]), nodes: mixed(),
              outcome: Outcome::Covered { arches: vec!["amd64", "arm64"] }, rewrites: vec![], message: &["the images offer every node's architecture (amd64, arm64): nothing changed"] },
        Row { case: "amd64-only index with attestation: placed and pinned", pod: app("reg.io:5000/app:1"), images: images(&[("reg.io:5000/app:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("reg.io:5000/app@{}", d('a')))],
              message: &["runs amd64; image reg.io:5000/app:1 has no arm64: may run emulated on nodes that emulate amd64; native preferred", "; container app pinned to the amd64 manifest (reg.io:5000/app@sha256:aaaa"] },
        Row { case: "single-platform amd64 manifest: placed, not pinned", pod: app("app:1"), images: images(&[("app:1", single("amd64", '5'))]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![], message: &["runs amd64; image app:1 has no arm64: may run emulated"] },
        Row { case: "arm64-only index, nobody emulates arm64: natives only, no pin", pod: app("a:1"), images: images(&[("a:1", index(&[("arm64", 'b')]))]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "arm64" }, rewrites: vec![], message: &["runs arm64; image a:1 has no amd64: runs only on nodes that run arm64 natively (no node emulates arm64)"] },
        Row { case: "amd64-only init container pins only the init container", pod: pod(&[("setup", "tool:2")], &[("app", "nginx:1")]),
              images: images(&[("tool:2", amd_only()), ("nginx:1", multi())]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("setup", true, 0, format!("tool@{}", d('a')))], message: &["image tool:2 has no arm64", "container setup pinned"] },
        Row { case: "second container pinned at its own index", pod: pod(&[("i", "nginx:1")], &[("side", "nginx:1"), ("app", "old:1")]),
              images: images(&[("old:1", amd_only()), ("nginx:1", multi())]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 1, format!("old@{}", d('a')))], message: &["image old:1 has no arm64"] },
        Row { case: "same image in two containers: both pinned", pod: pod(&[("init", "old:1")], &[("app", "old:1")]),
              images: images(&[("old:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("init", true, 0, format!("old@{}", d('a'))), ("app", false, 0, format!("old@{}", d('a')))], message: &["runs amd64; image old:1 has no arm64:"] },
        Row { case: "index already named by its digest is re-pinned", pod: app(&format!("ghcr.io/o/a@{}", d('f'))), images: images(&[(&format!("ghcr.io/o/a@{}", d('f')), amd_only())]), nodes: mixed(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("ghcr.io/o/a@{}", d('a')))], message: &["pinned"] },
        Row { case: "nodeSelector on kubernetes.io/arch", pod: with_selector(app("old:1"), "kubernetes.io/arch", "amd64"), images: images(&[("old:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Constrained { key: "kubernetes.io/arch".into() }, rewrites: vec![], message: &["the pod already constrains kubernetes.io/arch: nothing changed"] },
        Row { case: "nodeSelector on the beta arch label", pod: with_selector(app("old:1"), "beta.kubernetes.io/arch", "amd64"), images: images(&[("old:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Constrained { key: "beta.kubernetes.io/arch".into() }, rewrites: vec![], message: &["constrains beta.kubernetes.io/arch"] },
        Row { case: "required affinity on a binfmtd.io label", pod: with_required(app("old:1"), vec![term(vec![expr("zone", "In", &["a"])]), term(vec![expr("binfmtd.io/amd64", "Exists", &[])])]),
              images: images(&[("old:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Constrained { key: "binfmtd.io/amd64".into() }, rewrites: vec![], message: &["constrains binfmtd.io/amd64"] },
        Row { case: "nodeSelector on another label is no arch constraint", pod: with_selector(app("old:1"), "pool", "batch"), images: images(&[("old:1", amd_only())]),
              nodes: mixed().into_iter().map(|n| labelled(n, "pool", "batch")).collect(),
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("old@{}", d('a')))], message: &["native preferred"] },
        Row { case: "nodeSelector picks the amd64 pool: the image covers it", pod: with_selector(app("old:1"), "pool", "x86"), images: images(&[("old:1", amd_only())]),
              nodes: vec![labelled(caps("amd", "amd64", &[], true), "pool", "x86"), labelled(caps("arm-emu", "arm64", &["amd64"], true), "pool", "batch"), caps("arm", "arm64", &[], true)],
              outcome: Outcome::Covered { arches: vec!["amd64"] }, rewrites: vec![], message: &["the images offer every node's architecture (amd64)"] },
        Row { case: "arm64 nodes tainted, not tolerated: the image covers the rest", pod: app("old:1"), images: images(&[("old:1", amd_only())]),
              nodes: vec![caps("amd", "amd64", &[], true), tainted(caps("arm-emu", "arm64", &["amd64"], true), "arch", Some("arm64"), "NoSchedule"), tainted(caps("arm", "arm64", &[], true), "arch", Some("arm64"), "NoSchedule")],
              outcome: Outcome::Covered { arches: vec!["amd64"] }, rewrites: vec![], message: &["(amd64): nothing changed"] },
        Row { case: "arm64 taint tolerated: placed and pinned", pod: tolerating(app("old:1"), Some("arch"), "Equal", Some("arm64"), None), images: images(&[("old:1", amd_only())]),
              nodes: vec![caps("amd", "amd64", &[], true), tainted(caps("arm-emu", "arm64", &["amd64"], true), "arch", Some("arm64"), "NoSchedule")],
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("old@{}", d('a')))], message: &["may run emulated on nodes that emulate amd64"] },
        Row { case: "only emulators eligible: placed there", pod: with_selector(app("old:1"), "pool", "graviton"), images: images(&[("old:1", amd_only())]),
              nodes: vec![caps("amd", "amd64", &[], true), labelled(caps("arm-emu", "arm64", &["amd64"], true), "pool", "graviton"), labelled(caps("arm", "arm64", &[], true), "pool", "graviton")],
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("old@{}", d('a')))], message: &["runs amd64; image old:1 has no arm64: may run emulated"] },
        Row { case: "own required term excludes every node", pod: with_required(app("old:1"), vec![term(vec![expr("zone", "In", &["z9"])])]), images: images(&[("old:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::NoNodes, rewrites: vec![], message: &["no node the pod may run on reports a known kubernetes.io/arch: nothing changed"] },
        Row { case: "no common arch between init and main", pod: pod(&[("i", "x:1")], &[("app", "y:1")]), images: images(&[("x:1", amd_only()), ("y:1", index(&[("arm64", 'b')]))]), nodes: mixed(),
              outcome: Outcome::NoCommonArch, rewrites: vec![], message: &["the images share no architecture (x:1: amd64; y:1: arm64): nothing changed"] },
        Row { case: "windows-only image offers no Linux arch", pod: app("win:1"), images: images(&[("win:1", PlatformSet { kind: Kind::Index, entries: vec![], ignored: 0 })]), nodes: mixed(),
              outcome: Outcome::NoCommonArch, rewrites: vec![], message: &["win:1: no Linux architecture binfmtd knows"] },
        Row { case: "riscv64 image, no node runs or emulates it", pod: app("rv:1"), images: images(&[("rv:1", index(&[("riscv64", 'c')]))]), nodes: mixed(),
              outcome: Outcome::NoCapableNode { common: vec!["riscv64"] }, rewrites: vec![], message: &["the images share riscv64 but no node runs or emulates it: nothing changed"] },
        Row { case: "riscv64 image, one arm64 node emulates it", pod: app("rv:1"), images: images(&[("rv:1", index(&[("riscv64", 'c')]))]),
              nodes: vec![caps("amd", "amd64", &[], true), caps("arm-rv", "arm64", &["riscv64", "amd64"], true)],
              outcome: Outcome::Placed { arch: "riscv64" }, rewrites: vec![("app", false, 0, format!("rv@{}", d('c')))], message: &["runs riscv64; image rv:1 has no amd64, arm64: may run emulated on nodes that emulate riscv64"] },
        Row { case: "most native nodes win", pod: app("m:1"), images: images(&[("m:1", multi())]),
              nodes: vec![caps("a", "amd64", &[], true), caps("b1", "arm64", &[], true), caps("b2", "arm64", &[], true), caps("z", "s390x", &[], true)],
              outcome: Outcome::Placed { arch: "arm64" }, rewrites: vec![], message: &["runs arm64; image m:1 has no s390x: runs only on nodes that run arm64 natively"] },
        Row { case: "equal natives: more emulators win", pod: app("m:1"), images: images(&[("m:1", multi())]),
              nodes: vec![caps("a", "amd64", &[], true), caps("b", "arm64", &[], true), caps("z", "s390x", &["arm64"], true)],
              outcome: Outcome::Placed { arch: "arm64" }, rewrites: vec![("app", false, 0, format!("m@{}", d('2')))], message: &["may run emulated on nodes that emulate arm64"] },
        Row { case: "full tie: by name", pod: app("m:1"), images: images(&[("m:1", multi())]),
              nodes: vec![caps("b", "arm64", &[], true), caps("a", "amd64", &[], true), caps("z", "s390x", &[], true)],
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![], message: &["runs amd64"] },
        Row { case: "image platforms not resolved", pod: pod(&[], &[("a", "x:1"), ("b", "missing:1")]), images: images(&[("x:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::Unresolved { image: "missing:1".into() }, rewrites: vec![], message: &["the platforms of image missing:1 are unknown: nothing changed"] },
        Row { case: "no node reports an arch", pod: app("x:1"), images: images(&[("x:1", amd_only())]), nodes: vec![caps("weird", "wasm", &["amd64"], false)],
              outcome: Outcome::NoNodes, rewrites: vec![], message: &["no node the pod may run on reports a known kubernetes.io/arch"] },
        Row { case: "reference that cannot be pinned", pod: app("Bad/Name:1"), images: images(&[("Bad/Name:1", amd_only())]), nodes: mixed(),
              outcome: Outcome::BadReference { image: "Bad/Name:1".into(), why: "each path component must be lowercase letters and digits, joined by '.', '_', '__' or '-'" }, rewrites: vec![], message: &["image Bad/Name:1 cannot be pinned"] },
        Row { case: "own terms and a native node without binfmtd labels", pod: with_required(app("old:1"), vec![term(vec![expr("zone", "In", &["a"])])]), images: images(&[("old:1", amd_only())]),
              nodes: vec![labelled(caps("amd-plain", "amd64", &[], false), "zone", "a"), labelled(caps("arm-emu", "arm64", &["amd64"], true), "zone", "a"), caps("arm-elsewhere", "arm64", &["amd64"], true)],
              outcome: Outcome::Placed { arch: "amd64" }, rewrites: vec![("app", false, 0, format!("old@{}", d('a')))], message: &["the pod's own node affinity terms leave out nodes without binfmtd.io/amd64: amd-plain"] },
    ]
}

#[test]
fn the_decision_table() {
    let prefix = Prefix::default();
    for r in rows() {
        let got = decide(&r.pod, &r.images, &r.nodes, &prefix);
        assert_eq!(got.outcome, r.outcome, "{}: {}", r.case, got.message);
        let rewrites: Vec<_> = got
            .changes
            .iter()
            .flat_map(|c| &c.rewrites)
            .map(|w| (w.container.as_str(), w.init, w.index, w.to.clone()))
            .collect();
        assert_eq!(rewrites, r.rewrites, "{}", r.case);
        for part in r.message {
            assert!(
                got.message.contains(part),
                "{}: message {:?} lacks {part:?}",
                r.case,
                got.message
            );
        }
        assert_eq!(
            got.changes.is_some(),
            matches!(r.outcome, Outcome::Placed { .. }),
            "{}",
            r.case
        );
        if let Some(c) = &got.changes {
            for w in &c.rewrites {
                let idx = r.pod.spec.as_ref().unwrap();
                let list = if w.init {
                    idx.init_containers.as_ref().unwrap()
                } else {
                    &idx.containers
                };
                assert_eq!(
                    list[w.index].image.as_deref(),
                    Some(w.from.as_str()),
                    "{}: rewrite points at its container",
                    r.case
                );
            }
        }
    }
}

#[test]
fn outcome_labels_are_distinct_metric_values() {
    let all = [
        Outcome::Covered { arches: vec![] },
        Outcome::Constrained { key: String::new() },
        Outcome::Placed { arch: "amd64" },
        Outcome::NoCommonArch,
        Outcome::NoCapableNode { common: vec![] },
        Outcome::Unresolved {
            image: String::new(),
        },
        Outcome::BadReference {
            image: String::new(),
            why: "",
        },
        Outcome::NoNodes,
    ];
    let labels: BTreeSet<_> = all.iter().map(Outcome::label).collect();
    assert_eq!(labels.len(), all.len());
    assert!(labels
        .iter()
        .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn another_label_prefix_is_used_and_binfmtd_io_is_not_a_constraint() {
    let prefix: Prefix = "emu.example.com".parse().unwrap();
    let p = with_selector(
        pod(&[], &[("app", "old:1")]),
        "binfmtd.io/amd64",
        "emulated",
    );
    let got = decide(&p, &images(&[("old:1", amd_only())]), &mixed(), &prefix);
    assert_eq!(
        got.outcome,
        Outcome::Placed { arch: "amd64" },
        "{}",
        got.message
    );
    let terms = affinity::required_terms(Some(&got.changes.as_ref().unwrap().affinity));
    assert_eq!(
        terms[1].match_expressions.as_ref().unwrap()[0].key,
        "emu.example.com/amd64"
    );
    let p = with_selector(
        pod(&[], &[("app", "old:1")]),
        "emu.example.com/amd64",
        "emulated",
    );
    let got = decide(&p, &images(&[("old:1", amd_only())]), &mixed(), &prefix);
    assert_eq!(
        got.outcome,
        Outcome::Constrained {
            key: "emu.example.com/amd64".into()
        }
    );
}
