//! daemonset/components/placement through daemonset/overlays/placement: it renders with the
//! real kustomize, passes strict schema validation (oldest and newest Kubernetes), has the shape
//! the issue asks (2 replicas, unprivileged, probes, the contract's flags agreeing with the
//! objects they name, the webhook's opt-in and fail-open settings, least-privilege RBAC); and
//! against a real kube-apiserver: it applies and passes server-side dry-run, the
//! ServiceAccount may do exactly what the component does and no more (`kubectl auth can-i`),
//! and with that account's own token `cert::ensure` and the Lease elector succeed.

mod common;
#[path = "daemonset/manifests.rs"]
#[allow(dead_code)]
mod manifests;
#[path = "place_webhook_support/mod.rs"]
mod support;

use manifests::{find, kustomize, objects, tool, write_temp};
use serde_json::{json, Value};

const OVERLAY: &str = "daemonset/overlays/placement";
const SA: &str = "system:serviceaccount:binfmtd:binfmtd-placement";

fn rendered() -> Vec<Value> {
    objects(&kustomize(OVERLAY))
}

fn container(objs: &[Value]) -> &Value {
    &find(objs, "Deployment", "binfmtd-placement")["spec"]["template"]["spec"]["containers"][0]
}

/// `--flag=value` from the container's args.
fn flag<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["args"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("--{name}=")))
}

#[test]
fn the_overlay_passes_strict_schema_validation_oldest_and_newest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_temp(dir.path(), "all.yaml", &kustomize(OVERLAY));
    for version in ["1.30.0", "1.33.0"] {
        let out = tool(
            "kubernetes-validate",
            &["--strict", "-k", version, file.to_str().unwrap()],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{version}: {text}");
    }
}

#[test]
fn the_deployment_is_two_unprivileged_replicas_speaking_the_contracts_flags() {
    let objs = rendered();
    let d = find(&objs, "Deployment", "binfmtd-placement");
    assert_eq!(d["metadata"]["namespace"], "binfmtd");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "binfmtd-placement");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod.get("hostPID").is_none() && pod.get("hostNetwork").is_none());
    let c = container(&objs);
    assert_eq!(c["args"][0], "place");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc.get("privileged").is_none_or(|p| p == false));
    // Downward API: --namespace and --identity default to these.
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .unwrap();
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field, "{var}");
    }
    // Probes on the plain HTTP port, 9464; the webhook on 8443.
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .clone()
    };
    assert_eq!(port("http"), 9464);
    assert_eq!(port("webhook"), 8443);
    assert_eq!(flag(c, "listen"), Some("0.0.0.0:9464"));
    assert_eq!(flag(c, "webhook-listen"), Some("0.0.0.0:8443"));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // Every flag is one the binary's own parser accepts for `place`.
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    let argv = std::iter::once("binfmtd".to_string()).chain(args.iter().cloned());
    if let Err(e) = <binfmtd::cli::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("binfmtd rejects the placement Deployment's args {args:?}:\n{e}");
    }
}

#[test]
fn the_names_in_the_flags_are_the_objects_and_the_webhook_fails_open() {
    let objs = rendered();
    let c = container(&objs);
    let svc = find(&objs, "Service", flag(c, "service").unwrap());
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    let mwc = find(
        &objs,
        "MutatingWebhookConfiguration",
        flag(c, "webhook-configuration").unwrap(),
    );
    let hooks = mwc["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let w = &hooks[0];
    assert_eq!(
        w["clientConfig"]["service"],
        json!({"name": svc["metadata"]["name"], "namespace": "binfmtd", "path": "/mutate", "port": 443})
    );
    assert_eq!(
        w["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}])
    );
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["reinvocationPolicy"], "Never");
    assert!(w["timeoutSeconds"].as_u64().unwrap() <= 3);
    assert_eq!(
        w["namespaceSelector"]["matchExpressions"],
        json!([
            {"key": "binfmtd.io/placement", "operator": "In", "values": ["enabled"]},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "binfmtd"]},
        ])
    );
    let role = find(&objs, "Role", "binfmtd-placement");
    let named = |resource: &str| -> Vec<Value> {
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resources"] == json!([resource]) && r.get("resourceNames").is_some())
            .map(|r| r["resourceNames"].clone())
            .collect()
    };
    assert_eq!(named("secrets"), [json!([flag(c, "tls-secret").unwrap()])]);
    assert_eq!(named("leases"), [json!([flag(c, "lease").unwrap()])]);
}

#[test]
fn rbac_grants_exactly_what_the_component_does() {
    let objs = rendered();
    let rules = |kind: &str| find(&objs, kind, "binfmtd-placement")["rules"].clone();
    assert_eq!(
        rules("ClusterRole"),
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["serviceaccounts", "secrets"], "verbs": ["get"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": ["binfmtd-placement"], "verbs": ["get", "patch"]},
        ])
    );
    assert_eq!(
        rules("Role"),
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["binfmtd-placement"], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["binfmtd-placement-tls"], "verbs": ["get", "update"]},
        ])
    );
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let b = find(&objs, kind, "binfmtd-placement");
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "binfmtd-placement", "namespace": "binfmtd"}])
        );
    }
    assert_eq!(
        find(&objs, "ServiceAccount", "binfmtd-placement")["automountServiceAccountToken"],
        false
    );
}

