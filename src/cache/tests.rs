use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

#[test]
fn open_creates_the_layout_and_removes_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Cache::open(dir.path()).unwrap();
        let t = c.temp("sha256").unwrap();
        // A crash: the temp file outlives its process.
        std::mem::forget(t);
        assert_eq!(c.leftovers().unwrap().len(), 1);
    }
    let c = Cache::open(dir.path()).unwrap();
    assert!(c.leftovers().unwrap().is_empty());
    for area in AREAS {
        let mode = fs::metadata(dir.path().join(area))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{area}");
    }
}

#[test]
fn dropped_temp_is_removed_and_committed_one_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path()).unwrap();
    let path = c.temp("sha256").unwrap().path.clone();
    assert!(
        !path.exists(),
        "an uncommitted temp file is removed on drop"
    );
    let mut t = c.temp("sha256").unwrap();
    t.file.write_all(b"bytes").unwrap();
    c.seal(&t, 0o755).unwrap();
    let dest = c.object_path("abc");
    c.commit(t, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"bytes");
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(c.leftovers().unwrap().is_empty());
}

#[test]
fn gc_keeps_what_is_listed_and_drops_the_rest_and_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path()).unwrap();
    let store = |dest: PathBuf, bytes: &str| {
        let mut t = c.temp("sha256").unwrap();
        t.file.write_all(bytes.as_bytes()).unwrap();
        c.seal(&t, 0o755).unwrap();
        c.commit(t, &dest).unwrap();
    };
    for name in ["keep", "drop"] {
        store(c.object_path(name), name);
        let entry = IndexEntry {
            arch: format!("arch-{name}"),
            sha256: name.into(),
            path: c.object_path(name),
            size: 4,
            source: "test".into(),
            url: None,
            archive_sha256: None,
            version: None,
        };
        c.write_index(&entry).unwrap();
    }
    let mut t = c.temp("archives").unwrap();
    t.file.write_all(b"x").unwrap();
    c.commit(t, &c.archive_path("old-archive")).unwrap();
    // Not stored by the cache: never removed, whatever its name.
    fs::write(c.object_path("foreign"), "someone else's").unwrap();
    let report = c.gc(&["keep".into()]).unwrap();
    assert_eq!(report.removed.len(), 2);
    assert_eq!(report.freed_bytes, 5);
    assert!(c.object_path("keep").exists() && !c.object_path("drop").exists());
    assert!(c.object_path("foreign").exists());
    let index: Vec<String> = c.index().unwrap().into_iter().map(|e| e.arch).collect();
    assert_eq!(index, ["arch-keep"]);
    // The ledger forgot what it removed and survives a reopen.
    drop(c);
    let c = Cache::open(dir.path()).unwrap();
    assert_eq!(c.gc(&["keep".into()]).unwrap(), GcReport::default());
    assert_eq!(c.ledger.names("sha256"), ["keep"]);
}

#[test]
fn a_root_others_can_write_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    let err = Cache::open(&root).unwrap_err();
    assert!(matches!(err, CacheError::Untrusted(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&root.display().to_string()), "{msg}");
    assert!(
        msg.contains("writable by group or others") && msg.contains("--cache-dir"),
        "{msg}"
    );
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        0,
        "nothing created in it"
    );
}

#[test]
fn a_new_root_gets_exact_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b");
    // (Under umask 000 too: tests/trust_cache.rs runs binfmtd so, in its own process.)
    Cache::open(&root).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o755);
    assert_eq!(mode(&root.join(".lock")), 0o600);
    for area in AREAS {
        assert_eq!(mode(&root.join(area)), 0o755, "{area}");
    }
}

/// Symlinks planted inside the cache are refused, never followed.
#[test]
fn planted_symlinks_are_refused_and_their_targets_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), b"x").unwrap();
    let lock = victim.join("lock");
    let planted = [
        ("archives", &victim),
        ("index", &victim),
        ("sha256", &victim),
        (".lock", &lock),
    ];
    for (name, target) in planted {
        let root = dir
            .path()
            .join(format!("cache-{}", name.trim_start_matches('.')));
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        let err = Cache::open(&root).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(!victim.join("lock").exists());
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 1);
}

#[test]
fn a_changed_object_is_dropped_on_reuse_and_an_intact_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path()).unwrap();
    let bytes = b"interpreter bytes";
    let sha = crate::fetch::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes));
    let mut t = c.temp("sha256").unwrap();
    t.file.write_all(bytes).unwrap();
    c.seal(&t, 0o755).unwrap();
    c.commit(t, &c.object_path(&sha)).unwrap();
    assert_eq!(c.verified_object(&sha), Some(c.object_path(&sha)));
    // A verified object from before the ledger (renamed in by hand here) is listed once reused.
    let mut t = c.temp("sha256").unwrap();
    t.file.write_all(bytes).unwrap();
    let old = dir.path().join("sha256").join(&sha);
    fs::rename(&t.path, &old).unwrap();
    std::mem::forget(t);
    c.ledger
        .remove(&c.top, "sha256", std::slice::from_ref(&sha))
        .unwrap();
    assert!(c.ledger.names("sha256").is_empty());
    assert_eq!(c.verified_object(&sha), Some(old));
    assert_eq!(c.ledger.names("sha256"), std::slice::from_ref(&sha));
    // Written over in place, same size (what `dd conv=notrunc` does).
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(c.object_path(&sha))
        .unwrap();
    f.write_all(b"INTERPRETER").unwrap();
    drop(f);
    assert_eq!(c.verified_object(&sha), None);
    assert!(!c.object_path(&sha).exists(), "the bad object is removed");
    assert_eq!(c.verified_archive("0000"), None);
}

/// Areas left group/other-writable (made by an older version under umask 000) are
/// tightened on open, through their handles.
#[test]
fn loose_areas_of_ours_are_tightened() {
    let dir = tempfile::tempdir().unwrap();
    for area in AREAS {
        let p = dir.path().join(area);
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    Cache::open(dir.path()).unwrap();
    for area in AREAS {
        let mode = fs::metadata(dir.path().join(area))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "{area}");
    }
}
