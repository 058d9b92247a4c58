//! Archive sources over HTTPS: real Debian packages (busybox-static, and trixie's qemu-user
//! with the embedded default's own pin) and tarballs of real qemu binaries compressed by the
//! system's gzip, xz and zstd.

mod support;

use std::path::Path;
use std::process::Command;

use binfmtd::cache::Cache;
use binfmtd::config::{embedded_sources, ArchiveFormat, Config, Origin, Remote, Source};
use binfmtd::supply::{core_check, ProvisionedInterpreter, Supplier, SupplyError};
use support::server::{Behavior, Server};
use support::*;

fn provision(
    cfg: &Config,
    dir: &Path,
    arches: &str,
) -> Vec<Result<ProvisionedInterpreter, SupplyError>> {
    let cache = Cache::open(dir).unwrap();
    let s = Supplier::new(cfg, &cache, binfmtd::arch::host(), &core_check);
    s.provision(&binfmtd::arch::lookup_list(arches).unwrap())
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn archive_source(
    name: &str,
    targets: Option<&str>,
    remote: Remote,
    format: ArchiveFormat,
    member: &str,
) -> Source {
    Source {
        name: name.into(),
        host: binfmtd::arch::host(),
        targets: targets.map(|t| binfmtd::arch::lookup_list(t).unwrap()),
        origin: Origin::Archive {
            remote,
            format,
            member: member.into(),
        },
        member_sha256: Default::default(),
    }
}

#[test]
fn real_deb_member_is_extracted() {
    let server = Server::start();
    let deb = real(fixture("debs/bookworm_busybox-static_amd64.deb"));
    server.route("/busybox.deb", vec![Behavior::Serve(deb.clone())]);
    let remote = remote(vec![server.url("/busybox.deb")], &deb);
    // busybox stands in for an interpreter: a real static amd64 ELF inside a real .deb.
    let cfg = config(
        &server,
        vec![archive_source(
            "bb",
            Some("riscv64"),
            remote,
            ArchiveFormat::Deb,
            "./bin/busybox",
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = provision(&cfg, dir.path(), "riscv64")
        .pop()
        .unwrap()
        .expect("extracted");
    let want = std::fs::read(fixture("bookworm/amd64/busybox-static/bin/busybox")).unwrap();
    assert_eq!(std::fs::read(&p.path).unwrap(), want);
    assert_eq!(p.version, None, "busybox prints no qemu banner");
    let archives = files(dir.path(), "archives");
    assert_eq!(
        archives,
        vec![sha256(&deb)],
        "the .deb is kept by its sha256"
    );
    assert_cache_consistent(dir.path());
}

/// The embedded default, served locally: its pin, size and member paths are right for the
/// real trixie package, the package is fetched once, and each interpreter is extracted.
#[test]
fn embedded_default_pin_matches_the_real_trixie_package() {
    if binfmtd::arch::host().qemu != "x86_64" {
        panic!("this test serves the amd64 package; run it on an amd64 host");
    }
    let server = Server::start();
    let deb = real(fixture("debs/trixie_qemu-user_amd64.deb"));
    server.route("/pool/qemu-user.deb", vec![Behavior::Serve(deb.clone())]);
    let mut sources = embedded_sources();
    sources.retain(|s| {
        s.serves(
            binfmtd::arch::lookup("riscv64").unwrap(),
            binfmtd::arch::host(),
        )
    });
    assert_eq!(sources.len(), 1);
    let Origin::Archive { remote, .. } = &mut sources[0].origin else {
        panic!("the default is a .deb source")
    };
    assert_eq!(remote.sha256, sha256(&deb));
    assert_eq!(remote.size, Some(deb.len() as u64));
    remote.urls = vec![server.url("/pool/qemu-user.deb")];
    // A wrong pin for one arch fails that arch alone, inside the one-pass extraction.
    sources[0].member_sha256.insert("s390x", "0".repeat(64));
    let cfg = config(&server, sources);
    let dir = tempfile::tempdir().unwrap();
    let mut results = provision(&cfg, dir.path(), "riscv64,aarch64,s390x");
    let s390x = results.pop().unwrap();
    assert!(
        matches!(s390x, Err(SupplyError::MemberHash { .. })),
        "{s390x:?}"
    );
    for r in &results {
        let p = r.as_ref().expect("provisioned from the default");
        assert_eq!(p.version.as_deref(), Some("10.0.13"), "{}", p.arch.qemu);
    }
    assert_eq!(
        server.hits_for("/pool/qemu-user.deb"),
        1,
        "fetched once for every arch"
    );
    let temps: Vec<String> = files(dir.path(), "sha256")
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "left {temps:?}");
    let index = Cache::open(dir.path()).unwrap().index().unwrap();
    let arches: Vec<&str> = index.iter().map(|e| e.arch.as_str()).collect();
    assert_eq!(arches, ["aarch64", "riscv64"]);
    assert!(index
        .iter()
        .all(|e| e.archive_sha256.as_deref() == Some(sha256(&deb).as_str())));
}

#[test]
fn symlinked_member_is_followed_inside_the_archive() {
    let server = Server::start();
    let deb = real(fixture("debs/trixie_qemu-user_amd64.deb"));
    server.route("/q.deb", vec![Behavior::Serve(deb.clone())]);
    let remote = remote(vec![server.url("/q.deb")], &deb);
    let cfg = config(
        &server,
        vec![archive_source(
            "alias",
            Some("s390x"),
            remote,
            ArchiveFormat::Deb,
            "./usr/bin/qemu-s390x",
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let direct = provision(&cfg, dir.path(), "s390x").pop().unwrap().unwrap();
    // Debian's alias names are links: ./usr/bin/qemu-arm64 -> qemu-aarch64.
    let Origin::Archive { remote, .. } = &cfg.sources[0].origin else {
        unreachable!()
    };
    let cfg2 = config(
        &server,
        vec![archive_source(
            "alias",
            Some("aarch64"),
            remote.clone(),
            ArchiveFormat::Deb,
            "./usr/bin/qemu-arm64",
        )],
    );
    let via_link = provision(&cfg2, dir.path(), "aarch64")
        .pop()
        .unwrap()
        .unwrap();
    assert_ne!(direct.sha256, via_link.sha256);
    assert_eq!(via_link.version.as_deref(), Some("10.0.13"));
}

#[test]
fn tarballs_in_every_compression_yield_the_member() {
    let server = Server::start();
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("bin")).unwrap();
    for cpu in ["riscv64", "s390x"] {
        std::fs::copy(
            format!("/usr/bin/qemu-{cpu}-static"),
            tree.path().join(format!("bin/qemu-{cpu}")),
        )
        .unwrap();
    }
    for (flag, ext) in [("-z", "gz"), ("-J", "xz"), ("--zstd", "zst"), ("", "plain")] {
        let out = tree.path().join(format!("q.tar.{ext}"));
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(tree.path()).arg("-c");
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let st = cmd
            .arg("-f")
            .arg(&out)
            .args(["./bin/qemu-riscv64", "./bin/qemu-s390x"])
            .status()
            .unwrap();
        assert!(
            st.success(),
            "tar {flag} failed: apt-get install xz-utils zstd"
        );
        let bytes = real(&out);
        server.route(&format!("/q.{ext}"), vec![Behavior::Serve(bytes.clone())]);
        let remote = remote(vec![server.url(&format!("/q.{ext}"))], &bytes);
        let cfg = config(
            &server,
            vec![archive_source(
                ext,
                None,
                remote,
                ArchiveFormat::Tar,
                "bin/qemu-{cpu}",
            )],
        );
        let dir = tempfile::tempdir().unwrap();
        let results = provision(&cfg, dir.path(), "s390x,riscv64");
        for (r, cpu) in results.iter().zip(["s390x", "riscv64"]) {
            let p = r.as_ref().unwrap_or_else(|e| panic!("{ext} {cpu}: {e}"));
            assert_eq!(
                std::fs::read(&p.path).unwrap(),
                std::fs::read(format!("/usr/bin/qemu-{cpu}-static")).unwrap(),
                "{ext} {cpu}"
            );
        }
        let temps: Vec<String> = files(dir.path(), "sha256")
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(
            temps.is_empty(),
            "{ext}: one-pass extraction left {temps:?}"
        );
    }
}

#[test]
fn missing_member_passes_to_the_next_source_then_reports_every_source_tried() {
    let server = Server::start();
    let deb = real(fixture("debs/bookworm_busybox-static_amd64.deb"));
    server.route("/bb.deb", vec![Behavior::Serve(deb.clone())]);
    let local = tempfile::tempdir().unwrap();
    std::fs::copy(
        "/usr/bin/qemu-riscv64-static",
        local.path().join("qemu-riscv64"),
    )
    .unwrap();
    let cfg = config(
        &server,
        vec![
            archive_source(
                "no-such-member",
                None,
                remote(vec![server.url("/bb.deb")], &deb),
                ArchiveFormat::Deb,
                "./usr/bin/qemu-{cpu}",
            ),
            Source {
                name: "local-dir".into(),
                host: binfmtd::arch::host(),
                targets: None,
                origin: Origin::LocalDir {
                    dir: local.path().into(),
                    member: "qemu-{cpu}".into(),
                },
                member_sha256: Default::default(),
            },
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut r = provision(&cfg, dir.path(), "riscv64,s390x");
    let p = r.remove(0).expect("the local source has riscv64");
    assert!(p.source.starts_with("local-dir"), "{}", p.source);
    assert_eq!(p.version.as_deref(), Some("7.2.22"));
    match r.remove(0) {
        Err(SupplyError::NoSource { tried, .. }) => {
            assert!(
                tried.contains("no-such-member: no member ./usr/bin/qemu-s390x"),
                "{tried}"
            );
            assert!(
                tried.contains("local-dir: ") && tried.contains("qemu-s390x does not exist"),
                "{tried}"
            );
        }
        other => panic!("expected NoSource, got {other:?}"),
    }
    assert_eq!(
        server.hits_for("/bb.deb"),
        1,
        "the archive is fetched once for both arches"
    );
}

#[test]
fn member_pin_mismatch_is_refused() {
    let server = Server::start();
    let deb = real(fixture("debs/bookworm_busybox-static_amd64.deb"));
    server.route("/bb.deb", vec![Behavior::Serve(deb.clone())]);
    let mut src = archive_source(
        "pinned",
        Some("riscv64"),
        remote(vec![server.url("/bb.deb")], &deb),
        ArchiveFormat::Deb,
        "./bin/busybox",
    );
    src.member_sha256.insert("riscv64", "0".repeat(64));
    let cfg = config(&server, vec![src]);
    let dir = tempfile::tempdir().unwrap();
    let err = provision(&cfg, dir.path(), "riscv64")
        .pop()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, SupplyError::MemberHash { .. }), "{err}");
    assert_eq!(
        files(dir.path(), "sha256"),
        Vec::<String>::new(),
        "nothing at a final path"
    );
    assert!(files(dir.path(), "index").is_empty());
}
