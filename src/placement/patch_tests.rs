use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorTerm, PodAffinity, PodSchedulingGate, PreferredSchedulingTerm,
};
use serde_json::{json, Value};

use super::*;
use crate::placement::affinity::{self, NATIVE_WEIGHT};
use crate::placement::decide::decide;
use crate::placement::nodes::NodeCaps;
use crate::placement::test_support::*;

/// RFC 6902 for the operations `patch` emits (add, replace, remove, test), applied the way
/// the API server applies them: a failed `test` or a missing path fails the whole patch.
fn apply(doc: &Value, ops: &[Value]) -> Result<Value, String> {
    let mut doc = doc.clone();
    for op in ops {
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op.get("value").cloned();
        match op["op"].as_str().unwrap() {
            "test" => {
                if doc.pointer(path) != value.as_ref() {
                    return Err(format!("test failed at {path}"));
                }
            }
            kind => {
                let target = doc
                    .pointer_mut(parent)
                    .ok_or(format!("no parent {parent}"))?;
                match (kind, target) {
                    ("add" | "replace", Value::Object(m)) => {
                        if kind == "replace" && !m.contains_key(&last) {
                            return Err(format!("replace of missing {path}"));
                        }
                        m.insert(last, value.unwrap());
                    }
                    ("add", Value::Array(a)) if last == "-" => a.push(value.unwrap()),
                    ("replace", Value::Array(a)) => {
                        *a.get_mut(last.parse::<usize>().unwrap()).ok_or("index")? = value.unwrap()
                    }
                    ("remove", Value::Array(a)) => {
                        let i: usize = last.parse().unwrap();
                        if i >= a.len() {
                            return Err(format!("remove past the end at {path}"));
                        }
                        a.remove(i);
                    }
                    (k, t) => return Err(format!("{k} on {t} at {path}")),
                }
            }
        }
    }
    Ok(doc)
}

fn applied(p: &Pod, ops: &[Value]) -> Pod {
    serde_json::from_value(apply(&serde_json::to_value(p).unwrap(), ops).unwrap()).unwrap()
}

fn gates(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .unwrap()
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.clone())
        .collect()
}

fn images_of(p: &Pod) -> Vec<String> {
    let s = p.spec.as_ref().unwrap();
    s.init_containers
        .iter()
        .flatten()
        .chain(&s.containers)
        .map(|c| c.image.clone().unwrap())
        .collect()
}

#[test]
fn placed_pod_end_to_end() {
    let prefix = Prefix::default();
    let p = pod(&[("setup", "tool:2")], &[("app", "reg.io:5000/app:1")]);
    let imgs = images(&[
        ("tool:2", index(&[("amd64", '6'), ("arm64", '7')])),
        ("reg.io:5000/app:1", index(&[("amd64", 'a')])),
    ]);
    let dec = decide(&p, &imgs, &mixed(), &prefix);
    let ops = patch(&p, &dec, &prefix);
    assert_eq!(ops[0]["path"], "/spec/affinity");
    assert_eq!(
        ops[1],
        json!({"op": "test", "path": "/spec/containers/0/image", "value": "reg.io:5000/app:1"})
    );
    assert_eq!(ops[2]["op"], "replace");
    assert_eq!(
        ops[3],
        json!({"op": "add", "path": "/metadata/annotations", "value": {"binfmtd.io/original-images": "{\"app\":\"reg.io:5000/app:1\"}"}})
    );
    assert_eq!(
        ops[4],
        json!({"op": "test", "path": "/spec/schedulingGates/0/name", "value": "binfmtd.io/placement"})
    );
    assert_eq!(
        ops[5],
        json!({"op": "remove", "path": "/spec/schedulingGates/0"})
    );
    let out = applied(&p, &ops);
    assert_eq!(
        images_of(&out),
        ["tool:2".to_string(), format!("reg.io:5000/app@{}", d('a'))]
    );
    assert!(gates(&out).is_empty());
    let na = out.spec.unwrap().affinity.unwrap().node_affinity.unwrap();
    let want = json!({
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]},
            {"matchExpressions": [{"key": "binfmtd.io/amd64", "operator": "In", "values": ["emulated"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}}]});
    assert_eq!(serde_json::to_value(&na).unwrap(), want);
}

