//! Reuse of cached downloads is verified: an object or archive whose bytes changed in
//! place (same size, as `dd conv=notrunc` or a disk fault leaves it) is dropped and
//! downloaded again from the pinned source, over a real HTTPS server on loopback.

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use binfmtd::cache::Cache;
use binfmtd::config::{ArchiveFormat, Config, Origin, Source};
use binfmtd::supply::{core_check, ProvisionedInterpreter, Supplier};
use support::server::{Behavior, Server};
use support::*;

fn run(cfg: &Config, dir: &Path) -> ProvisionedInterpreter {
    let cache = Cache::open(dir).unwrap();
    let s = Supplier::new(cfg, &cache, binfmtd::arch::host(), &core_check);
    let arch = binfmtd::arch::lookup("riscv64").unwrap();
    s.provision(&[arch])
        .pop()
        .unwrap()
        .1
        .unwrap_or_else(|e| panic!("{e}"))
}

fn file_sha(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}

/// Overwrite 4 KiB in the middle of a file, keeping its size.
fn spoil(path: &Path) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[0xa5; 4096]).unwrap();
}

#[test]
fn a_changed_object_is_downloaded_again() {
    let server = Server::start();
    let qemu = real("/usr/bin/qemu-riscv64-static");
    server.route("/q", vec![Behavior::Serve(qemu.clone())]);
    let cfg = config(
        &server,
        vec![source(
            "raw",
            "riscv64",
            Origin::Raw(remote(vec![server.url("/q")], &qemu)),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let first = run(&cfg, dir.path());
    // Unchanged: reused without a download.
    assert_eq!(run(&cfg, dir.path()), first);
    assert_eq!(server.hits_for("/q"), 1);
    spoil(&first.path);
    let again = run(&cfg, dir.path());
    assert_eq!(again.path, first.path);
    assert_eq!(
        file_sha(&again.path),
        sha256(&qemu),
        "the changed object was reused"
    );
    assert_eq!(server.hits_for("/q"), 2);
    assert_cache_consistent(dir.path());
}

#[test]
fn a_changed_archive_is_downloaded_again() {
    let server = Server::start();
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir(tree.path().join("bin")).unwrap();
    std::fs::copy(
        "/usr/bin/qemu-riscv64-static",
        tree.path().join("bin/qemu-riscv64"),
    )
    .unwrap();
    let tar = tree.path().join("q.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(tree.path())
        .args(["-cf", tar.to_str().unwrap(), "./bin/qemu-riscv64"])
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = real(&tar);
    server.route("/q.tar", vec![Behavior::Serve(bytes.clone())]);
    let cfg = config(
        &server,
        vec![Source {
            name: "tar".into(),
            host: binfmtd::arch::host(),
            targets: None,
            origin: Origin::Archive {
                remote: remote(vec![server.url("/q.tar")], &bytes),
                format: ArchiveFormat::Tar,
                member: "bin/qemu-{cpu}".into(),
            },
            member_sha256: Default::default(),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let first = run(&cfg, dir.path());
    let archive = dir.path().join("archives").join(sha256(&bytes));
    // Both changed: the object must be extracted again, from an archive that is whole.
    spoil(&archive);
    spoil(&first.path);
    let again = run(&cfg, dir.path());
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(
        file_sha(&again.path),
        first.sha256,
        "the changed object was reused"
    );
    assert_eq!(
        file_sha(&archive),
        sha256(&bytes),
        "the changed archive was reused"
    );
    assert_eq!(server.hits_for("/q.tar"), 2);
    assert_cache_consistent(dir.path());
}
