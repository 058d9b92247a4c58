//! Supply-chain benchmark (`cargo bench --bench supply`): fetch + verify + install of real
//! qemu interpreters totalling >= 100 MB from a local HTTPS server, against
//! `curl | sha256sum` plus `cp` of the same bytes in the same run; and the bytes the
//! default source downloads per emulated arch. Results go to BENCHMARKS.md by hand.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binfmtd::cache::Cache;
use binfmtd::config::Origin;
use binfmtd::supply::{core_check, Supplier};
use support::server::{Behavior, Server};
use support::*;

const ROUNDS: usize = 9;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --all-targets` runs benches as tests; only `cargo bench` measures.
    }
    let server = Server::start();
    let picked = pick_interpreters(100 << 20);
    let total: u64 = picked.iter().map(|(_, b)| b.len() as u64).sum();
    let mut sources = Vec::new();
    for (cpu, bytes) in &picked {
        server.route(&format!("/{cpu}"), vec![Behavior::Serve(bytes.clone())]);
        let r = remote(vec![server.url(&format!("/{cpu}"))], bytes);
        sources.push(source(cpu, cpu, Origin::Raw(r)));
    }
    let cfg = config(&server, sources);
    let arches: Vec<_> = picked
        .iter()
        .map(|(c, _)| binfmtd::arch::lookup(c).unwrap())
        .collect();
    println!(
        "interpreters: {} files, {:.1} MB: {}",
        picked.len(),
        total as f64 / 1e6,
        picked
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate the order so neither side always runs on a warmer machine.
        let mut run_ours = || {
            let dir = tempfile::tempdir().unwrap();
            let t = Instant::now();
            let cache = Cache::open(dir.path()).unwrap();
            let s = Supplier::new(&cfg, &cache, binfmtd::arch::host(), &core_check);
            for (arch, r) in s.provision(&arches) {
                r.unwrap_or_else(|e| panic!("{}: {e}", arch.qemu));
            }
            ours.push(t.elapsed());
        };
        let mut run_base = || base.push(baseline(&server, &picked));
        if round % 2 == 0 {
            run_ours();
            run_base();
        } else {
            run_base();
            run_ours();
        }
    }
    // The minimum is the cost with the least interference from other work on the machine;
    // the median is the typical run. Both sides run interleaved, round by round.
    let mb = |d: Duration| total as f64 / 1e6 / d.as_secs_f64();
    let (o, b) = (median(&mut ours), median(&mut base));
    let (omin, bmin) = (ours[0], base[0]);
    for (name, min, med) in [
        ("binfmtd fetch+verify+install", omin, o),
        ("curl | sha256sum + cp       ", bmin, b),
    ] {
        println!(
            "{name}: min {:.3} s ({:.0} MB/s), median {:.3} s ({:.0} MB/s)",
            min.as_secs_f64(),
            mb(min),
            med.as_secs_f64(),
            mb(med)
        );
    }
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    println!(
        "ratio binfmtd / baseline over {ROUNDS} rounds: min {:.2}x, median {:.2}x",
        ratio(omin, bmin),
        ratio(o, b)
    );
    bytes_per_arch();
}

/// Real static qemu binaries from qemu-user-static until `want` bytes are reached.
fn pick_interpreters(want: u64) -> Vec<(String, std::sync::Arc<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for cpu in [
        "aarch64",
        "riscv64",
        "s390x",
        "ppc64le",
        "arm",
        "mips64el",
        "i386",
        "loongarch64",
        "ppc64",
        "mipsel",
        "sparc64",
        "m68k",
    ] {
        if total >= want {
            break;
        }
        let bytes = real(format!("/usr/bin/qemu-{cpu}-static"));
        total += bytes.len() as u64;
        out.push((cpu.to_string(), bytes));
    }
    assert!(
        total >= want,
        "qemu-user-static provides less than {want} bytes"
    );
    out
}

/// The same bytes with standard tools: `curl URL | sha256sum`, then `cp` into place.
fn baseline(server: &Server, picked: &[(String, std::sync::Arc<Vec<u8>>)]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    for (cpu, _) in picked {
        let sh = format!(
            "curl -sSf --cacert {} {} | sha256sum >/dev/null && cp /usr/bin/qemu-{cpu}-static {}",
            server.ca_file.display(),
            server.url(&format!("/{cpu}")),
            dir.path().join(cpu).display()
        );
        let st = Command::new("sh")
            .arg("-c")
            .arg(&sh)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "baseline failed: {sh} (apt-get install curl)");
    }
    t.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Bytes downloaded per emulated arch with the default source (one .deb for any number
/// of arches), from the real trixie package in the fixtures.
fn bytes_per_arch() {
    let deb = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fixtures/debs/trixie_qemu-user_amd64.deb");
    let Ok(meta) = std::fs::metadata(&deb) else {
        println!(
            "(no {}: run tests/fixtures/fetch.sh for the per-arch download figure)",
            deb.display()
        );
        return;
    };
    let size = meta.len() as f64 / 1e6;
    println!("default source: one {size:.1} MB .deb (trixie qemu-user 10.0.13 amd64)");
    for n in [1u32, 2, 4, 8] {
        println!(
            "  {n} arch(es): {:.1} MB downloaded per arch",
            size / f64::from(n)
        );
    }
}
