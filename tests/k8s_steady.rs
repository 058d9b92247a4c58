//! What node labelling costs a real kube-apiserver at steady state, counted in its audit log:
//! binfmtd's publisher (the thread `binfmtd run --node-labels` runs), with the DaemonSet's
//! identity (a token bound to a Pod on the node) and the admission policy applied, is handed
//! unchanged labels every 50 ms while it re-reads its Node every 500 ms instead of every 5
//! minutes. Every request the server logged for that identity is counted and scaled to the real
//! period: at most one GET per re-read period and no write, i.e. <= 12 requests and 0 writes per
//! node per hour (BENCHMARKS.md, "Node labels").

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use binfmtd::kube::{Publisher, Source, Target};
use binfmtd::labels::Prefix;
use common::cluster::cluster;

const AGENT: &str = "system:serviceaccount:binfmtd:binfmtd";
const RESYNC_FAST: Duration = Duration::from_millis(500);
const STEADY_FOR: Duration = Duration::from_secs(20);

#[test]
fn steady_state_is_one_get_per_reread_period_and_no_writes() {
    let Some(c) = cluster() else { return };
    c.add_node("steady", &[("kubernetes.io/arch", "amd64")]);
    c.kubectl(&["apply", "-k", "daemonset/base"], None)
        .success();
    c.pod_on("binfmtd", "binfmtd", "agent", "steady");
    let token = c.token("binfmtd", "binfmtd", Some("agent"));
    let kubeconfig = c.dir.join("steady.kubeconfig");
    std::fs::write(&kubeconfig, c.token_kubeconfig(token.trim())).unwrap();
    let target = Target {
        source: Source::Kubeconfig(vec![kubeconfig]),
        node_name: Some("steady".into()),
        prefix: Prefix::default(),
    };
    let desired = BTreeMap::from([("binfmtd.io/arm64".to_string(), "emulated".to_string())]);
    let p = Publisher::start(target, RESYNC_FAST).unwrap();

    // Converge first (the policy may need a moment to load: the publisher retries), then count.
    let deadline = Instant::now() + Duration::from_secs(60);
    p.publish(desired.clone());
    while c
        .labels("steady")
        .get("binfmtd.io/arm64")
        .and_then(|v| v.as_str())
        != Some("emulated")
    {
        assert!(Instant::now() < deadline, "never labelled: {:?}", p.state());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = agent_requests(c);
    let start = Instant::now();
    while start.elapsed() < STEADY_FOR {
        p.publish(desired.clone());
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    p.stop();
    std::thread::sleep(Duration::from_secs(1)); // the audit log is written asynchronously
    let during: Vec<_> = agent_requests(c).into_iter().skip(before.len()).collect();
    let count = |verb: &str| during.iter().filter(|(v, _)| v == verb).count();
    let (gets, writes) = (count("get"), during.len() - count("get"));
    let periods = elapsed.as_secs_f64() / RESYNC_FAST.as_secs_f64();
    let per_hour = during.len() as f64 / periods * 3600.0 / binfmtd::publish::RESYNC.as_secs_f64();
    println!(
        "real kube-apiserver, audit log, {:.1} s = {periods:.1} re-read periods of {} ms: {} requests (get {gets}, other {writes}); \
         per node per hour at the {} s period: {per_hour:.1} requests, {writes} writes (BENCHMARKS.md claims 12.0 and 0)",
        elapsed.as_secs_f64(),
        RESYNC_FAST.as_millis(),
        during.len(),
        binfmtd::publish::RESYNC.as_secs()
    );
    assert_eq!(writes, 0, "writes at steady state: {during:?}");
    assert!(
        (gets as f64) <= periods + 1.0 && (gets as f64) >= periods - 2.0,
        "{gets} GETs in {periods:.1} periods: {during:?}"
    );
}

/// (verb, node) of every completed request by binfmtd's identity, in log order.
fn agent_requests(c: &common::cluster::Cluster) -> Vec<(String, String)> {
    c.audit()
        .into_iter()
        .filter(|e| e["stage"] == "ResponseComplete" && e["user"]["username"] == AGENT)
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or("").to_string(),
                e["objectRef"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
