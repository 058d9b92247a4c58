//! Benchmark: what node labelling costs the API server, and how fast labels follow a change.
//!
//! Against the HTTPS test API server (tests/support/apiserver/), through the same kube-rs
//! client and publisher thread `binfmtd run --node-labels` uses:
//! - steady state: the agent hands over unchanged labels every 50 ms (its poll interval is
//!   250 ms, so this is 5x busier) while the publisher re-reads the node every `RESYNC_FAST`;
//!   requests and writes counted at the server, then scaled to the real re-read period
//!   (`publish::RESYNC`, 5 min) per hour, and to a 5,000-node cluster;
//! - convergence: time from handing over a changed label set to the server holding it;
//! - memory: VmRSS/VmHWM of `binfmtd run` keeping two foreign arches working in the private
//!   sandbox, with and without `--node-labels` (publishing to the test API server), in the
//!   same run; the static musl release binary when it has been built, else this profile's.
//!
//! Run: `cargo bench --bench labels` (see BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/support/apiserver/mod.rs"]
#[allow(dead_code)]
mod apiserver;
#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apiserver::ApiServer;
use binfmtd::kube::{Publisher, Source, Target};
use binfmtd::labels::{Labels, Prefix};

const SA: &str = "system:serviceaccount:kube-system:binfmtd";
const RESYNC_FAST: Duration = Duration::from_millis(500);
const STEADY_FOR: Duration = Duration::from_secs(20);
const CHANGES: usize = 40;

fn labels(arm64: &str) -> Labels {
    BTreeMap::from([
        ("binfmtd.io/amd64".to_string(), "native".to_string()),
        ("binfmtd.io/arm64".to_string(), arm64.to_string()),
    ])
}

fn main() {
    let s = ApiServer::start();
    s.add_token("bench", SA);
    s.add_node("n1", &[("kubernetes.io/arch", "amd64")]);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, s.kubeconfig("    token: bench")).unwrap();
    let target = Target {
        source: Source::Kubeconfig(vec![kc]),
        node_name: Some("n1".into()),
        prefix: Prefix::default(),
    };
    let p = Publisher::start(target, RESYNC_FAST).unwrap();

    // Converge once, then count from a clean log.
    p.publish(labels("emulated"));
    wait(|| s.labels("n1").get("binfmtd.io/arm64").map(String::as_str) == Some("emulated"));
    s.state.lock().unwrap().log.clear();
    let start = Instant::now();
    while start.elapsed() < STEADY_FOR {
        p.publish(labels("emulated"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    let (gets, writes, total) = (s.count("GET"), s.count("PATCH"), s.log().len());
    let periods = elapsed.as_secs_f64() / RESYNC_FAST.as_secs_f64();
    let per_period = total as f64 / periods;
    let per_hour = per_period * 3600.0 / binfmtd::publish::RESYNC.as_secs_f64();
    println!(
        "steady state over {:.1} s ({periods:.1} re-read periods of {} ms, unchanged labels handed over every 50 ms):",
        elapsed.as_secs_f64(),
        RESYNC_FAST.as_millis()
    );
    println!("  requests {total} (GET {gets}, PATCH {writes}), {per_period:.2} per re-read period");
    println!(
        "  per node per hour at the {} s re-read period: {per_hour:.1} requests, {} writes (goal <= 12, 0 writes)",
        binfmtd::publish::RESYNC.as_secs(),
        writes
    );
    println!(
        "  5,000-node cluster: {:.1} requests/s (ratio to goal: {:.2}x)",
        per_hour * 5000.0 / 3600.0,
        per_hour / 12.0
    );

    // Convergence: flip arm64 between emulated and missing.
    let mut times = Vec::new();
    for i in 0..CHANGES {
        let want = if i % 2 == 0 {
            labels("native")
        } else {
            labels("emulated")
        };
        let value = want["binfmtd.io/arm64"].clone();
        let t0 = Instant::now();
        p.publish(want);
        wait(|| s.labels("n1").get("binfmtd.io/arm64") == Some(&value));
        times.push(t0.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "label convergence after a change, {CHANGES} changes: median {:.2} ms, p95 {:.2} ms, max {:.2} ms (goal 2000 ms; ratio of max to goal {:.4}x)",
        ms(times[CHANGES / 2]),
        ms(times[CHANGES * 95 / 100]),
        ms(times[CHANGES - 1]),
        ms(times[CHANGES - 1]) / 2000.0
    );
    p.stop();
    rss(&s);
}

/// The agent's resident memory after convergence, without and with node labels.
fn rss(s: &ApiServer) {
    let Some(sb) = common::Sandbox::new() else {
        return;
    };
    let musl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/x86_64-unknown-linux-musl/release/binfmtd"
    );
    let bin = if cfg!(target_arch = "x86_64") && std::path::Path::new(musl).exists() {
        musl.to_string()
    } else {
        env!("CARGO_BIN_EXE_binfmtd").to_string()
    };
    let script = r#"
printf '%s' "$KUBECONFIG_TEXT" > /run/kubeconfig
for mode in plain labels; do
    extra=""
    [ $mode = labels ] && extra="--node-labels --kubeconfig /run/kubeconfig --node-name n1"
    $BIN run --arch s390x,riscv64 --interpreter-dir $QEMU_DIR --status-file /run/$mode/status.json $extra 2>/tmp/$mode.log & P=$!
    n=0
    until [ -s /run/$mode/status.json ] && [ "$(jq -r '.daemon.arches | map(.state == "working") | all' /run/$mode/status.json)" = true ]; do
        n=$((n + 1)); [ $n -lt 500 ] || { cat /tmp/$mode.log; exit 1; }; sleep 0.02
    done
    sleep 3
    echo "$mode $(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$P/status) $(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$P/status)"
    kill $P; wait $P || true
done
"#;
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .env("BIN", &bin)
        .env("KUBECONFIG_TEXT", s.kubeconfig("    token: bench"))
        .run_script(script)
        .success();
    let kib: BTreeMap<&str, (f64, f64)> = run
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first().copied()?,
                (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?),
            ))
        })
        .collect();
    let (plain, labels) = (kib["plain"], kib["labels"]);
    assert!(
        s.labels("n1").contains_key("binfmtd.io/s390x"),
        "labels were not published"
    );
    println!("binfmtd run RSS after convergence ({bin}):");
    println!(
        "  without --node-labels  VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        plain.0 / 1024.0,
        plain.1 / 1024.0
    );
    println!(
        "  with --node-labels     VmRSS {:.1} MiB, VmHWM {:.1} MiB   ratio {:.2}x (goal < 16 MiB)",
        labels.0 / 1024.0,
        labels.1 / 1024.0,
        labels.0 / plain.0
    );
}

fn wait(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_micros(200));
    }
}
