//! Release engineering, tested on the real artifacts: the static musl binaries (x86_64, and aarch64 run
//! under qemu-user), install.sh against a loopback HTTP server, the systemd unit, the .deb/.rpm packages,
//! the multi-arch OCI image and the cloud-init examples.
//!
//! The artifacts come from `packaging/dist.sh`, run once per test process into <target>/tmp/release-dist
//! (cargo makes it a no-op when nothing changed), or from BINFMTD_DIST when a CI step already built them.
//! Needs: rustup targets x86_64/aarch64-unknown-linux-musl, musl-tools, qemu-user-static, file, dpkg-dev,
//! rpm, umoci, skopeo, jq, cloud-init, curl, systemd (systemctl, systemd-analyze), systemd-container (nspawn);
//! tests/deps.sh installs them. Runs as root (chroot, dpkg --root).

mod common;

#[path = "release/cloud_init.rs"]
mod cloud_init;
#[path = "daemonset/runtime.rs"]
mod daemonset_runtime;
#[path = "release/http.rs"]
mod http;
#[path = "release/install_sh.rs"]
mod install_sh;
#[path = "release/install_sh_edits.rs"]
mod install_sh_edits;
#[path = "release/oci.rs"]
mod oci;
#[path = "release/packages.rs"]
mod packages;
#[path = "release/systemd_boot.rs"]
mod systemd_boot;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Release arches: (artifact arch, what `file` calls it).
pub const ARCHES: [(&str, &str); 2] = [("x86_64", "x86-64"), ("aarch64", "ARM aarch64")];
/// Size goal for one stripped static binary (BENCHMARKS.md, "releases"). 8 MiB until the
/// placement component (kube-rs runtime, TLS server, certificate generation) and the CRI client
/// joined the node agent in the one binary the DaemonSet and the component's image share.
pub const BINARY_GOAL: u64 = 12 * 1024 * 1024;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The release directory, built once per test process.
pub fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BINFMTD_DIST") {
            return PathBuf::from(dir);
        }
        // Cargo's scratch directory for integration tests: inside CARGO_TARGET_DIR wherever that is.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-dist");
        let output = Command::new("bash")
            .arg(repo().join("packaging/dist.sh"))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run bash packaging/dist.sh");
        assert_success("packaging/dist.sh", &output);
        out
    })
}

pub fn artifact(arch: &str) -> PathBuf {
    dist().join(format!("binfmtd-{VERSION}-{arch}-linux-musl"))
}

/// Run a command, returning its output; panics only when it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("could not start {cmd:?}: {e}; is the program installed (tests/deps.sh)?")
    })
}

/// `run` for a command that execs a file this process just wrote: another test thread that
/// forks while the write is open holds the file until its child execs, and exec meanwhile
/// fails with ETXTBSY ("Text file busy"). That passes in moments: retry for up to 2 s.
pub fn run_fresh_copy(cmd: &mut Command) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let out = run(cmd);
        let busy = String::from_utf8_lossy(&out.stderr).contains("Text file busy");
        if !busy || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn assert_success(what: &str, output: &Output) -> String {
    let all = text(output);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{all}",
        output.status
    );
    all
}

/// Every path under `root` with its type, mode, mtime and content (or link target): a re-run that
/// changes nothing leaves this identical.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else {
                format!(
                    "file {} bytes {:x}",
                    meta.len(),
                    fnv(&std::fs::read(&path).unwrap())
                )
            };
            let stamp = format!(
                "{what} mode {:o} mtime {}.{}",
                meta.mode(),
                meta.mtime(),
                meta.mtime_nsec()
            );
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), stamp);
        }
    }
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn binaries_are_static_stripped_and_small() {
    for (arch, file_name) in ARCHES {
        let path = artifact(arch);
        let out = assert_success("file", &run(Command::new("file").arg("-b").arg(&path)));
        assert!(
            out.contains(file_name),
            "{}: `file` says {out:?}, expected {file_name}",
            path.display()
        );
        // x86_64 is static-pie (ASLR without a loader); `file` says "static-pie linked" for it.
        assert!(
            out.contains("statically linked") || out.contains("static-pie linked"),
            "{}: `file` does not report a static binary: {out:?}",
            path.display()
        );
        assert!(
            !out.contains("interpreter"),
            "{}: has an ELF interpreter: {out:?}",
            path.display()
        );
        assert!(
            out.contains(", stripped"),
            "{}: not stripped: {out:?}",
            path.display()
        );
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "size {arch}: {size} bytes ({:.2} MiB)",
            size as f64 / 1048576.0
        );
        assert!(
            size <= BINARY_GOAL,
            "{}: {size} bytes, over the {} MiB goal",
            path.display(),
            BINARY_GOAL >> 20
        );
    }
}

/// An empty root holding only the binary (and, for aarch64, the static qemu that runs it): no libc,
/// no loader, no /proc. `status` there finds no binfmt_misc and must say so (exit 3) or report (exit 0).
#[test]
fn binaries_run_version_and_status_in_an_empty_root() {
    for (arch, _) in ARCHES {
        let root = tempfile::tempdir().unwrap();
        std::fs::copy(artifact(arch), root.path().join("binfmtd")).unwrap();
        let mut prefix = vec![];
        if arch != std::env::consts::ARCH {
            let qemu = format!("/usr/bin/qemu-{arch}-static");
            std::fs::copy(&qemu, root.path().join("qemu"))
                .unwrap_or_else(|e| panic!("{qemu}: {e}; apt-get install qemu-user-static"));
            prefix.push("/qemu");
        }
        let chroot = |args: &[&str]| {
            run_fresh_copy(
                Command::new("chroot")
                    .arg(root.path())
                    .args(&prefix)
                    .arg("/binfmtd")
                    .args(args),
            )
        };
        let version = chroot(&["--version"]);
        let out = assert_success(
            &format!("{arch} binfmtd --version in an empty root"),
            &version,
        );
        assert_eq!(out.trim(), format!("binfmtd {VERSION}"), "{arch}");

        let status = chroot(&["status"]);
        let out = text(&status);
        let code = status.status.code();
        assert!(
            matches!(code, Some(0) | Some(3)),
            "{arch} status in an empty root: exit {code:?}:\n{out}"
        );
        assert!(
            out.contains("binfmtd"),
            "{arch} status output does not name binfmtd:\n{out}"
        );
        if code == Some(3) {
            assert!(
                out.contains("binfmt_misc"),
                "{arch} status exit 3 without naming binfmt_misc:\n{out}"
            );
        }
    }
}

#[test]
fn sha256sums_cover_every_artifact() {
    let sums = std::fs::read_to_string(dist().join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dist())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    files.sort();
    assert_eq!(listed, files, "SHA256SUMS must list every artifact, sorted");
    for required in [
        "binfmtd.service",
        "install.sh",
        &format!("binfmtd-{VERSION}-oci.tar"),
    ] {
        assert!(listed.contains(&required), "SHA256SUMS lacks {required}");
    }
    let check = run(Command::new("sha256sum")
        .arg("--check")
        .arg("--strict")
        .arg("SHA256SUMS")
        .current_dir(dist()));
    assert_success("sha256sum --check SHA256SUMS", &check);
}
