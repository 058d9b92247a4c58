//! The admission policy's parameters (the ConfigMap its binding names), evaluated offline as in
//! policy.rs: listed writers, another prefix and agent, and parameters without data.

use serde_json::json;

use super::policy::{
    agent_edit, evaluate, evaluate_with, labels, node, params, policy, update, AGENT,
};

#[test]
fn listed_writers_are_not_evaluated() {
    let old = node("n1");
    let mut nfd = old.clone();
    labels(&mut nfd).insert("binfmtd.io/arm64".into(), json!("emulated"));
    labels(&mut nfd).insert(
        "feature.node.kubernetes.io/cpu-model.vendor_id".into(),
        json!("Intel"),
    );
    let requests = [
        update(
            "system:serviceaccount:node-feature-discovery:nfd-master",
            None,
            &old,
            &nfd,
        ),
        update(
            "system:serviceaccount:kube-system:karpenter",
            None,
            &old,
            &nfd,
        ),
    ];
    for (i, v) in evaluate(&policy(), &requests).iter().enumerate() {
        assert!(!v.matched && v.allowed, "writer {i} must not be evaluated");
    }
}

#[test]
fn the_prefix_and_the_agent_come_from_the_parameters() {
    let mut p = params();
    p["data"]["prefix"] = json!("emul.example.com");
    p["data"]["agent"] = json!("system:serviceaccount:kube-system:binfmtd");
    let agent = "system:serviceaccount:kube-system:binfmtd";
    let old = node("n1");
    let mut own = old.clone();
    labels(&mut own).insert("emul.example.com/arm64".into(), json!("emulated"));
    let mut default_prefix = old.clone();
    labels(&mut default_prefix).insert("binfmtd.io/arm64".into(), json!("emulated"));
    let v = evaluate_with(
        &policy(),
        &p,
        &[
            update(agent, Some("n1"), &old, &own),
            update(agent, Some("n1"), &old, &default_prefix),
            update(AGENT, Some("n1"), &old, &own),
        ],
    );
    assert!(v[0].matched && v[0].allowed, "{:?}", v[0].messages);
    assert!(!v[1].allowed, "binfmtd.io/ is foreign under another prefix");
    assert!(
        v[2].matched && !v[2].allowed,
        "the default identity is no longer the agent"
    );
}

#[test]
fn parameters_without_data_deny_the_agent_and_nobody_else() {
    let p = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "binfmtd-node-labels"}});
    let old = node("n1");
    let mut tainted = old.clone();
    tainted["spec"]["taints"] = json!([]);
    let v = evaluate_with(
        &policy(),
        &p,
        &[
            agent_edit(|n| {
                labels(n).insert("binfmtd.io/arm64".into(), json!("emulated"));
            }),
            update(
                "system:serviceaccount:kube-system:node-controller",
                None,
                &old,
                &tainted,
            ),
        ],
    );
    assert!(v[0].matched && !v[0].allowed, "{:?}", v[0].messages);
    assert!(!v[1].matched && v[1].allowed);
}
