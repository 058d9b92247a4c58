//! The node labeller against an HTTPS API server started here (tests/support/apiserver.rs),
//! reached through a kubeconfig with a test CA by the same kube-rs client code the binary
//! uses: what is written, what is never touched, how many requests steady state costs, and
//! how refusals and failures are handled.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use binfmtd::kube::{KubeError, Labeller, Published, Publisher, Source, Target};
use binfmtd::labels::{Labels, Prefix};
use support::apiserver::ApiServer;

const TOKEN: &str = "t0ken-for-binfmtd";
const SA: &str = "system:serviceaccount:kube-system:binfmtd";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An API server knowing TOKEN (as the binfmtd service account) and node n1.
fn server(node_labels: &[(&str, &str)]) -> ApiServer {
    let s = ApiServer::start();
    s.add_token(TOKEN, SA);
    s.add_node("n1", node_labels);
    s
}

fn write_kubeconfig(dir: &Path, s: &ApiServer, user_yaml: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, s.kubeconfig(user_yaml)).unwrap();
    path
}

fn target(kubeconfig: PathBuf, node: Option<&str>) -> Target {
    Target {
        source: Source::Kubeconfig(vec![kubeconfig]),
        node_name: node.map(str::to_string),
        prefix: Prefix::default(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A labeller for n1 authenticating with TOKEN.
fn labeller(rt: &tokio::runtime::Runtime, dir: &Path, s: &ApiServer) -> Labeller {
    let kc = write_kubeconfig(dir, s, &format!("    token: {TOKEN}"));
    rt.block_on(Labeller::connect(target(kc, Some("n1"))))
        .unwrap()
}

/// Everything about the node except the labels under the prefix (and resourceVersion).
fn foreign_part(s: &ApiServer) -> String {
    let st = s.state.lock().unwrap();
    let mut node = st.nodes["n1"].clone();
    node["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let l = node["metadata"]["labels"].as_object_mut().unwrap();
    l.retain(|k, _| !k.starts_with("binfmtd.io/"));
    serde_json::to_string(&node).unwrap()
}

const FOREIGN: &[(&str, &str)] = &[
    ("kubernetes.io/arch", "amd64"),
    ("kubernetes.io/hostname", "ip-10-0-0-1.ec2.internal"),
    ("node.kubernetes.io/instance-type", "m7g.large"),
    ("binfmtd.io-other/arm64", "keep"),
    ("sub.binfmtd.io/arm64", "keep-too"),
    ("team", ""),
];

#[test]
fn labels_appear_stale_ones_go_and_foreign_ones_stay_byte_for_byte() {
    let mut start = FOREIGN.to_vec();
    start.push(("binfmtd.io/mips", "emulated")); // stale: from an older run
    let s = server(&start);
    let before = foreign_part(&s);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut l = labeller(&rt, dir.path(), &s);

    let want = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/386", "native"),
        ("binfmtd.io/arm64", "emulated"),
        ("binfmtd.io/riscv64", "emulated"),
    ]);
    let got = rt.block_on(l.publish(&want)).unwrap();
    assert!(matches!(got, Published::Patched(_)), "{got:?}");
    let ours = |s: &ApiServer| -> Labels {
        s.labels("n1")
            .into_iter()
            .filter(|(k, _)| k.starts_with("binfmtd.io/"))
            .collect()
    };
    assert_eq!(ours(&s), want);
    assert_eq!(
        foreign_part(&s),
        before,
        "labels outside the prefix changed"
    );

    // One merge patch, with the right media type, naming only keys under the prefix.
    let patches: Vec<_> = s
        .log()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        patches[0].query.contains("fieldManager=binfmtd"),
        "{}",
        patches[0].query
    );
    let body: serde_json::Value = serde_json::from_str(&patches[0].body).unwrap();
    let keys: Vec<&String> = body["metadata"]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(
        keys.iter().all(|k| k.starts_with("binfmtd.io/")),
        "{keys:?}"
    );
    assert_eq!(
        body["metadata"]["labels"]["binfmtd.io/mips"],
        serde_json::Value::Null
    );

    // riscv64 stops working: its label goes, the rest stays.
    let mut fewer = want.clone();
    fewer.remove("binfmtd.io/riscv64");
    rt.block_on(l.publish(&fewer)).unwrap();
    assert_eq!(ours(&s), fewer);
    assert_eq!(foreign_part(&s), before);
    assert_eq!(s.count("PATCH"), 2);
}

#[test]
fn steady_state_makes_no_writes() {
    let s = server(FOREIGN);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut l = labeller(&rt, dir.path(), &s);
    let want = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/arm64", "emulated"),
    ]);
    rt.block_on(l.publish(&want)).unwrap();
    // Unchanged reports: no request at all. Periodic re-reads: one GET each, no write.
    for round in 0..10 {
        assert_eq!(rt.block_on(l.publish(&want)).unwrap(), Published::Unchanged);
        if round % 2 == 0 {
            l.forget();
        }
    }
    assert_eq!(s.count("PATCH"), 1, "{:?}", s.log());
    assert_eq!(s.count("GET"), 1 + 5, "{:?}", s.log());
    assert_eq!(s.log().len(), 7);
    assert_eq!(l.counters().requests, 7);
    assert_eq!(l.counters().writes, 1);
}

