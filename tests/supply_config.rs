//! Every example config under tests/data/config: valid ones (and the packaged example)
//! parse; each invalid one fails with the message on its `# expect:` first line.

use std::path::Path;

use binfmtd::config;

fn toml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no examples in {}", dir.display());
    v
}

#[test]
fn valid_examples_parse_and_invalid_ones_say_what_to_fix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut valid = toml_files(&root.join("tests/data/config/valid"));
    valid.push(root.join("packaging/config.example.toml"));
    for path in valid {
        // Parsed, not loaded: `load` also holds the file to the trust rule, which a checkout
        // owned by an ordinary user fails; tests/hardening_trust.rs covers that part.
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = config::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.sources.is_empty(), "{}", path.display());
    }
    for path in toml_files(&root.join("tests/data/config/invalid")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!("{}: first line must be `# expect: MESSAGE`", path.display())
            });
        match config::parse(&text, &path) {
            Ok(_) => panic!("{} parsed, but should fail with {expect:?}", path.display()),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(expect),
                    "{}:\n  expected {expect:?}\n  got      {msg:?}",
                    path.display()
                );
                assert!(
                    msg.contains(&path.display().to_string()),
                    "the error names the file: {msg}"
                );
            }
        }
    }
}

#[test]
fn missing_default_file_means_embedded_default_but_missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("config.toml");
    let cfg = config::load(&absent, false).unwrap();
    assert_eq!(cfg.sources, config::embedded_sources());
    let err = config::load(&absent, true).unwrap_err().to_string();
    assert!(
        err.contains(&absent.display().to_string()) && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let text = "[download]\nread-timeout-secs = 0\n[[source]]\nkind = \"zip\"\nhost = \"amd65\"\n";
    let err = config::parse(text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "download.read-timeout-secs",
        "source[0].host",
        "source[0].kind",
    ] {
        assert!(err.contains(want), "{want} missing from {err}");
    }
}
