//! In-cluster configuration, the way a DaemonSet pod sees it: `binfmtd run --node-labels`
//! (the BUILT binary, no --kubeconfig, no KUBECONFIG) with the service-account token, CA and
//! namespace at /var/run/secrets/kubernetes.io/serviceaccount (bind-mounted inside the
//! sandbox's private mount namespace, so the host path is untouched), NODE_NAME from the
//! environment as the downward API sets it, and KUBERNETES_SERVICE_HOST/PORT pointing at the
//! test API server.

mod common;
mod support;

use common::{sections, sh_quote, Sandbox};
use support::apiserver::ApiServer;

const SA: &str = "system:serviceaccount:kube-system:binfmtd";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[test]
fn in_cluster_service_account_configuration_works() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let s = ApiServer::start();
    s.add_token("in-cluster-token", SA);
    s.add_token("observer", "observer");
    s.add_node("n1", &[("kubernetes.io/arch", "amd64")]);
    let script = format!(
        r#"
mkdir -p /run/projected
printf '%s' in-cluster-token > /run/projected/token
printf '%s' {ca} > /run/projected/ca.crt
printf '%s' kube-system > /run/projected/namespace
mkdir -p {SA_DIR}
mount --bind /run/projected {SA_DIR}
printf '%s' {ca} > /run/ca.pem
label() {{
    curl -sf --cacert /run/ca.pem -H 'Authorization: Bearer observer' https://127.0.0.1:{port}/api/v1/nodes/n1 |
        jq -r '.metadata.labels["binfmtd.io/s390x"] // "none"'
}}
env -u KUBECONFIG KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT={port} NODE_NAME=n1 \
    $BINFMTD run --arch s390x --interpreter-dir $QEMU_DIR --node-labels 2>/tmp/agent.log & AGENT=$!
n=0
until [ "$(label)" = emulated ]; do
    n=$((n + 1)); [ $n -lt 600 ] || {{ cat /tmp/agent.log; exit 1; }}; sleep 0.05
done
kill $AGENT; wait $AGENT || true
section label; label
"#,
        ca = sh_quote(&s.ca_pem),
        port = s.port,
    );
    let run = sandbox.with_qemu(&["s390x"]).run_script(&script).success();
    assert_eq!(sections(&run.stdout)["label"], "emulated\n", "{run}");
    let labels = s.labels("n1");
    assert_eq!(
        labels.get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    let agent: Vec<_> = s
        .log()
        .into_iter()
        .filter(|r| r.user.as_deref() != Some("observer"))
        .collect();
    assert!(!agent.is_empty(), "{run}");
    assert!(
        agent.iter().all(|r| r.user.as_deref() == Some(SA)),
        "{agent:?}"
    );
    assert!(host_sa_untouched(), "the bind mount leaked to the host");
}

/// The host may have a service-account directory of its own (a CI pod); ours must not show.
fn host_sa_untouched() -> bool {
    std::fs::read_to_string(std::path::Path::new(SA_DIR).join("token"))
        .map(|t| t != "in-cluster-token")
        .unwrap_or(true)
}