#[test]
fn unchanged_decisions_only_lift_the_gate() {
    let prefix = Prefix::default();
    let mut p = pod(&[], &[("app", "nginx:1")]);
    p.spec.as_mut().unwrap().scheduling_gates = Some(vec![
        PodSchedulingGate {
            name: "other.io/x".into(),
        },
        PodSchedulingGate { name: GATE.into() },
    ]);
    let imgs = images(&[("nginx:1", index(&[("amd64", '1'), ("arm64", '2')]))]);
    let dec = decide(&p, &imgs, &mixed(), &prefix);
    let ops = patch(&p, &dec, &prefix);
    assert_eq!(
        ops,
        vec![
            json!({"op": "test", "path": "/spec/schedulingGates/1/name", "value": "binfmtd.io/placement"}),
            json!({"op": "remove", "path": "/spec/schedulingGates/1"}),
        ]
    );
    assert_eq!(
        gates(&applied(&p, &ops)),
        ["other.io/x"],
        "another component's gate stays"
    );
    p.spec.as_mut().unwrap().scheduling_gates = None;
    assert!(
        patch(&p, &dec, &prefix).is_empty(),
        "no gate, nothing to do"
    );
}

#[test]
fn stale_patch_fails_instead_of_hitting_the_wrong_container_or_gate() {
    let prefix = Prefix::default();
    let p = pod(&[], &[("app", "old:1")]);
    let dec = decide(
        &p,
        &images(&[("old:1", index(&[("amd64", 'a')]))]),
        &mixed(),
        &prefix,
    );
    let ops = patch(&p, &dec, &prefix);
    let mut moved = p.clone();
    moved.spec.as_mut().unwrap().containers[0].image = Some("other:9".into());
    assert!(apply(&serde_json::to_value(&moved).unwrap(), &ops)
        .unwrap_err()
        .contains("test failed"));
    let mut regated = p.clone();
    regated.spec.as_mut().unwrap().scheduling_gates = Some(vec![PodSchedulingGate {
        name: "other.io/x".into(),
    }]);
    assert!(apply(&serde_json::to_value(&regated).unwrap(), &ops)
        .unwrap_err()
        .contains("test failed"));
}

#[test]
fn annotation_merges_with_existing_ones() {
    let prefix: Prefix = "emu.example.com".parse().unwrap();
    let mut p = pod(&[], &[("app", "old:1"), ("side", "new:1")]);
    let earlier = json!({"side": "first:0"}).to_string();
    p.metadata.annotations = Some(BTreeMap::from([
        ("team".into(), "x".into()),
        ("emu.example.com/original-images".into(), earlier),
    ]));
    let nodes = vec![
        caps("a", "amd64", &[], true),
        caps("b", "arm64", &["amd64"], true),
    ];
    let dec = decide(
        &p,
        &images(&[
            ("old:1", index(&[("amd64", 'a')])),
            ("new:1", index(&[("amd64", 'e')])),
        ]),
        &nodes,
        &prefix,
    );
    let ops = patch(&p, &dec, &prefix);
    let ann = ops
        .iter()
        .find(|o| o["path"].as_str().unwrap().starts_with("/metadata"))
        .unwrap();
    assert_eq!(
        ann["path"],
        "/metadata/annotations/emu.example.com~1original-images"
    );
    let out = applied(&p, &ops);
    let a = out.metadata.annotations.unwrap();
    assert_eq!(a["team"], "x");
    let originals: BTreeMap<String, String> =
        serde_json::from_str(&a["emu.example.com/original-images"]).unwrap();
    assert_eq!(
        originals,
        BTreeMap::from([
            ("app".into(), "old:1".into()),
            ("side".into(), "first:0".into())
        ])
    );
    assert_eq!(escape("a~b/c"), "a~0b~1c");
}

fn exprs(t: &NodeSelectorTerm) -> Vec<String> {
    t.match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "{} {} {:?}",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default()
            )
        })
        .collect()
}

/// The API server's rule for a gated pod (KEP-3838): a non-empty term list keeps its
/// length, and each term only gains requirements.
fn only_additions(old: &[NodeSelectorTerm], new: &[NodeSelectorTerm]) -> bool {
    old.is_empty()
        || (old.len() == new.len()
            && old
                .iter()
                .zip(new)
                .all(|(o, n)| exprs(n).starts_with(&exprs(o)) && o.match_fields == n.match_fields))
}

