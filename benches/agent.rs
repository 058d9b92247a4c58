//! Benchmark: the agent (`binfmtd run`) in a private binfmt_misc instance (the host's entries
//! are never touched), each figure beside its anchor measured in the same run:
//!
//! - start to READY with 2 arches and a warm cache (entries and cached interpreters from an
//!   earlier run), beside the one-shot `binfmtd install` of the same arches (goal < 300 ms);
//! - repair latency after a full flush (`-1 > status`) until a foreign binary runs again,
//!   p50/p99 over 60 flushes with default settings (goal p99 < 500 ms), beside the same wait
//!   without an agent (no peer repairs: the binary never runs again);
//! - RSS after convergence with 4 arches (goal < 8 MiB), beside the peak RSS of `install`;
//! - idle cost over 60 s after convergence with 4 arches: CPU time and wakeups (context
//!   switches) per second (goal < 0.1% of one core), beside a shell loop polling the same
//!   instance at the same interval.
//!
//! Flushes are 3.2 s apart: 20 instance-wide changes within a minute would be a fight (a
//! restart loop), and the agent would rightly hold off.
//!
//! Run: `cargo bench --bench agent` (as root; see BENCHMARKS.md). Takes about 5 minutes.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{sections, Busybox, Sandbox};

const HELPERS: &str = r#"
BM=/proc/sys/fs/binfmt_misc
STATUS=/run/binfmtd/status.json
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
ready() { [ -s $STATUS ] && [ "$(jq -r '.daemon.arches | map(.state == "working") | all' $STATUS)" = true ]; }
"#;

fn sandbox() -> Option<Sandbox> {
    Some(Sandbox::new()?.with_qemu(&["s390x", "riscv64", "aarch64", "ppc64le"]))
}

/// Start to READY (the agent's log line that goes with READY=1), warm, 10 times; install beside it.
fn start_to_ready(sb: &Sandbox) -> (Vec<u64>, Vec<u64>) {
    let run = sb.run_script(&format!(
        "{HELPERS}\n\
         args='--interpreter-dir /run/qemu --arch s390x,riscv64'\n\
         $BINFMTD install $args >/dev/null\n\
         section agent\n\
         for i in $(seq 10); do\n\
           t0=$(now); $BINFMTD run $args --log-format json 2>/tmp/log & a=$!\n\
           until grep -q '\"status\":\"working' /tmp/log; do sleep 0.001; done\n\
           ts=$(grep '\"status\":\"working' /tmp/log | jq -r .timestamp)\n\
           t1=$(date -d \"$ts\" +%s%N); ms $t0 $t1\n\
           kill $a; wait $a\n\
         done\n\
         section install\n\
         for i in $(seq 10); do t0=$(now); $BINFMTD install $args >/dev/null; ms $t0 $(now); done"
    ));
    let s = sections(&run.success().stdout);
    (numbers(&s["agent"]), numbers(&s["install"]))
}

/// Flush, then wait until the s390x busybox runs again; 20 flushes per sandbox run.
fn repair_latency(sb: &Sandbox) -> Vec<u64> {
    let bb = Busybox::by_debian("s390x").host_path();
    let run = sb.run_script(&format!(
        "{HELPERS}\n\
         $BINFMTD run --interpreter-dir /run/qemu --arch s390x,riscv64 2>/tmp/log & a=$!\n\
         until ready; do sleep 0.01; done\n\
         section latency\n\
         for i in $(seq 20); do\n\
           sleep 3.2; t0=$(now); echo -1 > $BM/status\n\
           until {bb} true 2>/dev/null; do :; done\n\
           ms $t0 $(now)\n\
         done\n\
         section state; jq -r .daemon.arches.s390x.state $STATUS",
        bb = bb.display()
    ));
    let s = sections(&run.success().stdout);
    assert_eq!(
        s["state"], "working\n",
        "the agent held off: {}",
        s["state"]
    );
    numbers(&s["latency"])
}

