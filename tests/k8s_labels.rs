//! Node labels against a real kube-apiserver (tests/k8s/cluster.sh) with daemonset/ applied:
//! the built `binfmtd run --node-labels` in the kernel sandbox, with the in-cluster files a
//! DaemonSet pod gets (a TokenRequest bound to a Pod on node A, so the token carries the
//! authentication.kubernetes.io/node-name claim), labels A; the admission policy stops that
//! token everywhere else; and a kubelet's credentials (system:node:NAME, the systemd unit's
//! path through the Node authorizer and NodeRestriction) label their own node.

mod common;

use common::cluster::{cluster, Cluster};
use common::{sections, sh_quote, Sandbox};
use std::sync::OnceLock;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Nodes a and b, the base applied (namespace, RBAC, policy), a Pod of binfmtd's service
/// account bound to node a, and a token bound to that Pod. Once per test binary.
fn setup() -> Option<(&'static Cluster, &'static str)> {
    static TOKEN: OnceLock<String> = OnceLock::new();
    let c = cluster()?;
    let token = TOKEN.get_or_init(|| {
        for n in ["a", "b"] {
            c.add_node(n, &[("kubernetes.io/arch", "amd64"), ("team", "infra")]);
        }
        c.kubectl(&["apply", "-k", "daemonset/base"], None)
            .success();
        wait_for_policy(c);
        c.pod_on("binfmtd", "binfmtd", "agent-a", "a");
        c.token("binfmtd", "binfmtd", Some("agent-a"))
    });
    Some((c, token.as_str()))
}

