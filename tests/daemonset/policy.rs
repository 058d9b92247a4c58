//! The admission policy's CEL, evaluated exactly as shipped (read from the kustomize output) by a
//! real CEL implementation on AdmissionRequest-shaped inputs (tests/daemonset/vap.py).

use serde_json::{json, Value};

use super::manifests::{find, kustomize, objects, repo, tool};

pub(super) const AGENT: &str = "system:serviceaccount:binfmtd:binfmtd";
const NODE_CLAIM: &str = "authentication.kubernetes.io/node-name";

/// An EKS-like Node with foreign labels, annotations, taints and status.
pub(super) fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name, "uid": "4b1c4a3e-0d4f-4e4a-9f55-3f1b2c9d0e11", "resourceVersion": "81234",
            "labels": {
                "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "eks.amazonaws.com/nodegroup": "general", "node.kubernetes.io/instance-type": "m7i.large",
                "topology.kubernetes.io/zone": "eu-west-1a", "binfmtd.io/riscv64": "emulated"
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
        },
        "spec": {
            "providerID": format!("aws:///eu-west-1a/{name}"),
            "taints": [{"key": "dedicated", "value": "ci", "effect": "NoSchedule"}]
        },
        "status": {
            "nodeInfo": {"architecture": "amd64", "kubeletVersion": "v1.31.4-eks-aeac579"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    })
}

/// What the API server hands admission for an UPDATE of `old` into `new` by `username`, whose
/// token names `token_node` (None: a token without the node claim).
pub(super) fn update(username: &str, token_node: Option<&str>, old: &Value, new: &Value) -> Value {
    let mut user = json!({"username": username, "uid": "7d1c", "groups": ["system:serviceaccounts", "system:authenticated"]});
    if let Some(n) = token_node {
        user["extra"] = json!({
            NODE_CLAIM: [n],
            "authentication.kubernetes.io/pod-name": ["binfmtd-x7k2p"],
            "authentication.kubernetes.io/credential-id": ["JTI=5d1b"]
        });
    }
    json!({
        "uid": "1f0e", "operation": "UPDATE",
        "kind": {"group": "", "version": "v1", "kind": "Node"},
        "resource": {"group": "", "version": "v1", "resource": "nodes"},
        "name": new["metadata"]["name"], "userInfo": user,
        "object": new, "oldObject": old, "dryRun": false
    })
}

/// The agent on node n1 changes n1 by `edit`.
pub(super) fn agent_edit(edit: impl FnOnce(&mut Value)) -> Value {
    let old = node("n1");
    let mut new = old.clone();
    edit(&mut new);
    update(AGENT, Some("n1"), &old, &new)
}

pub(super) fn labels(n: &mut Value) -> &mut serde_json::Map<String, Value> {
    n["metadata"]["labels"].as_object_mut().unwrap()
}

pub(super) struct Verdict {
    pub matched: bool,
    pub allowed: bool,
    pub messages: Vec<String>,
}

pub(super) fn policy() -> Value {
    let objs = objects(&kustomize("daemonset"));
    find(&objs, "ValidatingAdmissionPolicy", "binfmtd-node-labels").clone()
}

/// The policy's parameters as shipped: the ConfigMap its binding names.
pub(super) fn params() -> Value {
    let objs = objects(&kustomize("daemonset"));
    let binding = find(
        &objs,
        "ValidatingAdmissionPolicyBinding",
        "binfmtd-node-labels",
    );
    let name = binding["spec"]["paramRef"]["name"].as_str().unwrap();
    find(&objs, "ConfigMap", name).clone()
}

/// The message of the validation whose expression is `marker`, else the one that mentions it.
fn message(policy: &Value, marker: &str) -> String {
    let all = policy["spec"]["validations"].as_array().unwrap();
    let expr = |v: &&Value| v["expression"].as_str().unwrap().to_string();
    let mut hits: Vec<_> = all.iter().filter(|v| expr(v) == marker).collect();
    if hits.is_empty() {
        hits = all.iter().filter(|v| expr(v).contains(marker)).collect();
    }
    assert_eq!(hits.len(), 1, "one validation mentions {marker}");
    hits[0]["message"].as_str().unwrap().to_string()
}

pub(super) fn evaluate(policy: &Value, requests: &[Value]) -> Vec<Verdict> {
    evaluate_with(policy, &params(), requests)
}

pub(super) fn evaluate_with(policy: &Value, params: &Value, requests: &[Value]) -> Vec<Verdict> {
    let input = json!({"policy": policy, "params": params, "requests": requests}).to_string();
    let script = repo().join("tests/daemonset/vap.py");
    let out = tool(
        "python3",
        &[script.to_str().unwrap()],
        Some(input.as_bytes()),
    );
    assert!(
        out.status.success(),
        "vap.py: {} (tests/deps.sh installs common-expression-language)",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            assert!(r["error"].is_null(), "evaluation error: {}", r["error"]);
            Verdict {
                matched: r["matched"].as_bool().unwrap(),
                allowed: r["allowed"].as_bool().unwrap(),
                messages: serde_json::from_value(r["messages"].clone()).unwrap(),
            }
        })
        .collect()
}

/// Each request is denied with exactly the message of the validation that mentions `marker`.
fn assert_denied(cases: &[(&str, Value)], marker: &str) {
    let policy = policy();
    let want = message(&policy, marker);
    let requests: Vec<Value> = cases.iter().map(|(_, r)| r.clone()).collect();
    for ((what, _), v) in cases.iter().zip(evaluate(&policy, &requests)) {
        assert!(v.matched && !v.allowed, "{what}: not denied");
        assert_eq!(v.messages, vec![want.clone()], "{what}: wrong denial");
    }
}

