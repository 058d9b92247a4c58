//! Benchmark: the placement webhook's latency at 200 pod creations per second on loopback
//! (the goal: p99 < 5 ms; no I/O in the admission path).
//!
//! - direct: POST /mutate over HTTPS paced at 200/s from 8 threads, once with a new TLS
//!   connection per call (`Connection: close`; latency from connect to the last byte), once
//!   on 8 kept-alive connections, as the API server's client reuses them;
//! - through the API server (tests/k8s/cluster.sh): pods created at 200/s in a namespace that
//!   opted in (the component's MutatingWebhookConfiguration, re-pointed at the webhook on
//!   loopback), and the anchor in the same run: the same pods in a namespace that did not opt in
//!   (the API server does not call the webhook). The difference of the two is what the webhook
//!   adds to a pod creation.
//!
//! Run: `cargo bench --bench placement_webhook` (see BENCHMARKS.md). BENCH_SHORT=1: fewer calls.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/place_webhook_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use binfmtd::place::{cert, webhook};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const RATE: u32 = 200;

fn calls() -> usize {
    if std::env::var_os("BENCH_SHORT").is_some() {
        200
    } else {
        2000
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summary(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    (
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        *d.last().unwrap(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Call `f(i)` for i in 0..n at RATE per second (open loop: call i starts at i/RATE s,
/// spread over `threads` threads), returning each call's latency.
fn paced(n: usize, threads: usize, f: impl Fn(usize) + Sync) -> Vec<Duration> {
    let start = Instant::now() + Duration::from_millis(50);
    let period = Duration::from_secs(1) / RATE;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (t..n).step_by(threads) {
                        let at = start + period * i as u32;
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let t0 = Instant::now();
                        f(i);
                        out.push(t0.elapsed());
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn main() {
    let n = calls();
    let names = cert::dns_names("binfmtd-placement", "pw-bench-own", &["127.0.0.1".into()]);
    let tls = cert::generate("pw-bench-own", &names, cert::now())
        .unwrap()
        .serving;
    let hook = webhook::spawn("127.0.0.1:0".parse().unwrap(), &tls, "pw-bench-own".into()).unwrap();
    let client_tls = support::tls_client(&tls.ca_pem);
    let direct = paced(n, 8, |i| {
        let body = support::review("app", &format!("p{i}"), &format!("u{i}"));
        let (code, _) = support::https(
            &client_tls,
            hook.addr,
            "127.0.0.1",
            "POST",
            "/mutate",
            &body,
        )
        .unwrap();
        assert_eq!(code, 200);
    });
    let (p50, p99, max) = summary(direct);
    println!(
        "webhook direct (HTTPS POST /mutate, new TLS connection each, {RATE}/s, {n} calls): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal p99 < 5 ms: {:.2}x of it)",
        ms(p50), ms(p99), ms(max), ms(p99) / 5.0
    );
    // As the API server calls: connections kept open (one per client thread), many reviews each.
    thread_local! {
        static KEPT: std::cell::RefCell<Option<support::Kept>> = const { std::cell::RefCell::new(None) };
    }
    let kept = paced(n, 8, |i| {
        let body = support::review("app", &format!("k{i}"), &format!("k{i}"));
        KEPT.with_borrow_mut(|k| {
            let k = k.get_or_insert_with(|| {
                support::Kept::connect(&client_tls, hook.addr, "127.0.0.1").unwrap()
            });
            let (code, head, _) = k.post("/mutate", &body).unwrap();
            assert_eq!(code, 200, "{head}");
        });
    });
    let (k50, k99, kmax) = summary(kept);
    println!(
        "webhook direct (HTTPS POST /mutate, 8 kept-alive connections, {RATE}/s, {n} calls): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal p99 < 5 ms: {:.2}x of it; ratio to a new connection each at p99: {:.2}x)",
        ms(k50), ms(k99), ms(kmax), ms(k99) / 5.0, ms(k99) / ms(p99)
    );

    let Some(c) = common::cluster::cluster() else {
        println!("through the API server: SKIPPED (no Kubernetes components; tests/k8s/build.sh)");
        return;
    };
    let component = support::component_webhook(c);
    use base64::Engine;
    let url = format!("https://127.0.0.1:{}/mutate", hook.addr.port());
    let mut m = support::mwc(&component, "pw-bench", &url, "pw-bench-own");
    m["webhooks"][0]["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&tls.ca_pem));
    c.apply(&m.to_string());
    for (ns, labels) in [
        (
            "pw-bench-in",
            json!({"binfmtd.io/placement": "enabled", "suite": "pw-bench"}),
        ),
        ("pw-bench-anchor", json!({"suite": "pw-bench"})),
    ] {
        c.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}).to_string());
    }
    let rt = support::rt();
    let client = support::client(&rt, &c.kubeconfig);
    let pod = |ns: &str, name: String| -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "registry.example/app:1"}]}}))
        .unwrap()
    };
    // Warm up (and wait until the API server calls the webhook and the ServiceAccounts exist).
    let until = Instant::now() + Duration::from_secs(60);
    for ns in ["pw-bench-in", "pw-bench-anchor"] {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        for i in 0.. {
            let created =
                rt.block_on(api.create(&PostParams::default(), &pod(ns, format!("warm-{i}"))));
            let gated = created
                .as_ref()
                .ok()
                .and_then(|p| p.spec.as_ref()?.scheduling_gates.as_ref())
                .is_some_and(|g| !g.is_empty());
            if created.is_ok() && (gated || ns == "pw-bench-anchor") && i >= 20 {
                break;
            }
            assert!(
                Instant::now() < until,
                "{ns}: warm-up did not settle: {created:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The two runs interleaved in rounds, so drift on the machine hits both alike.
    let mut through = Vec::new();
    let mut anchor = Vec::new();
    let rounds = 4;
    for round in 0..rounds {
        for (ns, out) in [
            ("pw-bench-in", &mut through),
            ("pw-bench-anchor", &mut anchor),
        ] {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            let pods: Vec<Pod> = (0..n / rounds)
                .map(|i| pod(ns, format!("r{round}-{i}")))
                .collect();
            out.extend(rt.block_on(paced_creates(api, pods)));
        }
    }
    let (a50, a99, amax) = summary(anchor);
    let (t50, t99, tmax) = summary(through);
    println!(
        "pod create, anchor (no webhook call, {RATE}/s, {n} pods): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(a50), ms(a99), ms(amax)
    );
    println!(
        "pod create through the webhook ({RATE}/s, {n} pods): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; added by the webhook: p50 {:+.2} ms, p99 {:+.2} ms (ratio to anchor p99: {:.2}x)",
        ms(t50), ms(t99), ms(tmax), ms(t50) - ms(a50), ms(t99) - ms(a99), ms(t99) / ms(a99)
    );
    // Pods the API server created without asking the webhook successfully (failed open).
    let api: Api<Pod> = Api::namespaced(client.clone(), "pw-bench-in");
    let listed = rt.block_on(api.list(&Default::default())).unwrap();
    let (mut measured, mut ungated) = (0, 0);
    for p in listed.items.iter().filter(|p| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with('r'))
    }) {
        measured += 1;
        let gates = p.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref());
        if gates.is_none_or(|g| g.is_empty()) {
            ungated += 1;
        }
    }
    println!("through the webhook: {ungated} of {measured} pods were created ungated (the call failed open)");
    let stats = &hook.stats;
    println!(
        "webhook answered {} reviews in all, direct and through the API server ({} gated)",
        stats.reviews.get(),
        stats.gated.get()
    );
    for ns in ["pw-bench-in", "pw-bench-anchor"] {
        c.kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    }
    c.kubectl(
        &["delete", "mutatingwebhookconfiguration", "pw-bench"],
        None,
    );
}

/// Create `pods` at RATE per second (open loop, each create a task on this runtime); the
/// latency of each.
async fn paced_creates(api: Api<Pod>, pods: Vec<Pod>) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut tasks = Vec::new();
    for p in pods {
        tick.tick().await;
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            api.create(&PostParams::default(), &p).await.unwrap();
            t0.elapsed()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
