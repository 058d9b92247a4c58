//! The arch requirement merged into a pod's own node affinity.
//!
//! Required terms are ORed, so the pod's terms must each be ANDed with "native A or
//! emulates A". With no terms of its own the pod gets the two ORed terms. With terms of its
//! own, the API server lets a gated pod only *add requirements to existing terms* (KEP-3838:
//! "no additions/deletions to non-empty NodeSelectorTerms list are allowed"), so
//! multiplying the terms out is refused; each term gets one requirement instead, which
//! `decide` picks so it selects every node that can run A whenever one can.

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PreferredSchedulingTerm,
};

use super::ARCH_LABEL;
use crate::labels::Prefix;

/// Weight of the native preference (the maximum; KubeVirt's cross-arch VMs use the same).
pub const NATIVE_WEIGHT: i32 = 100;

/// The single requirement appended to each of the pod's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single {
    /// `<prefix>/A In [native, emulated]`: binfmtd's labels, on natives and emulators.
    Labelled,
    /// `kubernetes.io/arch In [A]`: natives only (when no node emulates A).
    NativeOnly,
}

fn req(key: String, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key,
        operator: "In".into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn term(r: NodeSelectorRequirement) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: Some(vec![r]),
        match_fields: None,
    }
}

pub fn native(arch: &str) -> NodeSelectorRequirement {
    req(ARCH_LABEL.into(), &[arch])
}

pub fn emulates(arch: &str, prefix: &Prefix) -> NodeSelectorRequirement {
    req(prefix.key(arch), &["emulated"])
}

pub fn single(form: Single, arch: &str, prefix: &Prefix) -> NodeSelectorRequirement {
    match form {
        Single::Labelled => req(prefix.key(arch), &["native", "emulated"]),
        Single::NativeOnly => native(arch),
    }
}

/// The pod's required node selector terms (empty when it has none).
pub fn required_terms(a: Option<&Affinity>) -> &[NodeSelectorTerm] {
    a.and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(&[], |r| r.node_selector_terms.as_slice())
}

/// An empty term matches no node; ANDing anything to it changes nothing, so it is kept
/// as it is rather than turned into one that matches.
fn is_empty(t: &NodeSelectorTerm) -> bool {
    t.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && t.match_fields.as_ref().is_none_or(Vec::is_empty)
}

/// `existing` with "runs A" required and "native A" preferred; other affinity kept.
pub fn with_arch(
    existing: Option<&Affinity>,
    arch: &str,
    prefix: &Prefix,
    form: Single,
) -> Affinity {
    let mut out = existing.cloned().unwrap_or_default();
    let mut na: NodeAffinity = out.node_affinity.take().unwrap_or_default();
    let own = required_terms(existing);
    let terms = if own.is_empty() {
        vec![term(native(arch)), term(emulates(arch, prefix))]
    } else {
        own.iter()
            .cloned()
            .map(|mut t| {
                if !is_empty(&t) {
                    t.match_expressions
                        .get_or_insert_with(Vec::new)
                        .push(single(form, arch, prefix));
                }
                t
            })
            .collect()
    };
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: terms,
    });
    na.preferred_during_scheduling_ignored_during_execution
        .get_or_insert_with(Vec::new)
        .push(PreferredSchedulingTerm {
            weight: NATIVE_WEIGHT,
            preference: term(native(arch)),
        });
    out.node_affinity = Some(na);
    out
}