/// A kustomization over the overlay that sets the image, as a user does before applying.
fn with_image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let up = "../".repeat(dir.path().components().count() - 1);
    let repo = env!("CARGO_MANIFEST_DIR").trim_start_matches('/');
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "resources: [{up}{repo}/{OVERLAY}]\nimages:\n  - name: \" UNSET-build-and-push-the-image-then-set-it-README-Run-on-EKS/binfmtd\"\n    newName: registry.example/binfmtd\n"
        ),
    )
    .unwrap();
    dir
}

#[test]
fn on_a_real_api_server_it_applies_and_its_account_can_do_its_job_and_no_more() {
    let Some(c) = common::cluster::cluster() else {
        return;
    };
    let wrapper = with_image();
    let dir = wrapper.path().to_str().unwrap();
    let out = c.kubectl(&["apply", "-k", dir], None);
    assert!(
        out.ok,
        "kubectl apply -k {OVERLAY}:\n{}{}",
        out.stdout, out.stderr
    );
    for obj in [
        "deployment.apps/binfmtd-placement",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/binfmtd-placement",
        "service/binfmtd-placement",
    ] {
        assert!(out.stdout.contains(obj), "{obj}: {}", out.stdout);
    }
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    let yaml = c.kubectl(&["kustomize", dir], None).success().stdout;
    let dry = c.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
    assert!(
        dry.ok && dry.stdout.contains("(server dry run)"),
        "{}{}",
        dry.stdout,
        dry.stderr
    );

    // (verb, resource, namespace, allowed)
    let cases: &[(&str, &str, &str, bool)] = &[
        ("get", "secrets/binfmtd-placement-tls", "binfmtd", true),
        ("update", "secrets/binfmtd-placement-tls", "binfmtd", true),
        ("create", "secrets", "binfmtd", true),
        ("update", "secrets/other", "binfmtd", false),
        ("list", "secrets", "binfmtd", false),
        ("create", "secrets", "default", false),
        ("create", "leases.coordination.k8s.io", "binfmtd", true),
        (
            "update",
            "leases.coordination.k8s.io/binfmtd-placement",
            "binfmtd",
            true,
        ),
        (
            "update",
            "leases.coordination.k8s.io/other",
            "binfmtd",
            false,
        ),
        (
            "update",
            "leases.coordination.k8s.io/binfmtd-placement",
            "default",
            false,
        ),
        (
            "patch",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io/binfmtd-placement",
            "",
            true,
        ),
        (
            "patch",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io/other",
            "",
            false,
        ),
        (
            "create",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
            "",
            false,
        ),
        ("patch", "pods", "default", true),
        ("watch", "pods", "default", true),
        ("delete", "pods", "default", false),
        ("create", "pods", "default", false),
        ("update", "pods", "default", false),
        ("patch", "nodes", "", false),
        ("create", "events", "default", true),
        ("create", "events.events.k8s.io", "default", true),
        ("get", "serviceaccounts", "default", true),
        ("create", "serviceaccounts/token", "default", false),
    ];
    for (verb, resource, ns, want) in cases {
        let mut args = vec!["auth", "can-i", verb, resource, "--as", SA];
        if !ns.is_empty() {
            args.extend(["-n", ns]);
        }
        let out = c.kubectl(&args, None);
        let got = out.stdout.trim() == "yes";
        assert_eq!(
            got, *want,
            "can-i {verb} {resource} -n {ns:?}: {}{}",
            out.stdout, out.stderr
        );
    }

    // With the account's own token, what the component does at start succeeds.
    let token = c.token("binfmtd", "binfmtd-placement", None);
    let kc_dir = tempfile::tempdir().unwrap();
    let kc = kc_dir.path().join("kubeconfig");
    std::fs::write(&kc, c.token_kubeconfig(&token)).unwrap();
    let rt = support::rt();
    let client = support::client(&rt, &kc);
    let cert = rt
        .block_on(binfmtd::place::cert::ensure(
            client.clone(),
            "binfmtd",
            "binfmtd-placement-tls",
            "binfmtd-placement",
            "binfmtd-placement",
        ))
        .unwrap();
    let m: Value = serde_json::from_str(
        &c.kubectl(
            &[
                "get",
                "mutatingwebhookconfiguration",
                "binfmtd-placement",
                "-o",
                "json",
            ],
            None,
        )
        .success()
        .stdout,
    )
    .unwrap();
    use base64::Engine;
    assert_eq!(
        m["webhooks"][0]["clientConfig"]["caBundle"],
        json!(base64::engine::general_purpose::STANDARD.encode(&cert.ca_pem))
    );
    let elector =
        binfmtd::place::lease::Elector::new(client, "binfmtd", "binfmtd-placement", "pod-a");
    assert!(rt.block_on(elector.try_once()).unwrap());
    rt.block_on(elector.release()).unwrap();
}
