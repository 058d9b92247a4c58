use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

const HOST_MAP: &str = "         0          0 4294967295\n";
const SANDBOX_MAP: &str = "         0     100000      65534\n";

#[test]
fn overflow_uid_is_trusted_only_where_it_is_unmapped() {
    let host = Owners::from_maps(HOST_MAP, 65534);
    assert!(host.trusted(0));
    assert!(!host.trusted(65534), "a real nobody on a host is a user");
    let sandbox = Owners::from_maps(SANDBOX_MAP, 65534);
    assert!(
        sandbox.trusted(65534),
        "unmapped owners show up as the overflow uid"
    );
    assert!(!sandbox.trusted(1000));
    let wide = Owners::from_maps("0 100000 65536\n", 65534);
    assert!(
        !wide.trusted(65534),
        "mapped there: it could be a sandbox user"
    );
}

#[test]
fn judge_table() {
    let o = Owners::from_maps(HOST_MAP, 65534);
    let dir = libc::S_IFDIR;
    let file = libc::S_IFREG;
    let cases: &[(u32, u32, bool)] = &[
        (0, file | 0o755, true),
        (0, file | 0o775, false),
        (0, file | 0o757, false),
        (1000, file | 0o755, false),
        (0, dir | 0o755, true),
        (0, dir | 0o1777, true),
        (0, dir | 0o777, false),
        (0, file | 0o1777, false),
        (1000, dir | 0o1777, false),
    ];
    for &(uid, mode, ok) in cases {
        assert_eq!(
            judge(&o, uid, mode, "it").is_ok(),
            ok,
            "uid {uid} mode {mode:o}"
        );
    }
}

fn root_only() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn walks_through_trusted_symlinks_and_refuses_a_writable_ancestor() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), b"x").unwrap();
    std::fs::set_permissions(d.join("f"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("d", t.path().join("link")).unwrap();
    let f = open_file(&t.path().join("link/./f")).unwrap();
    assert_eq!(f.path, d.join("f"));
    assert!(open_dir(&t.path().join("link")).is_ok());

    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = open_file(&d.join("f")).unwrap_err();
    assert!(matches!(e, TrustError::Unsafe { .. }), "{e}");
    assert!(e.to_string().contains("writable by group or others"), "{e}");

    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(d.join("f"), Some(1000), None).unwrap();
    let e = open_file(&d.join("f")).unwrap_err();
    assert!(e.to_string().contains("owned by uid 1000"), "{e}");
}

#[test]
fn refuses_loops_fifos_and_directories_as_files() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    symlink("b", t.path().join("a")).unwrap();
    symlink("a", t.path().join("b")).unwrap();
    let e = open_file(&t.path().join("a")).unwrap_err();
    assert!(e.to_string().contains("too many symlinks"), "{e}");
    nix::unistd::mkfifo(&t.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
    let e = open_file(&t.path().join("p")).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = open_file(t.path()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn ensure_dir_creates_with_the_exact_mode() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // 0750 is not what mkdir under the usual umask gives: the mode is set, not inherited.
    let d = ensure_dir(&t.path().join("x/y"), 0o750).unwrap();
    assert_eq!(d.path, t.path().join("x/y"));
    for p in [t.path().join("x"), t.path().join("x/y")] {
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o750, "{}", p.display());
    }
    // An existing directory someone else owns is refused, not adopted.
    std::os::unix::fs::chown(t.path().join("x/y"), Some(1000), None).unwrap();
    let e = ensure_dir(&t.path().join("x/y/z"), 0o755).unwrap_err();
    assert!(e.to_string().contains("owned by uid 1000"), "{e}");
    assert!(!t.path().join("x/y/z").exists());
}

#[test]
fn a_missing_component_is_told_apart_from_a_refusal() {
    let e = open_file(Path::new("/nonexistent-binfmtd-dir/qemu-x")).unwrap_err();
    assert!(e.is_missing(), "{e}");
    let e = open_file(Path::new("/proc/self/status/x")).unwrap_err();
    assert!(!e.is_missing(), "{e}");
}

#[test]
fn protected_symlinks_table() {
    let o = Owners::from_maps(HOST_MAP, 65534);
    let dir = libc::S_IFDIR;
    // (dir owner, dir mode, link owner, followed)
    let cases: &[(u32, u32, u32, bool)] = &[
        (0, dir | 0o1777, 1000, false),
        (0, dir | 0o1777, 0, true),
        (1000, dir | 0o1777, 1000, true),
        (0, dir | 0o1775, 1000, true),
        (0, dir | 0o0777, 1000, true),
        (0, dir | 0o0755, 1000, true),
    ];
    for &(duid, mode, luid, ok) in cases {
        let r = walk::may_follow(&o, duid, mode, luid, "symlink /t/l");
        assert_eq!(
            r.is_ok(),
            ok,
            "dir uid {duid} mode {mode:o} link uid {luid}"
        );
        if let Err(e) = r {
            assert!(e.contains("owned by uid 1000") && e.contains("protected_symlinks"));
        }
    }
}

#[test]
fn another_users_symlink_in_a_sticky_directory_is_not_followed() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sticky = t.path().join("s");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir(t.path().join("d")).unwrap();
    std::fs::write(t.path().join("d/f"), b"x").unwrap();
    symlink(t.path().join("d"), sticky.join("root-link")).unwrap();
    symlink(t.path().join("d"), sticky.join("user-link")).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &sticky.join("user-link"),
        Some(nix::unistd::Uid::from_raw(1000)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    assert!(open_file(&sticky.join("root-link/f")).is_ok());
    for e in [
        open_file(&sticky.join("user-link/f")).unwrap_err(),
        open_dir(&sticky.join("user-link")).unwrap_err(),
        ensure_dir(&sticky.join("user-link/new"), 0o755).unwrap_err(),
    ] {
        assert!(matches!(e, TrustError::Unsafe { .. }), "{e}");
        assert!(e.to_string().contains("owned by uid 1000"), "{e}");
        assert!(e.to_string().contains("Hint:"), "{e}");
    }
    assert!(
        !t.path().join("d/new").exists(),
        "nothing created behind the link"
    );
}

#[test]
fn a_directory_handle_path_is_walked_with_the_handle_as_root() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let top = t.path().join("pod");
    std::fs::create_dir_all(top.join("etc/real")).unwrap();
    std::fs::write(top.join("etc/real/cfg"), b"pod").unwrap();
    // Absolute inside the pod: resolves from the handle, not from this process's /.
    symlink("/etc/real", top.join("etc/data")).unwrap();
    let root = std::fs::File::open(&top).unwrap();
    let base = at::fd_path(&root);
    let f = open_file(&base.join("etc/data/cfg")).unwrap();
    assert_eq!(f.path, base.join("etc/real/cfg"));
    assert_eq!(std::fs::read(at::fd_path(&f.file)).unwrap(), b"pod");
    // `..` stops at the handle.
    let f = open_file(&base.join("../../etc/real/cfg")).unwrap();
    assert_eq!(f.path, base.join("etc/real/cfg"));
    // The handle itself is judged like `/`.
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = open_file(&base.join("etc/real/cfg")).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
}
