//! Benchmark: registering every foreign format, binfmtd versus systemd-binfmt, in the same
//! run, inside a private binfmt_misc instance (the host's entries are never touched).
//!
//! Prints, with the ratio between them:
//! - systemd-binfmt registering the entries from a binfmt.d file (a process per round);
//! - binfmtd's registration path (a process per round): locate each interpreter in a
//!   directory, check it (owner, mode, ELF machine, static) and register it — without
//!   probes, and once more including the sha256 of every interpreter;
//! - the full `binfmtd install --arch all`, every probe included (goal: < 1 s).
//!
//! Run: `cargo bench --bench register` (as root; see BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;

use binfmtd::arch::{self, ARCHES};
use binfmtd::entry::{Flags, Registration};
use binfmtd::interp::{self, Source};
use binfmtd::kernel::{BinfmtFs, BinfmtMisc};

const ROUNDS: u32 = 20;

/// The formats both sides register: every row that is not native here.
fn foreign() -> Vec<&'static arch::Arch> {
    let host = arch::host();
    let native: &[&str] = if host.qemu == "x86_64" {
        &["x86_64", "i386", "i486"]
    } else {
        &[host.qemu]
    };
    ARCHES
        .iter()
        .filter(|a| !native.contains(&a.qemu))
        .collect()
}

fn flags() -> Flags {
    Flags::parse("POF").unwrap()
}

/// Inside the sandbox: one binfmtd-style registration round (a fresh process per round).
fn inner_register(dir: &Path, hash: bool) {
    let fs = BinfmtFs::open(Path::new("/proc/sys/fs/binfmt_misc")).unwrap();
    let host = arch::host();
    for a in foreign() {
        let path = interp::locate(a, &Source::Dir(dir.into()), 2).unwrap();
        let real = interp::check_file(&path, host).unwrap();
        if hash {
            interp::sha256_file(&real).unwrap();
        }
        fs.register(&Registration::own(a, real, flags())).unwrap();
    }
}

/// Inside the sandbox: the same entries as a binfmt.d file for systemd-binfmt.
fn emit_binfmt_d(dir: &Path) {
    for a in foreign() {
        let path = interp::locate(a, &Source::Dir(dir.into()), 2).unwrap();
        let r = Registration::own(a, path, flags());
        println!("{}", String::from_utf8(r.encode().unwrap()).unwrap());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--inner-register") => return inner_register(Path::new(&args[2]), false),
        Some("--inner-register-hash") => return inner_register(Path::new(&args[2]), true),
        Some("--emit-binfmt-d") => return emit_binfmt_d(Path::new(&args[2])),
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        return; // `cargo test --all-targets` runs benches as tests; only `cargo bench` measures.
    }
    let Some(sandbox) = common::Sandbox::new() else {
        return;
    };
    let targets: Vec<&str> = ARCHES.iter().map(|a| a.interpreter).collect();
    let me = std::env::current_exe().unwrap();
    let script = format!(
        r#"
ms() {{ echo $(( ($(date +%s%N) - $1) / 1000 )); }}
clear() {{ echo -1 > /proc/sys/fs/binfmt_misc/status; }}
ROUNDS={ROUNDS}
"$ME" --emit-binfmt-d "$QEMU_DIR" > /run/binfmtd-bench.conf
n=$(wc -l < /run/binfmtd-bench.conf)
t=$(date +%s%N); for i in $(seq $ROUNDS); do /lib/systemd/systemd-binfmt /run/binfmtd-bench.conf; clear; done; sd=$(ms $t)
t=$(date +%s%N); for i in $(seq $ROUNDS); do "$ME" --inner-register "$QEMU_DIR"; clear; done; bd=$(ms $t)
t=$(date +%s%N); for i in $(seq $ROUNDS); do "$ME" --inner-register-hash "$QEMU_DIR"; clear; done; bh=$(ms $t)
mkdir -p /run/probe /run/state
install() {{ "$BINFMTD" install --arch all --interpreter-dir "$QEMU_DIR" --probe-dir /run/probe --cache-dir /run/state > /run/install.out; }}
t=$(date +%s%N); for i in $(seq 5); do rm -rf /run/state/*; install; clear; done; cold=$(ms $t)
t=$(date +%s%N); for i in $(seq 5); do install; clear; done; warm=$(ms $t)
grep -c "probe: ran" /run/install.out >&2
echo "$n $sd $bd $bh $cold $warm $(grep -c 'probe: ran' /run/install.out)"
"#
    );
    let run = sandbox
        .with_qemu(&targets)
        .env("ME", me.display().to_string())
        .run_script(&script)
        .success();
    let v: Vec<f64> = run
        .stdout
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let per = |x: f64, rounds: f64| x / 1e3 / rounds;
    let r = f64::from(ROUNDS);
    let (n, sd, bd, bh) = (v[0], per(v[1], r), per(v[2], r), per(v[3], r));
    let (cold, warm, probes) = (per(v[4], 5.0), per(v[5], 5.0), v[6]);
    println!("register {n} foreign formats (mean of {ROUNDS} rounds, one process per round):");
    println!("  systemd-binfmt (binfmt.d file)                 {sd:8.2} ms");
    println!(
        "  binfmtd registration (locate + checks)         {bd:8.2} ms   ratio {:.2}x",
        bd / sd
    );
    println!(
        "  binfmtd registration incl. sha256 of each qemu {bh:8.2} ms   ratio {:.2}x",
        bh / sd
    );
    println!("binfmtd install --arch all into an empty instance, {probes} probes passing (mean of 5; goal < 1000 ms):");
    println!("  cold (no recorded sums: sha256 of every qemu)  {cold:8.1} ms");
    println!("  warm (sums recorded by an earlier install)     {warm:8.1} ms");
}
