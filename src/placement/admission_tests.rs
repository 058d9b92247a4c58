use serde_json::{json, Value};

use super::*;

fn review(op: &str, ns: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "operation": op,
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}, "spec": spec}
        }
    })
}

fn decode(b64: &str) -> Value {
    use base64::Engine as _;
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn admission_table() {
    let plain = json!({"containers": [{"name": "app", "image": "nginx"}]});
    let other_gate = json!({"containers": [{"name": "app", "image": "nginx"}], "schedulingGates": [{"name": "x.io/y"}]});
    let ours = json!({"containers": [{"name": "app", "image": "nginx"}], "schedulingGates": [{"name": GATE}]});
    let bound = json!({"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"});
    let mut not_pod = review("CREATE", "team", plain.clone());
    not_pod["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let mut sub = review("CREATE", "team", plain.clone());
    sub["request"]["subResource"] = json!("ephemeralcontainers");
    let gate_new =
        json!([{"op": "add", "path": "/spec/schedulingGates", "value": [{"name": GATE}]}]);
    let gate_append =
        json!([{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": GATE}}]);
    let rows: Vec<(&str, Value, bool, Option<Value>)> = vec![
        (
            "opted-in pod gets the gate",
            review("CREATE", "team", plain.clone()),
            true,
            Some(gate_new.clone()),
        ),
        (
            "another gate: ours appended",
            review("CREATE", "team", other_gate),
            true,
            Some(gate_append),
        ),
        (
            "gate already there: idempotent",
            review("CREATE", "team", ours),
            true,
            None,
        ),
        (
            "namespace not opted in",
            review("CREATE", "team", plain.clone()),
            false,
            None,
        ),
        (
            "kube-system never",
            review("CREATE", "kube-system", plain.clone()),
            true,
            None,
        ),
        (
            "own namespace never",
            review("CREATE", "binfmtd-system", plain.clone()),
            true,
            None,
        ),
        (
            "update is not gated",
            review("UPDATE", "team", plain.clone()),
            true,
            None,
        ),
        ("not a pod", not_pod, true, None),
        ("subresource", sub, true, None),
        (
            "pod bound to a node",
            review("CREATE", "team", bound),
            true,
            None,
        ),
    ];
    for (case, r, opted_in, want) in rows {
        let out = admit(&serde_json::to_vec(&r).unwrap(), opted_in, "binfmtd-system").unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1", "{case}");
        assert_eq!(out["kind"], "AdmissionReview", "{case}");
        let resp = &out["response"];
        assert_eq!(
            resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
            "{case}"
        );
        assert_eq!(resp["allowed"], true, "{case}: every answer admits the pod");
        match want {
            Some(patch) => {
                assert_eq!(resp["patchType"], "JSONPatch", "{case}");
                assert_eq!(decode(resp["patch"].as_str().unwrap()), patch, "{case}");
            }
            None => assert!(
                resp.get("patch").is_none() && resp.get("patchType").is_none(),
                "{case}: {resp}"
            ),
        }
    }
}

#[test]
fn malformed_reviews_are_refused_with_a_reason() {
    let ok = review("CREATE", "team", json!({"containers": []}));
    let mut no_uid = ok.clone();
    no_uid["request"]["uid"] = json!("");
    let mut wrong_kind = ok.clone();
    wrong_kind["kind"] = json!("Pod");
    let mut no_request = ok.clone();
    no_request.as_object_mut().unwrap().remove("request");
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{".to_vec(), "not JSON"),
        ("no uid", serde_json::to_vec(&no_uid).unwrap(), "no uid"),
        (
            "not an AdmissionReview",
            serde_json::to_vec(&wrong_kind).unwrap(),
            "is not an AdmissionReview",
        ),
        (
            "no request",
            serde_json::to_vec(&no_request).unwrap(),
            "no request",
        ),
    ];
    for (case, bytes, want) in rows {
        let e = admit(&bytes, true, "binfmtd-system")
            .expect_err(case)
            .to_string();
        assert!(e.contains(want) && e.contains("Hint:"), "{case}: {e}");
    }
}