/// Without an agent, a flushed entry stays gone: try for 5 s.
fn no_agent(sb: &Sandbox) -> String {
    let bb = Busybox::by_debian("s390x").host_path();
    let run = sb.run_script(&format!(
        "{HELPERS}\n\
         $BINFMTD install --interpreter-dir /run/qemu --arch s390x >/dev/null\n\
         echo -1 > $BM/status; t0=$(now)\n\
         while [ $(ms $t0 $(now)) -lt 5000 ]; do {bb} true 2>/dev/null && {{ echo ran; exit 0; }}; sleep 0.05; done\n\
         echo never ran again within 5 s",
        bb = bb.display()
    ));
    run.success().stdout.trim().to_string()
}

/// RSS after convergence and idle cost over 60 s (4 arches), with their anchors.
fn idle(sb: &Sandbox) -> std::collections::BTreeMap<String, String> {
    let run = sb.run_script(&format!(
        "{HELPERS}\n\
         args='--interpreter-dir /run/qemu --arch s390x,riscv64,arm64,ppc64le'\n\
         section install-hwm; /usr/bin/time -f %M $BINFMTD install $args 2>&1 >/dev/null | tail -n1\n\
         $BINFMTD run $args 2>/tmp/log & a=$!\n\
         until ready; do sleep 0.01; done; sleep 1\n\
         ( while :; do cat $BM/status $BM/binfmtd-* >/dev/null; sleep 0.25; done ) & p=$!\n\
         sample() {{ cut -d' ' -f1 /proc/$1/schedstat; grep ctxt_switches /proc/$1/status | awk '{{s += $2}} END {{print s}}'; }}\n\
         section rss; grep VmRSS /proc/$a/status | awk '{{print $2}}'\n\
         section before; sample $a; sample $p\n\
         sleep 60\n\
         section after; sample $a; sample $p\n\
         section threads; grep Threads /proc/$a/status | awk '{{print $2}}'"
    ));
    sections(&run.success().stdout)
}

fn numbers(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len() as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(sb) = sandbox() else {
        println!("agent bench skipped: no private binfmt_misc here");
        return;
    };
    let (mut agent, install) = start_to_ready(&sb);
    println!("start to READY, 2 arches, warm cache (10 starts; goal < 300 ms):");
    println!(
        "  binfmtd run      p50 {:>4} ms  max {:>4} ms  mean {:.1} ms",
        pct(&mut agent, 0.5),
        agent.iter().max().unwrap(),
        mean(&agent)
    );
    println!(
        "  binfmtd install  mean {:.1} ms   ratio {:.2}x",
        mean(&install),
        mean(&agent) / mean(&install)
    );

    let mut lat: Vec<u64> = (0..3).flat_map(|_| repair_latency(&sb)).collect();
    println!(
        "repair after `-1 > status` until an s390x binary runs ({} flushes, default --interval 250ms; goal p99 < 500 ms):",
        lat.len()
    );
    println!(
        "  binfmtd run      p50 {} ms  p99 {} ms  max {} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        lat.iter().max().unwrap()
    );
    println!("  no agent         {}", no_agent(&sb));

    let s = idle(&sb);
    let (b, a) = (numbers(&s["before"]), numbers(&s["after"]));
    // schedstat: nanoseconds on a CPU.
    let cpu = |i: usize| (a[i] - b[i]) as f64 / 1e9;
    let wake = |i: usize| (a[i + 1] - b[i + 1]) as f64 / 60.0;
    println!("idle over 60 s after convergence, 4 arches (goal < 0.1% of one core):");
    println!(
        "  binfmtd run      cpu {:.3} s ({:.3}%)  wakeups {:.1}/s  threads {}",
        cpu(0),
        cpu(0) / 60.0 * 100.0,
        wake(0),
        s["threads"].trim()
    );
    println!(
        "  sh poll loop     cpu {:.3} s ({:.3}%)  wakeups {:.1}/s (its cat children's CPU not counted)",
        cpu(2),
        cpu(2) / 60.0 * 100.0,
        wake(2)
    );
    let rss: f64 = s["rss"].trim().parse::<f64>().unwrap() / 1024.0;
    let hwm: f64 = s["install-hwm"].trim().parse::<f64>().unwrap() / 1024.0;
    println!("RSS after convergence, 4 arches (goal < 8 MiB):");
    println!("  binfmtd run      {rss:.1} MiB");
    println!(
        "  binfmtd install  {hwm:.1} MiB peak   ratio {:.2}x",
        rss / hwm
    );
}
