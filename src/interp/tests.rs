use super::*;
use crate::arch::lookup;
use std::os::unix::fs::PermissionsExt;

fn qemu(cpu: &str) -> PathBuf {
    PathBuf::from(format!("/usr/bin/qemu-{cpu}-static"))
}

#[test]
fn file_names_cover_both_debian_schemes() {
    let a = lookup("arm64").unwrap();
    assert_eq!(file_names(a), ["qemu-aarch64", "qemu-aarch64-static"]);
    assert_eq!(
        arch_of_file_name(Path::new("/x/qemu-aarch64-static"))
            .unwrap()
            .qemu,
        "aarch64"
    );
    assert_eq!(
        arch_of_file_name(Path::new("/x/qemu-riscv64"))
            .unwrap()
            .qemu,
        "riscv64"
    );
    assert!(arch_of_file_name(Path::new("/x/busybox")).is_none());
    // i486 runs on qemu-i386.
    assert_eq!(file_names(lookup("i486").unwrap())[0], "qemu-i386");
}

#[test]
fn parses_qemu_versions() {
    let out = "qemu-aarch64 version 7.2.0 (Debian 1:7.2+dfsg-7+deb12u7)\nCopyright (c) 2003-2022 Fabrice Bellard\n";
    assert_eq!(
        parse_version(out).unwrap(),
        "7.2.0 (Debian 1:7.2+dfsg-7+deb12u7)"
    );
    assert_eq!(parse_version("garbage"), None);
}

#[test]
fn a_file_source_must_fit_the_arch() {
    let a = lookup("riscv64").unwrap();
    let f = Source::File(PathBuf::from("/x/qemu-aarch64"));
    assert!(matches!(
        locate(a, &f, 1),
        Err(InterpError::NotFound { .. })
    ));
    let anon = Source::File(PathBuf::from("/x/emulator"));
    assert_eq!(locate(a, &anon, 1).unwrap(), PathBuf::from("/x/emulator"));
    assert!(locate(a, &anon, 2).is_err());
}

#[test]
fn real_debian_qemu_passes_and_wrong_cpu_is_named() {
    let host = crate::arch::host();
    let p = qemu("aarch64");
    if !p.exists() {
        panic!(
            "{} missing: tests/run.sh installs qemu-user-static",
            p.display()
        );
    }
    let info = check_interpreter(&p, host).expect("Debian's static qemu passes");
    assert_eq!(info.sha256.len(), 64);
    // A static binary for another CPU: the arm64 busybox fixture, or an aarch64 ELF header.
    let mut fake = lookup("aarch64").unwrap().magic.to_vec();
    fake.resize(64, 0);
    let err = check_elf(Path::new("/x/q"), &fake, host).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("aarch64") && msg.contains(host.qemu), "{msg}");
}

#[test]
fn dynamic_binaries_are_refused() {
    let host = crate::arch::host();
    let data = std::fs::read("/bin/ls").unwrap();
    let err = check_elf(Path::new("/bin/ls"), &data, host).unwrap_err();
    assert!(
        matches!(&err, InterpError::Dynamic { loader, .. } if loader.contains("ld-linux")),
        "{err}"
    );
}

#[test]
fn writable_interpreters_and_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.path().join("qemu-aarch64");
    std::fs::copy(qemu("aarch64"), &f).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o757)).unwrap();
    let err = check_interpreter(&f, crate::arch::host()).unwrap_err();
    assert!(matches!(err, InterpError::Unsafe { .. }), "{err}");
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = check_interpreter(&f, crate::arch::host()).unwrap_err();
    let says = format!("directory {} is writable", dir.path().display());
    assert!(err.to_string().contains(&says), "{err}");
}

/// `--version` is asked only of a file that passes the trust rule, through its handle.
#[test]
fn version_is_asked_only_of_trusted_files() {
    let t = std::time::Duration::from_secs(10);
    let v = version_of(&qemu("aarch64"), t).unwrap();
    assert!(v.is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())));
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = dir.path().join("qemu-aarch64");
    std::fs::copy(qemu("aarch64"), &f).unwrap();
    let err = version_of(&f, t).unwrap_err();
    assert!(matches!(err, InterpError::Unsafe { .. }), "{err}");
    assert_eq!(qemu_version(&f, t), None);
}

/// A local interpreter becomes a cache object named by its sha256, copied from the checked
/// handle; an unchanged file is not copied again, a changed one gets a new object.
#[test]
fn local_interpreters_are_adopted_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = crate::cache::Cache::open(&dir.path().join("cache")).unwrap();
    let src = dir.path().join("qemu-aarch64");
    std::fs::copy(qemu("aarch64"), &src).unwrap();
    let sums = Sums::default();
    let host = crate::arch::host();
    let first = adopt(&cache, &src, host, &sums).unwrap();
    assert_eq!(first.sha256, sha256_file(&src).unwrap().0);
    assert_eq!(first.path, cache.object_path(&first.sha256));
    assert_eq!(sha256_file(&first.path).unwrap().0, first.sha256);
    let again = adopt(&cache, &src, host, &sums).unwrap();
    assert_eq!(again, first);
    std::fs::copy(qemu("riscv64"), &src).unwrap();
    let upgraded = adopt(&cache, &src, host, &sums).unwrap();
    assert_ne!(upgraded.path, first.path);
    assert_eq!(upgraded.sha256, sha256_file(&qemu("riscv64")).unwrap().0);
}
