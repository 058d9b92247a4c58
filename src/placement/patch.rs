//! The JSON patch (RFC 6902) that applies a decision to the pod and lifts the gate.
//!
//! Positional paths (`/spec/containers/1/image`, `/spec/schedulingGates/0`) are guarded by
//! `test` operations on the value they expect, so a pod changed since it was read makes the
//! whole patch fail instead of rewriting the wrong container or removing another gate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::decide::{Decision, Rewrite};
use super::GATE;
use crate::labels::Prefix;

/// Name (under the prefix) of the annotation that keeps the original image references:
/// a JSON object, container name -> reference as the pod was created with.
pub const ORIGINAL_IMAGES: &str = "original-images";

/// A JSON pointer token for `s` (RFC 6901: `~` -> `~0`, `/` -> `~1`).
pub fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn image_ops(r: &Rewrite) -> [Value; 2] {
    let list = if r.init {
        "initContainers"
    } else {
        "containers"
    };
    let path = format!("/spec/{list}/{}/image", r.index);
    [
        json!({"op": "test", "path": path, "value": r.from}),
        json!({"op": "replace", "path": path, "value": r.to}),
    ]
}

/// The annotation op: the originals of these rewrites, added to what an earlier decision
/// recorded (an original there is older, so it wins).
fn annotation_op(pod: &Pod, rewrites: &[Rewrite], prefix: &Prefix) -> Value {
    let key = prefix.key(ORIGINAL_IMAGES);
    let annotations = pod.metadata.annotations.as_ref();
    let mut originals: BTreeMap<String, String> = annotations
        .and_then(|a| a.get(&key))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    for r in rewrites {
        originals
            .entry(r.container.clone())
            .or_insert_with(|| r.from.clone());
    }
    let value = serde_json::to_string(&originals).expect("a map of strings serializes");
    match annotations {
        None => json!({"op": "add", "path": "/metadata/annotations", "value": {key: value}}),
        Some(_) => {
            json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(&key)), "value": value})
        }
    }
}

/// Test and remove the placement gate, when the pod carries it.
fn gate_ops(pod: &Pod) -> Vec<Value> {
    let gates = pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref());
    let Some(i) = gates.and_then(|g| g.iter().position(|g| g.name == GATE)) else {
        return Vec::new();
    };
    let path = format!("/spec/schedulingGates/{i}");
    vec![
        json!({"op": "test", "path": format!("{path}/name"), "value": GATE}),
        json!({"op": "remove", "path": path}),
    ]
}

/// The operations for `decision` on `pod`: affinity, image rewrites and the annotation
/// when the decision changes the pod, and the gate's removal in every case.
pub fn patch(pod: &Pod, decision: &Decision, prefix: &Prefix) -> Vec<Value> {
    let mut ops = Vec::new();
    if let Some(c) = &decision.changes {
        let affinity = serde_json::to_value(&c.affinity).expect("Affinity serializes");
        ops.push(json!({"op": "add", "path": "/spec/affinity", "value": affinity}));
        ops.extend(c.rewrites.iter().flat_map(image_ops));
        if !c.rewrites.is_empty() {
            ops.push(annotation_op(pod, &c.rewrites, prefix));
        }
    }
    ops.extend(gate_ops(pod));
    ops
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
