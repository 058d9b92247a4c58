//! Crafted archives, served pinned over HTTPS (the pin only says the archive is the one
//! the config names, not that it is sane): a tiny archive of a huge member, a member
//! split over two zstd frames, a tar cut short, and a member that is a hard link.

mod support;

use std::path::Path;

use binfmtd::cache::Cache;
use binfmtd::config::{ArchiveFormat, Config, Origin};
use binfmtd::supply::{core_check, ProvisionedInterpreter, SupplyError};
use support::server::{Behavior, Server};
use support::*;

const QEMU: &str = "/usr/bin/qemu-riscv64-static";

/// Serve `bytes` as the one archive source for riscv64 (member `bin/qemu-riscv64`) and
/// provision riscv64 from it into `cache`, with `max_bytes` as download.max-bytes.
fn provision_from(
    bytes: Vec<u8>,
    cache: &Path,
    max_bytes: u64,
) -> Result<ProvisionedInterpreter, SupplyError> {
    let server = Server::start();
    server.route("/q.tar", vec![Behavior::Serve(bytes.clone().into())]);
    let remote = remote(vec![server.url("/q.tar")], &bytes);
    let origin = Origin::Archive {
        remote,
        format: ArchiveFormat::Tar,
        member: "bin/qemu-{cpu}".into(),
    };
    let mut cfg: Config = config(&server, vec![source("crafted", "riscv64", origin)]);
    cfg.download.max_bytes = max_bytes;
    let cache = Cache::open(cache).unwrap();
    let s = binfmtd::supply::Supplier::new(&cfg, &cache, binfmtd::arch::host(), &core_check);
    let arch = binfmtd::arch::lookup("riscv64").unwrap();
    s.provision(&[arch]).into_iter().next().unwrap().1
}

/// A tar of (path, contents); a `None` content is a hard link to `link`.
fn tar(entries: &[(&str, Option<&[u8]>, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        match data {
            Some(d) => {
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, path, link).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn qemu() -> Vec<u8> {
    std::fs::read(QEMU).expect("qemu-user-static is installed (tests/deps.sh)")
}

#[test]
fn a_small_archive_of_a_huge_member_is_refused_at_the_limit() {
    // 64 MiB that start like an ELF compress to a few KiB.
    let mut huge = b"\x7fELF\x02\x01\x01".to_vec();
    huge.resize(64 << 20, 0);
    let archive = zstd(&tar(&[("bin/qemu-riscv64", Some(&huge), "")]));
    assert!(archive.len() < 1 << 20, "{} bytes", archive.len());
    let dir = tempfile::tempdir().unwrap();
    let err = provision_from(archive, dir.path(), 1 << 20).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("67108864 bytes, over the 1048576-byte limit"),
        "{msg}"
    );
    assert_cache_consistent(dir.path());
}

#[test]
fn a_member_over_several_zstd_frames_is_decoded_whole() {
    let q = qemu();
    let t = tar(&[("bin/qemu-riscv64", Some(&q), "")]);
    let (a, b) = t.split_at(t.len() / 3);
    let archive = [zstd(a), zstd(b)].concat();
    let dir = tempfile::tempdir().unwrap();
    let p = provision_from(archive, dir.path(), 256 << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read(&p.path).unwrap(),
        q,
        "the member came out cut"
    );
}

#[test]
fn a_tar_cut_inside_the_member_is_refused() {
    let q = qemu();
    let t = tar(&[("bin/qemu-riscv64", Some(&q), "")]);
    let cut = t[..t.len() / 2].to_vec();
    let dir = tempfile::tempdir().unwrap();
    let msg = provision_from(cut, dir.path(), 256 << 20)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the archive is truncated"), "{msg}");
    assert!(
        files(dir.path(), "sha256").is_empty(),
        "a cut member was kept"
    );
}

#[test]
fn a_hard_linked_member_is_resolved_inside_the_archive() {
    let q = qemu();
    let t = tar(&[
        ("bin/qemu-riscv64-real", Some(&q), ""),
        ("bin/qemu-riscv64", None, "bin/qemu-riscv64-real"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let p = provision_from(t, dir.path(), 256 << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(&p.path).unwrap(), q);
}