#[test]
fn own_node_prefixed_labels_and_annotations_are_allowed() {
    let cases = [
        agent_edit(|n| {
            labels(n).insert("binfmtd.io/arm64".into(), json!("emulated"));
            labels(n).insert("binfmtd.io/amd64".into(), json!("native"));
            labels(n).remove("binfmtd.io/riscv64");
        }),
        agent_edit(|n| {
            n["metadata"]["annotations"]["binfmtd.io/detail"] =
                json!("{\"arm64\":\"qemu 10.0.13\"}");
        }),
        // Kubernetes hands admission the whole object: resourceVersion and managedFields change too.
        agent_edit(|n| {
            n["metadata"]["resourceVersion"] = json!("81240");
            n["metadata"]["managedFields"] = json!([{"manager": "binfmtd", "operation": "Update"}]);
        }),
    ];
    for (i, v) in evaluate(&policy(), &cases).iter().enumerate() {
        assert!(v.matched, "case {i}: the agent's request must be evaluated");
        assert!(v.allowed, "case {i} denied: {:?}", v.messages);
    }
}

#[test]
fn another_node_or_no_node_claim_is_rejected() {
    let old = node("n2");
    let mut new = old.clone();
    labels(&mut new).insert("binfmtd.io/arm64".into(), json!("emulated"));
    assert_denied(
        &[
            (
                "token of n1 patching n2",
                update(AGENT, Some("n1"), &old, &new),
            ),
            (
                "token without the node claim",
                update(AGENT, None, &old, &new),
            ),
        ],
        "variables.ownNode",
    );
}

#[test]
fn labels_outside_the_prefix_are_rejected() {
    assert_denied(
        &[
            (
                "add a foreign label",
                agent_edit(|n| {
                    labels(n).insert("node-role.kubernetes.io/ci".into(), json!(""));
                }),
            ),
            (
                "look-alike prefix",
                agent_edit(|n| {
                    labels(n).insert("binfmtd.io.evil/arm64".into(), json!("native"));
                }),
            ),
            (
                "change a foreign label",
                agent_edit(|n| {
                    labels(n).insert("kubernetes.io/arch".into(), json!("arm64"));
                }),
            ),
            (
                "remove a foreign label",
                agent_edit(|n| {
                    labels(n).remove("eks.amazonaws.com/nodegroup");
                }),
            ),
            (
                "remove every label",
                agent_edit(|n| {
                    n["metadata"].as_object_mut().unwrap().remove("labels");
                }),
            ),
        ],
        "variables.foreignLabelsKept",
    );
}

#[test]
fn annotations_outside_the_prefix_are_rejected() {
    assert_denied(
        &[(
            "change a foreign annotation",
            agent_edit(|n| {
                n["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = json!("30");
            }),
        )],
        "variables.foreignAnnotationsKept",
    );
}

#[test]
fn spec_and_taint_changes_are_rejected() {
    assert_denied(
        &[
            (
                "cordon",
                agent_edit(|n| n["spec"]["unschedulable"] = json!(true)),
            ),
            (
                "remove a taint",
                agent_edit(|n| n["spec"]["taints"] = json!([])),
            ),
            (
                "add a taint",
                agent_edit(|n| {
                    n["spec"]["taints"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"key": "x", "effect": "NoExecute"}));
                }),
            ),
        ],
        "object.spec == oldObject.spec",
    );
}

#[test]
fn status_finalizer_and_owner_changes_are_rejected() {
    assert_denied(
        &[(
            "mark NotReady",
            agent_edit(|n| n["status"]["conditions"][0]["status"] = json!("False")),
        )],
        "object.status == oldObject.status",
    );
    assert_denied(
        &[
            (
                "add a finalizer",
                agent_edit(|n| n["metadata"]["finalizers"] = json!(["example.com/hold"])),
            ),
            (
                "add an owner",
                agent_edit(|n| {
                    n["metadata"]["ownerReferences"] =
                        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}]);
                }),
            ),
        ],
        "ownerReferences",
    );
}

#[test]
fn other_service_accounts_may_not_touch_binfmtd_labels() {
    let old = node("n1");
    let mut forged = old.clone();
    labels(&mut forged).insert("binfmtd.io/arm64".into(), json!("native"));
    let mut dropped = old.clone();
    labels(&mut dropped).remove("binfmtd.io/riscv64");
    assert_denied(
        &[
            (
                "a controller forges a label",
                update(
                    "system:serviceaccount:kube-system:some-controller",
                    Some("n1"),
                    &old,
                    &forged,
                ),
            ),
            (
                "same name, other namespace",
                update(
                    "system:serviceaccount:default:binfmtd",
                    Some("n1"),
                    &old,
                    &dropped,
                ),
            ),
        ],
        "variables.agent",
    );
}

#[test]
fn unrelated_requests_are_not_evaluated() {
    let old = node("n1");
    let mut tainted = old.clone();
    tainted["spec"]["taints"] =
        json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
    let mut relabelled = old.clone();
    labels(&mut relabelled).remove("binfmtd.io/riscv64");
    let requests = [
        // The node lifecycle controller taints nodes through its service account.
        update(
            "system:serviceaccount:kube-system:node-controller",
            None,
            &old,
            &tainted,
        ),
        // An administrator cleaning up, and the kubelet's credentials (the systemd unit's labeller).
        update("admin@example.com", None, &old, &relabelled),
        update("system:node:n1", None, &old, &relabelled),
    ];
    for (i, v) in evaluate(&policy(), &requests).iter().enumerate() {
        assert!(!v.matched && v.allowed, "request {i} must not be evaluated");
    }
}