#[test]
fn affinity_merge_table() {
    let prefix = Prefix::default();
    let zone = || term(vec![expr("zone", "In", &["a"])]);
    let gpu = || term(vec![expr("gpu", "Exists", &[])]);
    let zoned = |n| labelled(labelled(n, "zone", "a"), "gpu", "1");
    let emu = vec![
        zoned(caps("amd", "amd64", &[], true)),
        zoned(caps("arm-emu", "arm64", &["amd64"], true)),
    ];
    let plain = vec![
        zoned(caps("amd", "amd64", &[], false)),
        zoned(caps("arm", "arm64", &[], false)),
    ];
    /// (case, the pod's own terms, nodes, the terms after the patch)
    type Row<'a> = (
        &'a str,
        Vec<NodeSelectorTerm>,
        &'a Vec<NodeCaps>,
        Vec<Vec<&'a str>>,
    );
    let rows: Vec<Row> = vec![
        (
            "no own terms: two ORed terms",
            vec![],
            &emu,
            vec![
                vec!["kubernetes.io/arch In [\"amd64\"]"],
                vec!["binfmtd.io/amd64 In [\"emulated\"]"],
            ],
        ),
        (
            "one own term: ANDed with the labelled requirement",
            vec![zone()],
            &emu,
            vec![vec![
                "zone In [\"a\"]",
                "binfmtd.io/amd64 In [\"native\", \"emulated\"]",
            ]],
        ),
        (
            "two own terms: each ANDed, count kept",
            vec![zone(), gpu()],
            &emu,
            vec![
                vec![
                    "zone In [\"a\"]",
                    "binfmtd.io/amd64 In [\"native\", \"emulated\"]",
                ],
                vec![
                    "gpu Exists []",
                    "binfmtd.io/amd64 In [\"native\", \"emulated\"]",
                ],
            ],
        ),
        (
            "empty own term stays empty (matches nothing either way)",
            vec![zone(), term(vec![])],
            &emu,
            vec![
                vec![
                    "zone In [\"a\"]",
                    "binfmtd.io/amd64 In [\"native\", \"emulated\"]",
                ],
                vec![],
            ],
        ),
        (
            "nobody emulates: the native requirement",
            vec![zone()],
            &plain,
            vec![vec!["zone In [\"a\"]", "kubernetes.io/arch In [\"amd64\"]"]],
        ),
    ];
    for (case, own, nodes, want) in rows {
        let mut p = pod(&[], &[("app", "old:1")]);
        if !own.is_empty() {
            p = with_required(p, own.clone());
        }
        let aff = p
            .spec
            .as_mut()
            .unwrap()
            .affinity
            .get_or_insert_with(Default::default);
        aff.pod_affinity = Some(PodAffinity::default());
        aff.node_affinity
            .get_or_insert_with(Default::default)
            .preferred_during_scheduling_ignored_during_execution =
            Some(vec![PreferredSchedulingTerm {
                weight: 5,
                preference: zone(),
            }]);
        let dec = decide(
            &p,
            &images(&[("old:1", index(&[("amd64", 'a')]))]),
            nodes,
            &prefix,
        );
        let out = applied(&p, &patch(&p, &dec, &prefix));
        let a = out.spec.unwrap().affinity.unwrap();
        assert_eq!(
            a.pod_affinity,
            Some(PodAffinity::default()),
            "{case}: pod affinity kept"
        );
        let terms = affinity::required_terms(Some(&a));
        let got: Vec<Vec<String>> = terms.iter().map(exprs).collect();
        assert_eq!(got, want, "{case}");
        assert!(
            only_additions(&own, terms),
            "{case}: the API server would refuse this update"
        );
        let pref = a
            .node_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(
            pref.iter().map(|t| t.weight).collect::<Vec<_>>(),
            [5, NATIVE_WEIGHT],
            "{case}: own preference kept, native added"
        );
        assert_eq!(
            exprs(&pref[1].preference),
            ["kubernetes.io/arch In [\"amd64\"]"],
            "{case}"
        );
    }
}
