use std::io::Write;

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
    for name in ["keep", "drop"] {
        fs::write(c.object_path(name), name).unwrap();
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
    fs::write(c.archive_path("old-archive"), "x").unwrap();
    let report = c.gc(&["keep".into()]).unwrap();
    assert_eq!(report.removed.len(), 2);
    assert_eq!(report.freed_bytes, 5);
    assert!(c.object_path("keep").exists() && !c.object_path("drop").exists());
    let index: Vec<String> = c.index().unwrap().into_iter().map(|e| e.arch).collect();
    assert_eq!(index, ["arch-keep"]);
}
