//! Fuzzer for the parsers of `binfmtd explain`: `explain::inspect` (ELF, with its dynamic
//! section and version tables, and `#!` lines), every explained file goes through it; and,
//! in turn, ld.so.cache, ld.so.conf and the container image JSON/paths (fuzz/targets.rs).
//!
//! cargo-fuzz needs a nightly toolchain; this is the stable equivalent: it mutates real ELF
//! files (headers, header fields, the tables at the end, the length) and random bytes for a
//! fixed time, and stops at the first panic, saving the input that caused it.
//!
//! ```text
//! cargo run --release --example fuzz_explain -- [--seconds 60] [--seed N] [SEED_FILE...]
//! ```
//! Default seed files: the ELF fixtures fetched by tests/fixtures/fetch.sh (in $FIXTURES, or
//! target/fixtures); for the other parsers this machine's /etc/ld.so.cache and the text
//! seeds in fuzz/targets.rs.
//! A crashing input is written to target/fuzz-crashes/ and the exit status is 1.

#[path = "mutate.rs"]
mod mutate;
#[path = "targets.rs"]
mod targets;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use binfmtd::explain::{inspect, FileInfo};

thread_local! {
    /// The input being parsed, for the panic hook to save.
    static CURRENT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const DEFAULT_SEEDS: &[&str] = &[
    "bookworm/arm64/busybox-static/bin/busybox",
    "bookworm/i386/busybox-static/bin/busybox",
    "bookworm/armhf/busybox-static/bin/busybox",
    "bookworm/s390x/busybox-static/bin/busybox",
    "bookworm/arm64/dash/bin/dash",
    "bookworm/arm64/libc6/lib/aarch64-linux-gnu/libc.so.6",
    "trixie/amd64/hello/usr/bin/hello",
];

struct Args {
    seconds: u64,
    seed: u64,
    files: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 60,
        seed: 1,
        files: vec![],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--seconds" => a.seconds = num("--seconds")?,
            "--seed" => a.seed = num("--seed")?,
            f => a.files.push(PathBuf::from(f)),
        }
    }
    if a.files.is_empty() {
        let dir = std::env::var_os("FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"));
        a.files = DEFAULT_SEEDS.iter().map(|s| dir.join(s)).collect();
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz_explain: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut seeds = Vec::new();
    for f in &args.files {
        match std::fs::read(f) {
            Ok(bytes) => seeds.push(bytes),
            Err(e) => {
                eprintln!("fuzz_explain: seed {}: {e}; run `bash tests/fixtures/fetch.sh` or name seed files", f.display());
                return std::process::ExitCode::from(2);
            }
        }
    }
    let other_seeds = match other_seeds() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz_explain: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    save_input_on_panic(args.seed);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut rng = mutate::Rng::new(args.seed);
    let (mut n, mut elf, mut errors) = (0u64, 0u64, 0u64);
    // Per other target: inputs, accepted.
    let mut other = [(0u64, 0u64); 3];
    while Instant::now() < deadline {
        // Half the inputs go to the ELF parser, the rest in turn to the others.
        let slot = (n % 6) as usize;
        if slot < 3 {
            let input = mutate::input(&mut rng, &seeds, n as usize);
            CURRENT.with(|c| *c.borrow_mut() = input);
            let result = CURRENT.with(|c| inspect(&c.borrow()[..]));
            match result {
                Ok(FileInfo::Elf(_)) => elf += 1,
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        } else {
            let t = slot - 3;
            let input = mutate::input(&mut rng, &other_seeds[t], n as usize);
            CURRENT.with(|c| *c.borrow_mut() = input);
            let ok = CURRENT.with(|c| targets::run(targets::TARGETS[t], &c.borrow()));
            other[t].0 += 1;
            other[t].1 += u64::from(ok);
        }
        n += 1;
    }
    let elf_inputs = n - other.iter().map(|o| o.0).sum::<u64>();
    println!(
        "fuzz_explain: {n} inputs in {} s (seed {}), 0 panics\n  ELF/#!: {elf_inputs} inputs from {} seed files: {elf} parsed as ELF, {errors} rejected with an error",
        args.seconds,
        args.seed,
        seeds.len(),
    );
    for (t, (inputs, accepted)) in targets::TARGETS.iter().zip(other) {
        println!("  {t:?}: {inputs} inputs, {accepted} accepted, the rest rejected (an error, or nothing parsed)");
    }
    std::process::ExitCode::SUCCESS
}

/// Seeds for the other targets, in `targets::TARGETS` order.
fn other_seeds() -> Result<[Vec<Vec<u8>>; 3], String> {
    let cache = std::fs::read("/etc/ld.so.cache").map_err(|e| {
        format!("seed /etc/ld.so.cache: {e}; run on a glibc system (ldconfig makes it)")
    })?;
    let texts = |t: &[&str]| t.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    Ok([
        vec![cache],
        texts(targets::CONF_SEEDS),
        texts(targets::IMAGE_SEEDS),
    ])
}

/// The release profile aborts on panic, so the input is saved from the hook, before abort.
fn save_input_on_panic(seed: u64) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
        let path = dir.join(format!("crash-seed{seed}-{}.bin", std::process::id()));
        let saved = CURRENT.with(|c| {
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &*c.borrow()))
        });
        match saved {
            Ok(()) => eprintln!("fuzz_explain: PANIC; input saved to {}", path.display()),
            Err(e) => eprintln!(
                "fuzz_explain: PANIC; could not save the input to {}: {e}",
                path.display()
            ),
        }
        default(info);
        std::process::exit(1);
    }));
}