/// A policy takes effect once the API server has loaded it: poll with a request it denies
/// (a label outside the prefix, by an agent token without the node claim), in dry-run.
fn wait_for_policy(c: &Cluster) {
    let token = c.token("binfmtd", "binfmtd", None);
    for _ in 0..200 {
        let out = c.kubectl_token(
            &token,
            &[
                "label",
                "node",
                "b",
                "binfmtd.io/probe=x",
                "--dry-run=server",
            ],
        );
        if out.stderr.contains("binfmtd-node-labels") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the admission policy binfmtd-node-labels never took effect");
}

/// `binfmtd run --node-labels` in the sandbox until node `node` carries binfmtd.io/s390x;
/// `login` sets up the credentials and prefixes the command (the rest of it follows).
fn run_agent_until_labelled(
    c: &Cluster,
    node: &str,
    reader_token: &str,
    login: &str,
) -> common::Run {
    let script = format!(
        r#"
printf '%s' {ca} > /run/ca.pem
label() {{
    curl -sf --cacert /run/ca.pem -H "Authorization: Bearer $(cat /run/reader)" \
        https://127.0.0.1:{port}/api/v1/nodes/{node} | jq -r '.metadata.labels["binfmtd.io/s390x"] // "none"'
}}
printf '%s' {reader} > /run/reader
{login} $BINFMTD run --arch s390x --interpreter-dir $QEMU_DIR --node-labels 2>/tmp/agent.log & AGENT=$!
labelled() {{ [ "$(label)" = emulated ]; }}
WAIT_SECS=60 wait_for labelled || cat /tmp/agent.log >&2
kill $AGENT; wait $AGENT || true
section label; label
section log; cat /tmp/agent.log
"#,
        ca = sh_quote(&c.ca_pem),
        port = c.port,
        reader = sh_quote(reader_token),
    );
    Sandbox::new()
        .expect("the cluster tests run only where sandboxes do")
        .with_qemu(&["s390x"])
        .run_script(&script)
        .success()
}

#[test]
fn a_pod_bound_token_labels_its_own_node_and_nothing_else() {
    let Some((c, token)) = setup() else { return };
    let Some(_) = Sandbox::new() else { return };
    let login = format!(
        r#"mkdir -p /run/projected {SA_DIR}
printf '%s' {token} > /run/projected/token
printf '%s' {ca} > /run/projected/ca.crt
printf binfmtd > /run/projected/namespace
mount --bind /run/projected {SA_DIR}
env -u KUBECONFIG KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT={port} NODE_NAME=a"#,
        token = sh_quote(token),
        ca = sh_quote(&c.ca_pem),
        port = c.port,
    );
    let run = run_agent_until_labelled(c, "a", token, &login);
    assert_eq!(sections(&run.stdout)["label"], "emulated\n", "{run}");
    let labels = c.labels("a");
    assert_eq!(
        labels["team"], "infra",
        "a foreign label changed: {labels:?}"
    );
    // The API server saw the pod's identity, with the node claim the policy checks.
    let patches: Vec<_> = c
        .audit()
        .into_iter()
        .filter(|e| {
            e["verb"] == "patch"
                && e["objectRef"]["name"] == "a"
                && e["stage"] == "ResponseComplete"
        })
        .collect();
    assert!(!patches.is_empty(), "no PATCH of node a in the audit log");
    for e in &patches {
        assert_eq!(
            e["user"]["username"], "system:serviceaccount:binfmtd:binfmtd",
            "{e}"
        );
        assert_eq!(
            e["user"]["extra"]["authentication.kubernetes.io/node-name"],
            serde_json::json!(["a"]),
            "{e}"
        );
    }
    assert!(c.labels("b").keys().all(|k| !k.starts_with("binfmtd.io/")));
    // The bind mount stayed in the sandbox (the host may have a service-account directory of
    // its own, e.g. a CI pod: ours must not show there).
    let host = std::fs::read_to_string(std::path::Path::new(SA_DIR).join("token"));
    assert!(
        host.map(|t| t != token).unwrap_or(true),
        "the bind mount leaked to the host"
    );
}

#[test]
fn the_policy_denies_the_agent_token_another_node_and_foreign_labels() {
    let Some((c, token)) = setup() else { return };
    let other_node = c.kubectl_token(token, &["label", "node", "b", "binfmtd.io/arm64=emulated"]);
    assert!(!other_node.ok, "{other_node:?}");
    assert!(
        other_node
            .stderr
            .contains("binfmtd may change only the Node it runs on"),
        "{}",
        other_node.stderr
    );
    let foreign = c.kubectl_token(token, &["label", "node", "a", "--overwrite", "team=evil"]);
    assert!(!foreign.ok, "{foreign:?}");
    assert!(
        foreign.stderr.contains("only labels under its prefix"),
        "{}",
        foreign.stderr
    );
    let taint = c.kubectl_token(token, &["taint", "node", "a", "evil=1:NoSchedule"]);
    assert!(!taint.ok && taint.stderr.contains("spec"), "{taint:?}");
    // A token of the same account that no Pod is bound to has no node claim.
    let unbound = c
        .kubectl(&["create", "token", "binfmtd", "-n", "binfmtd"], None)
        .success()
        .stdout;
    let out = c.kubectl_token(
        unbound.trim(),
        &["label", "node", "a", "binfmtd.io/arm64=emulated"],
    );
    assert!(!out.ok, "{out:?}");
    assert!(
        out.stderr
            .contains("binfmtd may change only the Node it runs on"),
        "{}",
        out.stderr
    );
    assert_eq!(c.labels("a")["team"], "infra");
    assert!(!c.labels("a").contains_key("binfmtd.io/arm64"));
}

#[test]
fn other_service_accounts_cannot_forge_binfmtd_labels() {
    let Some((c, _)) = setup() else { return };
    // A service account allowed to patch every node (a controller's grant), in a Pod on node a.
    let grant = r#"
apiVersion: v1
kind: Namespace
metadata: {name: tenant}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: labeller, namespace: tenant}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: tenant-labeller}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: binfmtd-node-labels}
subjects: [{kind: ServiceAccount, name: labeller, namespace: tenant}]
"#;
    c.apply(grant);
    c.pod_on("tenant", "labeller", "labeller-a", "a");
    let token = c.token("tenant", "labeller", Some("labeller-a"));
    let forged = c.kubectl_token(
        &token,
        &["label", "node", "a", "binfmtd.io/riscv64=emulated"],
    );
    assert!(!forged.ok, "{forged:?}");
    assert!(
        forged
            .stderr
            .contains("no other service account may add, change or remove them"),
        "{}",
        forged.stderr
    );
    // Its other labels are none of the policy's business.
    c.kubectl_token(&token, &["label", "node", "a", "tenant.example/pool=blue"])
        .success();
}

#[test]
fn a_kubelet_kubeconfig_labels_its_own_node_only() {
    let Some((c, token)) = setup() else { return };
    let Some(_) = Sandbox::new() else { return };
    c.add_node("kubelet-c", &[("kubernetes.io/arch", "amd64")]);
    let kubeconfig =
        std::fs::read_to_string(c.user_kubeconfig("system:node:kubelet-c", "system:nodes"))
            .unwrap();
    // No node name given: binfmtd asks the API server who it is (SelfSubjectReview).
    let login = format!(
        "printf '%s' {kc} > /run/kubeconfig\nenv -u NODE_NAME -u KUBERNETES_SERVICE_HOST KUBECONFIG=/run/kubeconfig",
        kc = sh_quote(&kubeconfig)
    );
    let run = run_agent_until_labelled(c, "kubelet-c", token, &login);
    assert_eq!(sections(&run.stdout)["label"], "emulated\n", "{run}");
    // NodeRestriction: the same credentials may not label another node.
    let file = c.dir.join("kubelet-c.kubeconfig");
    std::fs::write(&file, &kubeconfig).unwrap();
    let out = c.kubectl_with(
        &file,
        &["label", "node", "b", "binfmtd.io/arm64=emulated"],
        None,
    );
    assert!(!out.ok && out.stderr.contains("forbidden"), "{out:?}");
}
