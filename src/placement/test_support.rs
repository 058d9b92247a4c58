//! Builders shared by the placement tables: pods, nodes and platform sets as values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    Pod, PodSchedulingGate, PodSpec,
};

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::nodes::{capabilities, NodeCaps};
use super::platforms::{Entry, Kind, Platform, PlatformSet};
use crate::arch::lookup;
use crate::labels::Prefix;

pub fn d(c: char) -> String {
    assert!(
        c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        "digest char {c:?} is not hex"
    );
    format!("sha256:{}", c.to_string().repeat(64))
}

fn entry(arch: &str, digest: char) -> Entry {
    let a = lookup(arch).unwrap();
    let (os, rest) = a.platform().unwrap().split_once('/').unwrap();
    let (architecture, variant) = match rest.split_once('/') {
        Some((x, v)) => (x.to_string(), Some(v.to_string())),
        None => (rest.to_string(), None),
    };
    Entry {
        digest: d(digest),
        platform: Platform {
            os: os.into(),
            architecture,
            variant,
        },
        arch: Some(a),
    }
}

/// An index offering these (arch, digest char) pairs.
pub fn index(arches: &[(&str, char)]) -> PlatformSet {
    PlatformSet {
        kind: Kind::Index,
        entries: arches.iter().map(|(a, c)| entry(a, *c)).collect(),
        ignored: 1,
    }
}

pub fn single(arch: &str, digest: char) -> PlatformSet {
    PlatformSet {
        kind: Kind::Manifest,
        entries: vec![entry(arch, digest)],
        ignored: 0,
    }
}

pub fn images(pairs: &[(&str, PlatformSet)]) -> BTreeMap<String, PlatformSet> {
    pairs
        .iter()
        .map(|(r, s)| (r.to_string(), s.clone()))
        .collect()
}

/// A node as binfmtd labels it (`labelled`: it also carries `binfmtd.io/<native>=native`),
/// read back through `capabilities`.
pub fn caps(name: &str, native: &str, emulated: &[&'static str], labelled: bool) -> NodeCaps {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/arch".to_string(), native.to_string()),
        ("kubernetes.io/hostname".to_string(), name.to_string()),
    ]);
    labels.extend(
        emulated
            .iter()
            .map(|e| (format!("binfmtd.io/{e}"), "emulated".to_string())),
    );
    if labelled {
        labels.insert(format!("binfmtd.io/{native}"), "native".into());
    }
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    capabilities(&node, &Prefix::default())
}

pub fn labelled(mut n: NodeCaps, k: &str, v: &str) -> NodeCaps {
    n.labels.insert(k.into(), v.into());
    n
}

pub fn tainted(mut n: NodeCaps, key: &str, value: Option<&str>, effect: &str) -> NodeCaps {
    n.taints.push(Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        time_added: None,
    });
    n
}

/// The mixed cluster of the issue: amd64 native; arm64 emulating amd64; arm64 alone.
pub fn mixed() -> Vec<NodeCaps> {
    vec![
        caps("amd", "amd64", &[], true),
        caps("arm-emu", "arm64", &["amd64"], true),
        caps("arm", "arm64", &[], true),
    ]
}

pub fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        ..Default::default()
    }
}

/// A gated pod with these init containers and containers.
pub fn pod(init: &[(&str, &str)], main: &[(&str, &str)]) -> Pod {
    let list = |cs: &[(&str, &str)]| cs.iter().map(|(n, i)| container(n, i)).collect::<Vec<_>>();
    Pod {
        spec: Some(PodSpec {
            init_containers: (!init.is_empty()).then(|| list(init)),
            containers: list(main),
            scheduling_gates: Some(vec![PodSchedulingGate {
                name: super::GATE.into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn with_selector(mut p: Pod, k: &str, v: &str) -> Pod {
    let spec = p.spec.as_mut().unwrap();
    spec.node_selector
        .get_or_insert_with(Default::default)
        .insert(k.into(), v.into());
    p
}

pub fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

pub fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: (!exprs.is_empty()).then_some(exprs),
        match_fields: None,
    }
}

pub fn with_required(mut p: Pod, terms: Vec<NodeSelectorTerm>) -> Pod {
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: terms,
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Default::default()
    });
    p
}

pub fn tolerating(
    mut p: Pod,
    key: Option<&str>,
    op: &str,
    value: Option<&str>,
    effect: Option<&str>,
) -> Pod {
    let t = Toleration {
        key: key.map(Into::into),
        operator: Some(op.into()),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    };
    p.spec
        .as_mut()
        .unwrap()
        .tolerations
        .get_or_insert_with(Vec::new)
        .push(t);
    p
}

pub fn with_fields(t: NodeSelectorTerm, fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_fields: Some(fields),
        ..t
    }
}
