//! Placement costs, each printed beside its anchor measured in the same run:
//!
//! 1. a decision with a warm cache (platforms from the cache, `decide`, the JSON patch) per
//!    pod, against one cold lookup of the same image in the loopback registry;
//! 2. RSS of 10,000 cached references, against the process's RSS before;
//! 3. gate-to-ungate and gate-to-bound with a cold cache (a fresh `binfmtd place` each
//!    round) against the real API server, scheduler and loopback registry, against the
//!    anchor: the same pod without the component (create -> bound).
//!
//! `cargo bench --bench placement` (needs tests/k8s/build.sh's components and the registry
//! packages of tests/deps.sh; a part whose parts are missing is skipped with the reason).

#[path = "../tests/common/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "../tests/common/registry.rs"]
#[allow(dead_code)]
mod registry;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binfmtd::labels::Prefix;
use binfmtd::place::registry::{cache, http::Http, Cache, Resolver};
use binfmtd::placement::decide::decide;
use binfmtd::placement::nodes::capabilities;
use binfmtd::placement::patch::patch;
use binfmtd::placement::platforms::PlatformSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn pctl(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let labels = match i % 3 {
                0 => json!({"kubernetes.io/arch": "amd64", "binfmtd.io/amd64": "native"}),
                1 => json!({"kubernetes.io/arch": "arm64", "binfmtd.io/arm64": "native", "binfmtd.io/amd64": "emulated"}),
                _ => json!({"kubernetes.io/arch": "arm64"}),
            };
            serde_json::from_value(json!({"metadata": {"name": format!("n{i}"), "labels": labels}})).unwrap()
        })
        .collect()
}

fn gated_pod(ns: &str, name: &str, images: &[&str], gate: bool) -> serde_json::Value {
    let cs: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": cs, "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}});
    if gate {
        p["spec"]["schedulingGates"] = json!([{"name": "binfmtd.io/placement"}]);
    }
    p
}

