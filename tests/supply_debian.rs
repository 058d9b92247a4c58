//! Opt-in, needs a Debian mirror (CI stays hermetic):
//!   cargo test --test supply_debian -- --ignored
//! With no config file and no local qemu, the embedded default provisions riscv64 from
//! Debian trixie's qemu-user package on this amd64/arm64 host.

use std::process::Command;

#[test]
#[ignore = "downloads ~70 MB from deb.debian.org; run with --ignored"]
fn embedded_default_provisions_riscv64_from_a_debian_mirror() {
    assert!(
        !std::path::Path::new(binfmtd::config::DEFAULT_PATH).exists(),
        "{} exists; this test checks the no-config path, move it aside first",
        binfmtd::config::DEFAULT_PATH
    );
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["fetch", "--arch", "riscv64", "--cache-dir"])
        .arg(cache.path())
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<&str> = stdout.trim().split('\t').collect();
    assert_eq!(&fields[..2], ["riscv64", "ok"], "{stdout}");
    assert_eq!(fields[4], "qemu 10.0.13", "{stdout}");
    assert!(
        fields[5].starts_with("debian-trixie-qemu-user-10.0.13-"),
        "{stdout}"
    );
    let version = Command::new(fields[2]).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("qemu-riscv64 version 10.0.13"));
}
