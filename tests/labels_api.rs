//! The node labeller against an HTTPS API server started here (tests/support/apiserver/),
//! reached through a kubeconfig with a test CA by the same kube-rs client code the binary
//! uses: what is written, what is never touched, how many requests steady state costs, and
//! how refusals and failures are handled.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use binfmtd::kube::{KubeError, Published, Publisher};
use binfmtd::labels::Labels;
use support::apiserver::client::*;
use support::apiserver::ApiServer;

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

/// SIGTERM must end the agent within 1 s even while a publish waits out a Retry-After.
#[test]
fn stopping_does_not_wait_for_a_throttled_publish() {
    let s = server(&[]);
    for _ in 0..6 {
        s.fault("GET", 429, Some(30));
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), &s, &format!("    token: {TOKEN}"));
    let p = Publisher::start(target(kc, Some("n1")), Duration::from_secs(300)).unwrap();
    p.publish(labels(&[("binfmtd.io/arm64", "emulated")]));
    wait_for(|| (s.count("GET") == 1).then_some(()));
    let t0 = Instant::now();
    p.stop();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
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
