use std::io::Read;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn render_has_expiry_then_sorted_facts() {
    let l = labels(&[
        ("binfmtd.io/arm64", "emulated"),
        ("binfmtd.io/amd64", "native"),
    ]);
    let text = render(&l, at(1_796_205_600));
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("# ") || l.starts_with("# +"))
        .collect();
    assert_eq!(
        lines,
        [
            "# +expiry-time=2026-12-02T10:00:00Z",
            "binfmtd.io/amd64=native",
            "binfmtd.io/arm64=emulated"
        ]
    );
    // Every other line is a comment NFD skips.
    assert!(text.lines().all(|l| l.starts_with('#') || l.contains('=')));
}

#[test]
fn file_is_replaced_atomically_and_stale_facts_go() {
    let dir = tempfile::tempdir().unwrap();
    let fd_dir = dir.path().join("features.d");
    let mut f = FeatureFile::new(&fd_dir);
    let two = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/riscv64", "emulated"),
    ]);
    assert!(f.update(&two, at(1000)).unwrap());
    let path = fd_dir.join("binfmtd");
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(first.contains("binfmtd.io/riscv64=emulated\n"), "{first}");
    assert!(first.contains(&format!("# +expiry-time={}\n", rfc3339(at(1600)))));

    // A reader holding the old file keeps reading the old file whole; the path now names
    // the new one (rename, not rewrite in place), and no dot-file is left behind.
    let mut old = std::fs::File::open(&path).unwrap();
    let one = labels(&[("binfmtd.io/amd64", "native")]);
    assert!(f.update(&one, at(1001)).unwrap());
    let mut old_text = String::new();
    old.read_to_string(&mut old_text).unwrap();
    assert_eq!(old_text, first);
    let second = std::fs::read_to_string(&path).unwrap();
    assert!(!second.contains("riscv64"), "{second}");
    assert!(second.contains("binfmtd.io/amd64=native\n"));
    let names: Vec<String> = std::fs::read_dir(&fd_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["binfmtd"]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);

    // No facts left: no file.
    assert!(f.update(&Labels::new(), at(1002)).unwrap());
    assert!(!path.exists());
}

#[test]
fn writes_only_on_change_or_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = FeatureFile::new(dir.path());
    let l = labels(&[("binfmtd.io/amd64", "native")]);
    assert!(f.update(&l, at(1000)).unwrap());
    let before = std::fs::metadata(f.path()).unwrap().modified().unwrap();
    assert!(!f.update(&l, at(1000 + 299)).unwrap());
    assert_eq!(
        std::fs::metadata(f.path()).unwrap().modified().unwrap(),
        before
    );
    assert!(
        f.update(&l, at(1000 + 300)).unwrap(),
        "half the lifetime gone: refresh"
    );
    let text = std::fs::read_to_string(f.path()).unwrap();
    assert!(text.contains(&rfc3339(at(1300 + 600))), "{text}");
    let changed = labels(&[
        ("binfmtd.io/amd64", "native"),
        ("binfmtd.io/arm64", "emulated"),
    ]);
    assert!(f.update(&changed, at(1301)).unwrap());
}

#[test]
fn a_symlink_at_the_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(".binfmtd")).unwrap();
    let mut f = FeatureFile::new(dir.path());
    f.update(&labels(&[("binfmtd.io/amd64", "native")]), at(5))
        .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::read_to_string(f.path())
        .unwrap()
        .contains("amd64=native"));
}

#[test]
fn both_modes_are_refused() {
    let p = Prefix::default();
    let dir = Path::new(DEFAULT_DIR);
    let msg = check_modes(true, Some(dir), &p).unwrap_err().to_string();
    assert!(
        msg.contains("--node-labels and --nfd-features-dir") && msg.contains("binfmtd.io/"),
        "{msg}"
    );
    assert!(check_modes(false, Some(dir), &p).is_ok());
    assert!(check_modes(true, None, &p).is_ok());
}