#[test]
fn conflict_throttling_and_server_errors_are_retried() {
    let s = server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut l = labeller(&rt, dir.path(), &s);
    s.fault("GET", 500, None);
    s.fault("PATCH", 409, None);
    s.fault("PATCH", 429, Some(1));
    s.fault("PATCH", 503, None);
    let want = labels(&[("binfmtd.io/arm64", "emulated")]);
    rt.block_on(l.publish(&want)).unwrap();
    assert_eq!(s.labels("n1"), want);
    let log = s.log();
    let seq: Vec<(String, u16)> = log.iter().map(|r| (r.method.clone(), r.code)).collect();
    let expect = [
        ("GET", 500),
        ("GET", 200),
        ("PATCH", 409),
        ("GET", 200), // the conflict makes it re-read the node before patching again
        ("PATCH", 429),
        ("PATCH", 503),
        ("PATCH", 200),
    ];
    let expect: Vec<(String, u16)> = expect.iter().map(|(m, c)| (m.to_string(), *c)).collect();
    assert_eq!(seq, expect);
    // Retry-After: 1 was honoured.
    let waited = log[5].at - log[4].at;
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
}

#[test]
fn a_server_that_keeps_failing_is_given_up_on_with_the_last_error() {
    let s = server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut l = labeller(&rt, dir.path(), &s);
    for _ in 0..6 {
        s.fault("GET", 503, None);
    }
    let err = rt.block_on(l.publish(&labels(&[("binfmtd.io/arm64", "emulated")])));
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.contains("read node n1") && msg.contains("6 attempts") && msg.contains("503"),
        "{msg}"
    );
    assert_eq!(s.count("PATCH"), 0);
}

#[test]
fn forbidden_names_the_rbac_rule_and_the_user() {
    let s = server(&[]);
    s.deny(SA, "patch");
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut l = labeller(&rt, dir.path(), &s);
    let err = rt
        .block_on(l.publish(&labels(&[("binfmtd.io/arm64", "emulated")])))
        .unwrap_err();
    assert!(matches!(err, KubeError::Forbidden { .. }), "{err:?}");
    let msg = err.to_string();
    for want in [
        "node n1",
        "may not patch nodes",
        "HTTP 403",
        "user 'system:serviceaccount:kube-system:binfmtd'",
        r#"resources: ["nodes"], verbs: ["get", "patch"]"#,
        "ClusterRole",
    ] {
        assert!(msg.contains(want), "missing {want:?} in: {msg}");
    }
    // 403 is not retried: GET, PATCH, and one SelfSubjectReview to name the user.
    assert_eq!(s.count("PATCH"), 1);
}

#[test]
fn unauthorized_and_missing_nodes_are_clear_errors() {
    let s = server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let kc = write_kubeconfig(dir.path(), &s, "    token: wrong");
    let mut l = rt
        .block_on(Labeller::connect(target(kc.clone(), Some("n1"))))
        .unwrap();
    let msg = rt
        .block_on(l.publish(&Labels::new()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("HTTP 401") && msg.contains(&kc.display().to_string()),
        "{msg}"
    );
    assert_eq!(s.log().len(), 1, "401 must not be retried");

    let kc = write_kubeconfig(dir.path(), &s, &format!("    token: {TOKEN}"));
    let mut l = rt
        .block_on(Labeller::connect(target(kc, Some("ghost"))))
        .unwrap();
    let err = rt.block_on(l.publish(&Labels::new())).unwrap_err();
    assert!(matches!(err, KubeError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("node ghost does not exist"),
        "{err}"
    );
}

#[test]
fn bad_kubeconfig_is_a_config_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("missing");
    let err = match rt().block_on(Labeller::connect(target(kc.clone(), Some("n1")))) {
        Err(e) => e,
        Ok(_) => panic!("a missing kubeconfig was accepted"),
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&kc.display().to_string()) && msg.contains("--kubeconfig"),
        "{msg}"
    );
}