/// 1 and 2: in-process against the loopback registry.
fn decisions(reg: &registry::Registry) {
    let rt = rt();
    let resolver = Resolver::new(Http::new(std::slice::from_ref(&reg.ca_path)).unwrap(), Cache::new(cache::CAPACITY, cache::TAG_TTL));
    let images = [reg.reference("amd64only:v1"), reg.reference("single:v1")];
    let t0 = Instant::now();
    for i in &images {
        rt.block_on(resolver.resolve(i, &[])).unwrap();
    }
    let cold_ms = t0.elapsed().as_secs_f64() * 1e3 / images.len() as f64;
    let prefix = Prefix::default();
    let caps: Vec<_> = nodes(300).iter().map(|n| capabilities(n, &prefix)).collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let pod: Pod = serde_json::from_value(gated_pod("b", "p", &refs, true)).unwrap();
    let mut per_pod = Vec::new();
    for _ in 0..5_000 {
        let t = Instant::now();
        let mut sets = BTreeMap::new();
        for i in &images {
            let s = rt.block_on(resolver.resolve(i, &[])).unwrap();
            sets.insert(i.clone(), PlatformSet::clone(&s));
        }
        let d = decide(&pod, &sets, &caps, &prefix);
        let ops = patch(&pod, &d, &prefix);
        std::hint::black_box(ops);
        per_pod.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = per_pod.iter().sum::<f64>() / per_pod.len() as f64;
    let p99 = pctl(&mut per_pod, 0.99);
    println!(
        "decision, warm cache (2 images, 300 nodes): mean {mean:.1} us, p99 {p99:.1} us per pod; \
         anchor: one cold registry lookup {cold_ms:.2} ms; ratio {:.4}",
        mean / (cold_ms * 1e3)
    );

    // 2: 10,000 references, each its own set (an index of two platforms, as most are).
    let template = rt.block_on(resolver.resolve(&reg.reference("multi:v1"), &[])).unwrap();
    let before = rss_kib();
    let mut c = Cache::new(cache::CAPACITY, cache::TAG_TTL);
    let now = Instant::now();
    for i in 0..10_000u32 {
        let mut s = PlatformSet::clone(&template);
        for e in &mut s.entries {
            e.digest = format!("sha256:{i:064x}");
        }
        c.put(
            Some(format!("registry.example.com/team/app-{i}:v1.2.3")),
            format!("registry.example.com/team/app-{i}@sha256:{i:064x}"),
            Arc::new(s),
            now,
        );
    }
    let after = rss_kib();
    std::hint::black_box(&c);
    println!(
        "RSS with 10,000 cached references: +{} KiB ({:.0} bytes per reference); anchor: the process before, {before} KiB; ratio {:.3}",
        after - before,
        (after - before) as f64 * 1024.0 / 10_000.0,
        after as f64 / before as f64
    );
}

struct Controller(Child);
impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get_pod(k: &cluster::Cluster, ns: &str, name: &str) -> serde_json::Value {
    let out = k.kubectl(&["get", "pod", "-n", ns, name, "-o", "json"], None).success();
    serde_json::from_str(&out.stdout).unwrap()
}

/// Poll (every 20 ms) until `done` holds; the time since `t0`.
fn until(k: &cluster::Cluster, ns: &str, name: &str, t0: Instant, done: impl Fn(&serde_json::Value) -> bool) -> f64 {
    loop {
        if done(&get_pod(k, ns, name)) {
            return t0.elapsed().as_secs_f64() * 1e3;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "pod {ns}/{name} stuck");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 3: the real control plane.
fn gate_to_ungate(k: &cluster::Cluster, reg: &registry::Registry) {
    for (name, labels) in [
        ("amd64-native", json!({"kubernetes.io/arch": "amd64", "binfmtd.io/amd64": "native"})),
        ("arm64-emulates", json!({"kubernetes.io/arch": "arm64", "binfmtd.io/arm64": "native", "binfmtd.io/amd64": "emulated"})),
    ] {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
        k.kubectl(&["create", "-f", "-"], Some(&node.to_string())).success();
        let status = json!({"status": {"capacity": {"pods": "110"}, "allocatable": {"pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "bench"}]}});
        k.kubectl(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status.to_string()], None)
            .success();
    }
    k.kubectl(&["create", "namespace", "bench"], None).success();
    let img = reg.reference("amd64only:v1");
    let rounds = 5;
    let (mut ungate, mut gate_bound, mut anchor) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        // A fresh controller: its cache is cold.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let _c = Controller(
            Command::new(env!("CARGO_BIN_EXE_binfmtd"))
                .args(["place", "--namespace", "default", "--no-webhook", "--listen", &format!("127.0.0.1:{port}")])
                // A Lease of its own: the last round's killed controller still holds its Lease.
                .args(["--lease", &format!("bench-{r}")])
                .arg("--kubeconfig")
                .arg(&k.kubeconfig)
                .arg("--registry-ca")
                .arg(&reg.ca_path)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let t = Instant::now();
        while !ready(port) {
            assert!(t.elapsed() < Duration::from_secs(30), "controller never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let name = format!("gated-{r}");
        let t0 = Instant::now();
        k.kubectl(&["create", "-f", "-"], Some(&gated_pod("bench", &name, &[&img], true).to_string())).success();
        ungate.push(until(k, "bench", &name, t0, |p| p["spec"]["schedulingGates"].is_null()));
        gate_bound.push(until(k, "bench", &name, t0, |p| p["spec"]["nodeName"].is_string()));
        let name = format!("plain-{r}");
        let t0 = Instant::now();
        k.kubectl(&["create", "-f", "-"], Some(&gated_pod("bench", &name, &[&img], false).to_string())).success();
        anchor.push(until(k, "bench", &name, t0, |p| p["spec"]["nodeName"].is_string()));
    }
    let med = |v: &mut Vec<f64>| pctl(v, 0.5);
    let (u, b, a) = (med(&mut ungate), med(&mut gate_bound), med(&mut anchor));
    println!(
        "gate-to-ungate, cold cache: median {u:.0} ms; create-to-bound with placement {b:.0} ms; \
         anchor: the same pod without the component, create-to-bound {a:.0} ms; ratio {:.2} ({rounds} rounds, kubectl \
         polling every 20 ms, so each figure includes one kubectl start per poll)",
        b / a
    );
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

fn main() {
    let Some(reg) = registry::registry(registry::Auth::Anonymous) else {
        return;
    };
    decisions(reg);
    match cluster::cluster() {
        Some(k) => gate_to_ungate(k, reg),
        None => println!("gate-to-ungate: skipped (no Kubernetes components)"),
    }
}
