//! The admission policy (daemonset/base) on a real kube-apiserver, in every documented mode:
//! the writers it lists (nfd-master in NFD mode, Karpenter) update Nodes with binfmtd.io/
//! labels; the README's kube-system/binfmtd agent and a --label-prefix other than binfmtd.io
//! work once the parameters say so; and its failure modes stay local: without parameters, or
//! with empty ones, other service accounts' Node updates still pass, and a Node with hundreds of
//! labels stays within the CEL cost budget.
//!
//! The tests change the one parameter ConfigMap, so they take turns (`LOCK`).

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::cluster::{cluster, Cluster};

const PARAMS: &str = "binfmtd-node-labels";
static LOCK: Mutex<()> = Mutex::new(());

/// Base applied, nodes p1/p2, and a service account that may patch and update nodes (a
/// controller's grant) for each identity used below. Returns the cluster with the lock held
/// and the parameters as shipped.
fn setup() -> Option<(&'static Cluster, MutexGuard<'static, ()>)> {
    static DONE: OnceLock<()> = OnceLock::new();
    let c = cluster()?;
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    DONE.get_or_init(|| {
        for n in ["p1", "p2"] {
            c.add_node(n, &[("kubernetes.io/arch", "amd64")]);
        }
        c.kubectl(&["apply", "-k", "daemonset/base"], None)
            .success();
        for (ns, sa) in [
            ("node-feature-discovery", "nfd-master"),
            ("kube-system", "karpenter"),
            ("kube-system", "binfmtd"),
            ("kube-system", "node-controller-like"),
        ] {
            grant(c, ns, sa);
        }
    });
    c.kubectl(&["apply", "-k", "daemonset/base"], None)
        .success();
    Some((c, guard))
}

fn grant(c: &Cluster, ns: &str, sa: &str) {
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {sa}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: test-node-writer}}
rules: [{{apiGroups: [""], resources: [nodes], verbs: [get, patch, update]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: test-node-writer-{ns}-{sa}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-node-writer}}
subjects: [{{kind: ServiceAccount, name: {sa}, namespace: {ns}}}]
"#
    ));
}

/// Merge `data` into the parameters (callers then wait with `eventually`).
fn set_params(c: &Cluster, data: &serde_json::Value) {
    let patch = serde_json::json!({"data": data}).to_string();
    patch_params(c, "merge", &patch);
}

/// Patch the parameters ConfigMap with a patch of `kind` (`merge`, `json`).
fn patch_params(c: &Cluster, kind: &str, patch: &str) {
    let kind = format!("--type={kind}");
    c.kubectl(
        &[
            "-n",
            "binfmtd",
            "patch",
            "configmap",
            PARAMS,
            &kind,
            "-p",
            patch,
        ],
        None,
    )
    .success();
}

/// Retry `f` until it returns true: a policy or parameter change reaches admission through an
/// informer, shortly after the write.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..150 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what}: not within 15 s");
}

fn label(c: &Cluster, token: &str, node: &str, kv: &str) -> common::cluster::Kubectl {
    c.kubectl_token(token, &["label", "node", node, "--overwrite", kv])
}

#[test]
fn listed_writers_update_binfmtd_labels_nfd_master_and_karpenter() {
    let Some((c, _lock)) = setup() else { return };
    let nfd = c.token("node-feature-discovery", "nfd-master", None);
    // nfd-master's node update carries every NFD label along with binfmtd's (NFD mode).
    eventually("the policy is loaded", || {
        label(
            c,
            &c.token("kube-system", "node-controller-like", None),
            "p1",
            "binfmtd.io/probe=x",
        )
        .stderr
        .contains(PARAMS)
    });
    let out = c.kubectl_token(
        &nfd,
        &[
            "label",
            "node",
            "p1",
            "--overwrite",
            "binfmtd.io/arm64=emulated",
            "feature.node.kubernetes.io/cpu-model.vendor_id=Intel",
        ],
    );
    assert!(out.ok, "nfd-master denied: {}", out.stderr);
    // A whole-object UPDATE (PUT), as controllers send, too. Like a controller, read again and
    // retry on a Conflict: the node may change between the read and the write (its status).
    let karpenter = c.token("kube-system", "karpenter", None);
    let file = c.dir.join("p1.json");
    let file_arg = file.to_str().unwrap();
    let mut out = None;
    for _ in 0..5 {
        let node = c
            .kubectl(&["get", "node", "p1", "-o", "json"], None)
            .success()
            .stdout;
        let mut node: serde_json::Value = serde_json::from_str(&node).unwrap();
        node["metadata"]["labels"]["binfmtd.io/riscv64"] = "emulated".into();
        std::fs::write(&file, node.to_string()).unwrap();
        let put = c.kubectl_token(&karpenter, &["replace", "-f", file_arg]);
        let conflict = put.stderr.contains("Conflict");
        out = Some(put);
        if !conflict {
            break;
        }
    }
    let out = out.unwrap();
    assert!(out.ok, "karpenter denied: {}", out.stderr);
    assert_eq!(c.labels("p1")["binfmtd.io/riscv64"], "emulated");
}

