//! How the labeller finds and proves who it is, against the HTTPS test API server: a
//! kubeconfig with an exec credential plugin, a token file rotated in place, the node name
//! from a SelfSubjectReview, and the errors for bad credentials, configs and node names.

mod support;

use std::time::{Duration, Instant};

use binfmtd::kube::{KubeError, Labeller};
use binfmtd::labels::Labels;
use support::apiserver::client::*;
use support::apiserver::ApiServer;

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
