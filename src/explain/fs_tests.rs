use super::*;

#[test]
fn old_glibc_version_from_the_library_name() {
    let v = version_from_name(Path::new("libc-2.31.so")).unwrap();
    assert_eq!(v.to_string(), "2.31");
    assert_eq!(
        version_from_name(Path::new("x86_64-linux-gnu/libc.so.6")),
        None
    );
}

/// A chroot-style lookup: absolute links restart at the root, `..` stops there.
#[test]
fn resolve_keeps_absolute_links_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("usr/lib64")).unwrap();
    fs::write(d.join("usr/lib64/ld.so"), b"").unwrap();
    std::os::unix::fs::symlink("/usr/lib64", d.join("lib64")).unwrap();
    std::os::unix::fs::symlink("../../../../usr/lib64/ld.so", d.join("usr/lib64/up")).unwrap();
    let root = Root::new(d);
    assert_eq!(
        root.resolve(Path::new("/lib64/ld.so")),
        Some(d.join("usr/lib64/ld.so"))
    );
    assert_eq!(
        root.resolve(Path::new("/lib64/up")),
        Some(d.join("usr/lib64/ld.so"))
    );
    assert_eq!(root.resolve(Path::new("/lib64/missing")), None);
    std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
    assert_eq!(root.resolve(Path::new("/loop")), None);
}
