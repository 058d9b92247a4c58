//! daemonset/ against a real kube-apiserver (tests/k8s/cluster.sh): `kubectl apply -k` of the
//! base and of every overlay, with the image set as README "Run on EKS" says, succeeds; the
//! real CEL type checker finds nothing to warn about in the admission policy; `kubectl apply
//! --dry-run=server` of the rendered manifests passes; and without the image set, no pod is
//! created and the DaemonSet's events name the placeholder.

mod common;

use common::cluster::{cluster, Cluster};
use std::time::{Duration, Instant};

/// The base and every overlay, by directory.
const BUILDS: &[&str] = &[
    "daemonset",
    "daemonset/overlays/eks",
    "daemonset/overlays/bundled",
];

/// One test: the builds share the namespace and the cluster-scoped objects, so they are applied
/// one after the other, each over the previous one, as a user switching overlays would.
#[test]
fn every_build_applies_type_checks_and_passes_server_dry_run() {
    let Some(c) = cluster() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for build in BUILDS {
        let wrapper = with_image(build);
        let dir = wrapper.path().to_str().unwrap();
        let out = c.kubectl(&["apply", "-k", dir], None);
        assert!(
            out.ok,
            "kubectl apply -k {build}:\n{}{}",
            out.stdout, out.stderr
        );
        assert!(
            out.stdout.contains(
                "validatingadmissionpolicy.admissionregistration.k8s.io/binfmtd-node-labels"
            ),
            "{build}: {}",
            out.stdout
        );
        assert!(!out.stderr.contains("Warning"), "{build}: {}", out.stderr);
        let checked = type_checking(c, "binfmtd-node-labels");
        assert_eq!(
            checked["expressionWarnings"],
            serde_json::Value::Null,
            "{build}: the real type checker warns: {checked}"
        );
        let rendered = c.kubectl(&["kustomize", dir], None).success().stdout;
        let dry = c.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
        assert!(
            dry.ok,
            "{build} --dry-run=server:\n{}{}",
            dry.stdout, dry.stderr
        );
        assert!(dry.stdout.contains("(server dry run)"), "{}", dry.stdout);
    }
}

/// A kustomization over BUILD that sets the image, as a user does before applying (kustomize
/// takes only relative paths to other kustomizations).
fn with_image(build: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let up = "../".repeat(dir.path().components().count() - 1);
    let repo = env!("CARGO_MANIFEST_DIR").trim_start_matches('/');
    let kustomization = format!(
        "resources: [{up}{repo}/{build}]\nimages:\n  - name: \"{PLACEHOLDER}\"\n    newName: registry.example/binfmtd\n"
    );
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization).unwrap();
    dir
}

/// The image name every build ships until the user sets theirs.
const PLACEHOLDER: &str = " UNSET-build-and-push-the-image-then-set-it-README-Run-on-EKS/binfmtd";

/// Kubernetes does not check pod templates for whitespace in images (only Pods), so `kubectl
/// apply` takes the placeholder; the DaemonSet controller's Pod creation then fails, and the
/// DaemonSet's events name the placeholder.
#[test]
fn without_the_image_set_no_pod_is_created_and_the_events_name_the_placeholder() {
    let Some(c) = cluster() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // The image first, then a node for the DaemonSet to run on.
    c.kubectl(&["apply", "-k", "daemonset"], None).success();
    c.add_node("placeholder-node", &[("kubernetes.io/arch", "amd64")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = c
            .kubectl(
                &[
                    "-n",
                    "binfmtd",
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.kind=DaemonSet,reason=FailedCreate",
                    "-o",
                    "json",
                ],
                None,
            )
            .success()
            .stdout;
        if events.contains("UNSET-build-and-push-the-image")
            && events.contains("must not have leading or trailing whitespace")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no FailedCreate event naming the placeholder: {events}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let pods = c
        .kubectl(&["-n", "binfmtd", "get", "pods", "-o", "name"], None)
        .success();
    assert_eq!(
        pods.stdout, "",
        "a pod was created with the placeholder image"
    );
}

/// The tests above apply the same objects with different images: one at a time.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The checker does see mistakes: a policy that reads a field Node does not have is warned about
/// (so an empty warning list above means something).
#[test]
fn the_type_checker_warns_about_a_misspelt_field() {
    let Some(c) = cluster() else { return };
    let policy = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "binfmtd-typo-probe"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["nodes"]}]},
            "validations": [{"expression": "object.metadata.lables.size() < 100"}]
        }
    });
    c.kubectl(&["apply", "-f", "-"], Some(&policy.to_string()))
        .success();
    let checked = type_checking(c, "binfmtd-typo-probe");
    assert!(
        checked.to_string().contains("lables"),
        "no warning for a misspelt field: {checked}"
    );
    c.kubectl(
        &["delete", "validatingadmissionpolicy", "binfmtd-typo-probe"],
        None,
    )
    .success();
}

/// status.typeChecking once the controller has checked the current generation.
fn type_checking(c: &Cluster, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = c
            .kubectl(
                &["get", "validatingadmissionpolicy", name, "-o", "json"],
                None,
            )
            .success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let status = &v["status"];
        if status["observedGeneration"] == v["metadata"]["generation"]
            && status["typeChecking"].is_object()
        {
            return status["typeChecking"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name}: status.typeChecking not written within 60 s (kube-controller-manager runs the checker): {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
