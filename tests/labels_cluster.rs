//! In-cluster configuration, the way a DaemonSet pod sees it after entering the host's mount
//! namespace: `binfmtd run --node-labels` (the BUILT binary, no --kubeconfig, no KUBECONFIG)
//! with the service-account files and ConfigMap only in the pod's own mount namespace. The
//! plain in-cluster case (token, CA, NODE_NAME, KUBERNETES_SERVICE_HOST/PORT) runs against a
//! real kube-apiserver in tests/k8s_labels.rs; this one needs only the test API server's log.

mod common;
mod support;

use common::{sections, sh_quote, Sandbox};
use support::apiserver::ApiServer;

const SA: &str = "system:serviceaccount:kube-system:binfmtd";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The wait for the label, shared by both tests: `$AGENT` is running.
const WAIT_FOR_LABEL: &str = r#"
labelled() { [ "$(label)" = emulated ]; }
WAIT_SECS=30 wait_for labelled
"#;

/// `label`: the node's binfmtd.io/s390x label as an observer sees it.
fn label_fn(s: &ApiServer) -> String {
    format!(
        r#"
printf '%s' {ca} > /run/ca.pem
label() {{
    curl -sf --cacert /run/ca.pem -H 'Authorization: Bearer observer' https://127.0.0.1:{port}/api/v1/nodes/n1 |
        jq -r '.metadata.labels["binfmtd.io/s390x"] // "none"'
}}
"#,
        ca = sh_quote(&s.ca_pem),
        port = s.port,
    )
}

fn api_server() -> ApiServer {
    let s = ApiServer::start();
    s.add_token("in-cluster-token", SA);
    s.add_token("observer", "observer");
    s.add_node("n1", &[("kubernetes.io/arch", "amd64")]);
    s
}

/// Every request but the observer's came with the service account's token.
fn assert_agent_was_the_service_account(s: &ApiServer, run: &common::Run) {
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
    assert_eq!(
        s.labels("n1").get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    assert!(host_sa_untouched(), "the bind mount leaked to the host");
}

/// The DaemonSet's case: the service-account files and the ConfigMap are mounted in the pod's
/// mount namespace only, laid out as the kubelet does (`..data` symlinks), and binfmtd leaves
/// that namespace first thing (`--mount-namespace /proc/1/ns/mnt`, the sandbox's "host", which
/// has neither). It still logs in with the pod's token, converges to the arches the
/// ConfigMap names (no --arch on the command line), and follows an update of the ConfigMap.
#[test]
fn pod_files_are_read_after_entering_the_host_mount_namespace() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let s = api_server();
    let pod = format!(
        r#"set -eu
mount -t tmpfs tmpfs /run/pod
mkdir -p /run/pod/sa/..2026_12_02 /run/pod/config/..2026_12_02
printf '%s' in-cluster-token > /run/pod/sa/..2026_12_02/token
printf '%s' {ca} > /run/pod/sa/..2026_12_02/ca.crt
printf 'arches = ["s390x"]\n' > /run/pod/config/..2026_12_02/config.toml
for d in sa config; do ln -s ..2026_12_02 /run/pod/$d/..data; done
ln -s ..data/token /run/pod/sa/token
ln -s ..data/ca.crt /run/pod/sa/ca.crt
ln -s ..data/config.toml /run/pod/config/config.toml
mount --bind /run/pod/sa {SA_DIR}
exec env -u KUBECONFIG KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT={port} NODE_NAME=n1 \
    $BINFMTD run --mount-namespace /proc/1/ns/mnt --config /run/pod/config/config.toml \
    --interpreter-dir $QEMU_DIR --node-labels
"#,
        ca = sh_quote(&s.ca_pem),
        port = s.port,
    );
    let script = format!(
        r#"
mkdir -p /run/pod {SA_DIR}
{label}
unshare --mount sh -c {pod} 2>/tmp/agent.log & AGENT=$!
{WAIT_FOR_LABEL}
# The kubelet updates a ConfigMap by swapping ..data; the agent's watcher sees it through the
# pod's namespace, which only the agent's own handle keeps alive (nothing else runs in it).
for f in /proc/$AGENT/fd/*; do case $(readlink $f) in mnt:*) POD_NS=$f;; esac; done
nsenter --mount=$POD_NS sh -c '
    cd /run/pod/config && mkdir ..2026_12_03
    printf "arches = [\"s390x\"]\ncredentials = true\n" > ..2026_12_03/config.toml
    ln -s ..2026_12_03 ..data_tmp && mv -T ..data_tmp ..data'
WAIT_SECS=30 wait_for grep -q "^flags: .*C" /proc/sys/fs/binfmt_misc/binfmtd-s390x
section reloaded; grep ^flags: /proc/sys/fs/binfmt_misc/binfmtd-s390x
kill $AGENT; wait $AGENT || true
section host-view; ls -A {SA_DIR} /run/pod | tr '\n' ' '; echo
section label; label
section entries; entries
"#,
        pod = sh_quote(&pod),
        label = label_fn(&s),
    );
    let run = sandbox.with_qemu(&["s390x"]).run_script(&script).success();
    let out = sections(&run.stdout);
    assert_eq!(out["label"], "emulated\n", "{run}");
    assert!(out["entries"].contains("binfmtd-s390x"), "{run}");
    assert!(out["reloaded"].contains("C"), "{run}");
    // The "host" never saw the pod's files: they were read through the pod's root.
    assert!(!out["host-view"].contains("token"), "{run}");
    assert!(!out["host-view"].contains("config.toml"), "{run}");
    assert_agent_was_the_service_account(&s, &run);
}

/// The host may have a service-account directory of its own (a CI pod); ours must not show.
fn host_sa_untouched() -> bool {
    std::fs::read_to_string(std::path::Path::new(SA_DIR).join("token"))
        .map(|t| t != "in-cluster-token")
        .unwrap_or(true)
}
