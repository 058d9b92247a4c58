//! In-cluster configuration, the way a DaemonSet pod sees it: the service-account token, CA
//! and namespace at /var/run/secrets/kubernetes.io/serviceaccount (bind-mounted inside the
//! sandbox's private mount namespace, so the host path is untouched) and
//! KUBERNETES_SERVICE_HOST/PORT pointing at the test API server.

mod common;
mod support;

use std::time::Duration;

use binfmtd::kube::{Labeller, Source, Target};
use binfmtd::labels::{Labels, Prefix};
use common::{sh_quote, Sandbox};
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
    s.add_node("n1", &[("kubernetes.io/arch", "amd64")]);
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        r#"
mkdir -p /run/projected
printf '%s' in-cluster-token > /run/projected/token
printf '%s' {ca} > /run/projected/ca.crt
printf '%s' kube-system > /run/projected/namespace
mkdir -p {SA_DIR}
mount --bind /run/projected {SA_DIR}
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT={port} \
    {exe} --exact in_cluster_child --ignored --nocapture --test-threads=1
"#,
        ca = sh_quote(&s.ca_pem),
        port = s.port,
        exe = sh_quote(&exe.display().to_string()),
    );
    let run = sandbox.run_script(&script).success();
    assert!(run.stdout.contains("1 passed"), "{run}");
    let labels = s.labels("n1");
    assert_eq!(
        labels.get("binfmtd.io/arm64").map(String::as_str),
        Some("emulated")
    );
    assert_eq!(
        labels.get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    let log = s.log();
    assert!(
        !log.is_empty() && log.iter().all(|r| r.user.as_deref() == Some(SA)),
        "{log:?}"
    );
    assert!(host_sa_untouched(), "the bind mount leaked to the host");
}

/// The host may have a service-account directory of its own (a CI pod); ours must not show.
fn host_sa_untouched() -> bool {
    std::fs::read_to_string(std::path::Path::new(SA_DIR).join("token"))
        .map(|t| t != "in-cluster-token")
        .unwrap_or(true)
}

/// Run by `in_cluster_service_account_configuration_works` inside the sandbox (ignored on
/// its own: it needs the mounted service account and the server's address).
#[test]
#[ignore]
fn in_cluster_child() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = Target {
        source: Source::resolve(None, None),
        node_name: Some("n1".into()),
        prefix: Prefix::default(),
    };
    assert_eq!(target.source, Source::InCluster);
    let mut l = rt.block_on(Labeller::connect(target)).unwrap();
    let want: Labels = [("binfmtd.io/arm64".to_string(), "emulated".to_string())].into();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), l.publish(&want))
            .await
            .unwrap()
    })
    .unwrap();
}
