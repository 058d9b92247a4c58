use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use super::{lock_name, ConvergeLock, InstanceLock, LockError};
use crate::converge::Holder;

/// A private directory (0755, ours) under a fresh temporary one.
fn dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = t.path().join("locks");
    (t, d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn lock_files_are_0600_and_keyed_by_instance() {
    let (_t, d) = dir();
    let root = tempfile::tempdir().unwrap();
    let held = ConvergeLock::acquire_in(&d, root.path(), Duration::ZERO).unwrap();
    let dev = std::fs::metadata(root.path()).unwrap().dev();
    let name = lock_name(dev);
    assert!(
        name.starts_with("binfmt_misc-") && name.contains(':'),
        "{name}"
    );
    assert_eq!(mode(&d.join(&name)), 0o600);
    assert_eq!(mode(&d), 0o755);
    // A second pass on the same instance waits, then names this (binfmtd) process.
    let e = ConvergeLock::acquire_in(&d, root.path(), Duration::from_millis(50)).unwrap_err();
    let LockError::Busy { holder, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*holder, Holder::Binfmtd(std::process::id()), "{e}");
    assert!(e.to_string().starts_with("another binfmtd (pid "), "{e}");
    drop(held);
    ConvergeLock::acquire_in(&d, root.path(), Duration::ZERO).unwrap();
}

#[test]
fn an_old_loose_lock_file_is_tightened_and_a_foreign_one_refused() {
    let (_t, d) = dir();
    std::fs::create_dir(&d).unwrap();
    let path = d.join("binfmtd.lock");
    std::fs::write(&path, "1\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let held = InstanceLock::acquire(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(held);
    std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    let e = InstanceLock::acquire(&path).unwrap_err().to_string();
    assert!(
        e.contains("owned by uid 1000") && e.contains("Hint: remove it"),
        "{e}"
    );
}

#[test]
fn symlinks_hard_links_and_open_directories_are_refused() {
    let (t, d) = dir();
    std::fs::create_dir(&d).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("binfmtd.lock")).unwrap();
    let e = InstanceLock::acquire(&d.join("binfmtd.lock")).unwrap_err();
    assert!(e.to_string().contains("it is a symlink"), "{e}");
    std::fs::hard_link(&victim, d.join("linked.lock")).unwrap();
    let e = InstanceLock::acquire(&d.join("linked.lock")).unwrap_err();
    assert!(e.to_string().contains("2 hard links"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(mode(&victim), 0o644);
    for loose in [0o777, 0o1777] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(loose)).unwrap();
        let e = InstanceLock::acquire(&d.join("new.lock")).unwrap_err();
        // The trust rule refuses 0777; a sticky 1777 passes it, but anyone could create the
        // lock's name there first.
        assert!(e.to_string().contains(" writable by "), "{loose:o}: {e}");
    }
}
