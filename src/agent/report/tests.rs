use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::{write, Daemon};
use crate::status::{build, Observed};

fn report() -> (crate::status::Report, Daemon) {
    let host = crate::arch::lookup("amd64").unwrap();
    let daemon = Daemon {
        pid: 1,
        started: "2026-01-01T00:00:00Z".into(),
        last_reconcile: None,
        interval_ms: 250,
        reproof_interval_s: 600,
        arches: BTreeMap::new(),
        exec_monitor: None,
    };
    (build(host, &Observed::default()), daemon)
}

#[test]
fn writes_atomically_and_replaces_a_planted_symlink_instead_of_following_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let dir = t.path().join("run");
    let path = dir.join("status.json");
    let (r, d) = report();
    write(&path, &r, &d).unwrap();
    // A symlink where the temporary file goes, and one as the status file itself.
    std::os::unix::fs::symlink(&victim, dir.join("status.json.tmp")).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    write(&path, &r, &d).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    let text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(text["daemon"]["pid"], 1);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["status.json"]);
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, t.path().join("status.json.tmp")).unwrap();
    let (r, d) = report();
    let e = write(&t.path().join("status.json"), &r, &d).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
}
