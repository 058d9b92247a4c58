//! The explain parser on cut and random inputs: real ELF fixtures truncated at many
//! lengths, and the fuzzer's mutator (fuzz/mutate.rs) run for a fixed number of inputs.
//! The long fuzz run is `cargo run --release --example fuzz_explain`.

use std::fs;
use std::path::PathBuf;

use binfmtd::explain::{inspect, ExplainError, FileInfo};

#[path = "../fuzz/mutate.rs"]
mod mutate;
#[path = "../fuzz/targets.rs"]
mod targets;

const ELF_FIXTURES: [&str; 4] = [
    "bookworm/arm64/busybox-static/bin/busybox",
    "bookworm/i386/busybox-static/bin/busybox",
    "bookworm/arm64/dash/bin/dash",
    "trixie/amd64/hello/usr/bin/hello",
];

fn read_fixture(rel: &str) -> Vec<u8> {
    let dir = std::env::var_os("FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"));
    let p = dir.join(rel);
    fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "fixture {}: {e}; run `bash tests/fixtures/fetch.sh` (tests/run.sh does) first",
            p.display()
        )
    })
}

/// Every ELF fixture cut at many lengths: always a value, never a panic; an ELF cut short
/// is reported truncated (its section headers sit at the end of the file).
#[test]
fn cut_elfs_are_reported_truncated() {
    for rel in ELF_FIXTURES {
        let whole = read_fixture(rel);
        assert!(matches!(inspect(&whole[..]), Ok(FileInfo::Elf(_))), "{rel}");
        let lens = (0..300)
            .chain((300..whole.len()).step_by(997))
            .chain([whole.len() - 1]);
        for n in lens {
            match inspect(&whole[..n]) {
                Ok(FileInfo::Other(_)) if n < 4 => {}
                Err(ExplainError::Truncated { len, needed, .. }) => {
                    assert!(len == n as u64 && needed > len, "{rel} cut at {n}")
                }
                other => panic!("{rel} cut at {n}: {other:?}"),
            }
        }
    }
}

/// Random bytes and mutated real ELFs (the fuzzer's mutator, a fixed seed): inspect must
/// return for every input, and mutated files must still parse often enough to reach the
/// deeper tables.
#[test]
fn random_and_mutated_inputs_never_panic() {
    let seeds: Vec<Vec<u8>> = ELF_FIXTURES.iter().map(|r| read_fixture(r)).collect();
    let mut rng = mutate::Rng::new(0x5eed);
    let (mut ok, mut total) = (0, 0);
    for i in 0..3000 {
        let input = mutate::input(&mut rng, &seeds, i);
        let result = std::panic::catch_unwind(|| inspect(&input[..]));
        let r = result.unwrap_or_else(|_| panic!("inspect panicked on input {i} (seed 0x5eed)"));
        ok += usize::from(matches!(r, Ok(FileInfo::Elf(_))));
        total += 1;
    }
    assert_eq!(total, 3000);
    assert!(
        ok > 100,
        "only {ok} of {total} mutated inputs parsed as ELF: the mutator is too blunt"
    );
}

/// The other parsers (ld.so.cache, ld.so.conf, image JSON and layer paths) under the same
/// mutator: every input returns, and mutated real inputs are still accepted often enough
/// to reach past the first checks.
#[test]
fn ld_cache_conf_and_image_parsers_never_panic() {
    let cache = fs::read("/etc/ld.so.cache").expect("this glibc machine has an ld.so.cache");
    let texts = |t: &[&str]| t.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let seeds = [
        vec![cache],
        texts(targets::CONF_SEEDS),
        texts(targets::IMAGE_SEEDS),
    ];
    for (t, seeds) in targets::TARGETS.iter().zip(&seeds) {
        let mut rng = mutate::Rng::new(0x5eed);
        let mut accepted = 0;
        for i in 0..2000 {
            let input = mutate::input(&mut rng, seeds, i);
            let r = std::panic::catch_unwind(|| targets::run(*t, &input));
            accepted += usize::from(r.unwrap_or_else(|_| panic!("{t:?} panicked on input {i}")));
        }
        assert!(accepted > 50, "{t:?}: only {accepted} of 2000 accepted");
    }
}