/// An exec credential plugin (as EKS's `aws eks get-token`): the token exists only in the
/// script's output, and the node name comes from the SelfSubjectReview of a kubelet user.
#[test]
fn exec_plugin_authenticates_and_node_name_comes_from_self_subject_review() {
    let s = ApiServer::start();
    s.add_token("from-exec-plugin", "system:node:i-0abc123");
    s.add_node("i-0abc123", &[]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("get-token");
    let ran = dir.path().join("ran");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {}\ncat <<'EOF'\n{{\"apiVersion\": \"client.authentication.k8s.io/v1beta1\", \"kind\": \"ExecCredential\", \"status\": {{\"token\": \"from-exec-plugin\", \"expirationTimestamp\": \"2099-01-01T00:00:00Z\"}}}}\nEOF\n",
            ran.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n      args: [\"eks\", \"get-token\"]\n      interactiveMode: Never",
        script.display()
    );
    let kc = write_kubeconfig(dir.path(), &s, &user);
    let rt = rt();
    let mut l = rt.block_on(Labeller::connect(target(kc, None))).unwrap();
    let want = labels(&[("binfmtd.io/arm64", "emulated")]);
    rt.block_on(l.publish(&want)).unwrap();
    assert_eq!(s.labels("i-0abc123"), want);
    assert!(std::fs::read_to_string(&ran).unwrap().contains("run"));
    let log = s.log();
    assert!(
        log.iter()
            .all(|r| r.user.as_deref() == Some("system:node:i-0abc123")),
        "{log:?}"
    );
    assert_eq!(
        log[0].path,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    );
}

#[test]
fn a_user_that_is_not_a_kubelet_needs_a_node_name() {
    let s = server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let kc = write_kubeconfig(dir.path(), &s, &format!("    token: {TOKEN}"));
    let mut l = rt.block_on(Labeller::connect(target(kc, None))).unwrap();
    let msg = rt
        .block_on(l.publish(&Labels::new()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(SA) && msg.contains("--node-name") && msg.contains("NODE_NAME"),
        "{msg}"
    );
}

/// The publisher thread: converges at once, puts back a label removed by hand at the next
/// re-read, and after a 403 keeps trying on its own until RBAC is fixed.
#[test]
fn publisher_converges_restores_and_recovers_from_rbac_errors() {
    let s = server(FOREIGN);
    s.deny(SA, "patch");
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), &s, &format!("    token: {TOKEN}"));
    let p = Publisher::start(target(kc, Some("n1")), Duration::from_millis(700)).unwrap();
    let want = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/arm64", "emulated"),
    ]);
    p.publish(want.clone());
    let st = wait_for(|| p.state().last_error.is_some().then(|| p.state()));
    assert!(st.last_error.unwrap().contains("may not patch nodes"));
    s.allow(SA, "patch");
    let t0 = Instant::now();
    wait_for(|| (p.state().published.as_ref() == Some(&want)).then_some(()));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let ours: BTreeMap<_, _> = s
        .labels("n1")
        .into_iter()
        .filter(|(k, _)| k.starts_with("binfmtd.io/"))
        .collect();
    assert_eq!(ours, want);

    s.remove_label("n1", "binfmtd.io/arm64");
    wait_for(|| {
        s.labels("n1")
            .contains_key("binfmtd.io/arm64")
            .then_some(())
    });
    p.stop();
}

/// A projected service-account token is rotated by the kubelet in place; kube-rs re-reads
/// the token file at least once a minute (after 50 s), so a revoked old token costs at most
/// one failed round. Same `token_file` path as the in-cluster configuration.
#[test]
fn a_rotated_token_file_is_picked_up() {
    let s = server(&[]);
    s.add_token("rotated-token", SA);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let user = format!("    tokenFile: {}", token_file.display());
    let kc = write_kubeconfig(dir.path(), &s, &user);
    let rt = rt();
    let loaded = Instant::now();
    let mut l = rt
        .block_on(Labeller::connect(target(kc, Some("n1"))))
        .unwrap();
    let want = labels(&[("binfmtd.io/arm64", "emulated")]);
    rt.block_on(l.publish(&want)).unwrap();

    std::fs::write(&token_file, "rotated-token").unwrap();
    s.revoke_token(TOKEN);
    l.forget();
    let err = rt.block_on(l.publish(&want)).unwrap_err();
    assert!(matches!(err, KubeError::Unauthorized { .. }), "{err:?}");

    std::thread::sleep(Duration::from_secs(51).saturating_sub(loaded.elapsed()));
    l.forget();
    rt.block_on(l.publish(&want)).unwrap();
    let tokens: Vec<Option<String>> = s.log().into_iter().map(|r| r.token).collect();
    assert_eq!(tokens.first().unwrap().as_deref(), Some(TOKEN));
    assert_eq!(
        tokens.last().unwrap().as_deref(),
        Some("rotated-token"),
        "{tokens:?}"
    );
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}
