//! The webhook's step, without I/O: an AdmissionReview for a Pod CREATE in, the
//! AdmissionReview response out, adding the scheduling gate when the namespace opted in.
//! Every answer allows the pod: the gate only holds it until the controller decides, and a
//! pod that cannot be gated is admitted exactly as it came.

use serde_json::{json, Value};

use super::{b64, GATE};

/// Never gated: the cluster's own pods, whatever their namespace's labels say.
pub const KUBE_SYSTEM: &str = "kube-system";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("AdmissionReview refused: {0}. Hint: the webhook expects admission.k8s.io/v1 AdmissionReview requests from the API server")]
pub struct AdmissionError(pub String);

/// Why a pod is admitted without the gate (`None`: gate it).
pub fn skip_reason(request: &Value, opted_in: bool, own_namespace: &str) -> Option<&'static str> {
    let str_at = |p: &str| request.pointer(p).and_then(Value::as_str);
    if str_at("/operation") != Some("CREATE") {
        return Some("not a CREATE");
    }
    if str_at("/kind/kind") != Some("Pod") || str_at("/kind/group").is_some_and(|g| !g.is_empty()) {
        return Some("not a Pod");
    }
    if str_at("/subResource").is_some_and(|s| !s.is_empty()) {
        return Some("a subresource");
    }
    let ns = str_at("/namespace").or_else(|| str_at("/object/metadata/namespace"));
    if ns == Some(KUBE_SYSTEM) {
        return Some("kube-system is never gated");
    }
    if ns == Some(own_namespace) {
        return Some("binfmtd's own namespace is never gated");
    }
    if !opted_in {
        return Some("the namespace did not opt in");
    }
    let spec = request.pointer("/object/spec");
    if spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        // The API server refuses scheduling gates on a pod already bound to a node.
        return Some("the pod names its node");
    }
    let gates = spec
        .and_then(|s| s.get("schedulingGates"))
        .and_then(Value::as_array);
    if gates.is_some_and(|g| {
        g.iter()
            .any(|g| g.get("name").and_then(Value::as_str) == Some(GATE))
    }) {
        return Some("the gate is already there");
    }
    None
}

/// The JSON patch that adds the gate to the pod in `request` (which must need it).
fn gate_patch(request: &Value) -> Value {
    let gates = request.pointer("/object/spec/schedulingGates");
    if gates.is_some_and(Value::is_array) {
        json!([{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": GATE}}])
    } else {
        json!([{"op": "add", "path": "/spec/schedulingGates", "value": [{"name": GATE}]}])
    }
}

/// Answer one AdmissionReview. `opted_in`: the pod's namespace carries the opt-in label;
/// `own_namespace`: where binfmtd's placement component runs.
pub fn admit(review: &[u8], opted_in: bool, own_namespace: &str) -> Result<Value, AdmissionError> {
    let review: Value =
        serde_json::from_slice(review).map_err(|e| AdmissionError(format!("not JSON: {e}")))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !api_version.starts_with("admission.k8s.io/")
        || review.get("kind").and_then(Value::as_str) != Some("AdmissionReview")
    {
        return Err(AdmissionError(format!(
            "apiVersion {api_version:?} kind {:?} is not an AdmissionReview",
            review.get("kind")
        )));
    }
    let request = review
        .get("request")
        .ok_or_else(|| AdmissionError("no request".into()))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AdmissionError("the request has no uid".into()))?;
    let mut response = json!({"uid": uid, "allowed": true});
    if skip_reason(request, opted_in, own_namespace).is_none() {
        let patch = serde_json::to_vec(&gate_patch(request)).expect("a patch serializes");
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(b64::encode(&patch));
    }
    Ok(json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}))
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