#[test]
fn the_readmes_kube_system_agent_and_another_prefix_work_once_set_in_the_parameters() {
    let Some((c, _lock)) = setup() else { return };
    let pod = "kube-system-agent-p2";
    if c.kubectl(&["-n", "kube-system", "get", "pod", pod], None)
        .ok
    {
        c.kubectl(
            &["-n", "kube-system", "delete", "pod", pod, "--wait=false"],
            None,
        )
        .success();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    c.pod_on("kube-system", "binfmtd", pod, "p2");
    let agent = c.token("kube-system", "binfmtd", Some(pod));
    // As shipped, kube-system/binfmtd is just another service account.
    eventually("the shipped parameters apply", || {
        label(c, &agent, "p2", "binfmtd.io/arm64=emulated")
            .stderr
            .contains("no other service account may")
    });
    set_params(
        c,
        &serde_json::json!({"agent": "system:serviceaccount:kube-system:binfmtd", "prefix": "emul.example.com"}),
    );
    eventually("the new parameters apply", || {
        label(c, &agent, "p2", "emul.example.com/arm64=emulated").ok
    });
    // binfmtd.io/ is now outside the agent's prefix, and another node is still not its own.
    let out = label(c, &agent, "p2", "binfmtd.io/arm64=native");
    assert!(
        !out.ok && out.stderr.contains("only labels under its prefix"),
        "{out:?}"
    );
    let out = label(c, &agent, "p1", "emul.example.com/arm64=emulated");
    assert!(
        !out.ok && out.stderr.contains("only the Node it runs on"),
        "{out:?}"
    );
    // The shipped agent identity lost its rights, and others still cannot forge the new prefix.
    let other = c.token("kube-system", "node-controller-like", None);
    let out = label(c, &other, "p2", "emul.example.com/arm64=native");
    assert!(
        !out.ok && out.stderr.contains("no other service account may"),
        "{out:?}"
    );
}

#[test]
fn a_missing_or_empty_parameter_map_blocks_no_other_node_update() {
    let Some((c, _lock)) = setup() else { return };
    let other = c.token("kube-system", "node-controller-like", None);
    let taint = |value: &str| {
        c.kubectl_token(
            &other,
            &[
                "taint",
                "node",
                "p1",
                &format!("test/outage={value}:NoSchedule"),
                "--overwrite",
            ],
        )
    };
    // Empty data: every expression still evaluates (no runtime error, which would deny); the
    // agent is unknown, so binfmtd.io/ changes are denied, and nothing else is.
    patch_params(c, "json", r#"[{"op":"remove","path":"/data"}]"#);
    let out = taint("1");
    assert!(out.ok, "a controller's taint was denied: {}", out.stderr);
    eventually("empty parameters apply", || {
        label(c, &other, "p1", "binfmtd.io/arm64=emulated")
            .stderr
            .contains("no other service account may")
    });
    // No ConfigMap at all: the binding skips the policy (parameterNotFoundAction Allow) rather
    // than denying every Node update in the cluster.
    c.kubectl(&["-n", "binfmtd", "delete", "configmap", PARAMS], None)
        .success();
    eventually("the policy is skipped", || {
        taint("2").ok && label(c, &other, "p1", "binfmtd.io/arm64=emulated").ok
    });
}

#[test]
fn hundreds_of_labels_stay_within_the_cost_budget() {
    let Some((c, _lock)) = setup() else { return };
    c.add_node("crowded", &[("kubernetes.io/arch", "amd64")]);
    let many: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| {
            (
                format!("example.com/label-{i:03}-{}", "x".repeat(40)),
                "v".repeat(60).into(),
            )
        })
        .collect();
    let patch = serde_json::json!({"metadata": {"labels": many}}).to_string();
    c.kubectl(
        &["patch", "node", "crowded", "--type=merge", "-p", &patch],
        None,
    )
    .success();
    let pod = "agent-crowded";
    c.pod_on("binfmtd", "binfmtd", pod, "crowded");
    let agent = c.token("binfmtd", "binfmtd", Some(pod));
    eventually("the agent labels a crowded node", || {
        label(c, &agent, "crowded", "binfmtd.io/arm64=emulated").ok
    });
    let out = label(
        c,
        &agent,
        "crowded",
        "example.com/label-000-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=changed",
    );
    assert!(
        !out.ok && out.stderr.contains("only labels under its prefix"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("cost"), "{}", out.stderr);
}
