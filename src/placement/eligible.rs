//! Which nodes a pod may land on by its own constraints, as the scheduler reads them:
//! nodeSelector, required node affinity and NoSchedule/NoExecute taints it does not
//! tolerate. "The images cover every node's arch" means every node the pod could use: an
//! amd64-only image in a pod pinned to an amd64 pool needs nothing from binfmtd.

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use super::affinity::required_terms;
use super::nodes::NodeCaps;

/// One requirement against the value of its key on the node (`None`: key absent).
fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let compare = |f: fn(i64, i64) -> bool| match (value.and_then(number), values) {
        (Some(v), [bound]) => number(bound).is_some_and(|b| f(v, b)),
        _ => false,
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(|v, b| v > b),
        "Lt" => compare(|v, b| v < b),
        // An operator the API server would have refused: match nothing, like the scheduler.
        _ => false,
    }
}

/// A term's expressions (on labels) and fields (only `metadata.name` exists) all hold;
/// a term with neither matches no node.
fn term(t: &NodeSelectorTerm, node: &NodeCaps) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let field = |k: &str| (k == "metadata.name").then_some(node.name.as_str());
    exprs
        .iter()
        .all(|r| requirement(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| requirement(r, field(&r.key)))
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let exists = t.operator.as_deref() == Some("Exists");
    let key = match t.key.as_deref() {
        None | Some("") => exists,
        Some(k) => k == taint.key,
    };
    let value = exists
        || t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default();
    effect && key && value
}

/// Whether the scheduler could bind `pod` to `node` as far as these constraints go.
pub fn eligible(pod: &Pod, node: &NodeCaps) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let terms = required_terms(spec.affinity.as_ref());
    let affinity = terms.is_empty() || terms.iter().any(|t| term(t, node));
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)));
    selector && affinity && taints
}

#[cfg(test)]
#[path = "eligible_tests.rs"]
mod tests;
