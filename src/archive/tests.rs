use super::*;

/// A tar built in memory: (path, contents, symlink target).
fn tar(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            None => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

fn extract(data: &[u8], member: &str) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    extract_member(ArchiveFormat::Tar, data, member, &mut out).map(|_| out)
}

#[test]
fn sniffs_compression_from_magic_bytes() {
    assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(sniff(b"\xfd7zXZ\0rest"), Compression::Xz);
    assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
    assert_eq!(sniff(b"usr/bin/x\0\0"), Compression::None);
    assert_eq!(normalize("./usr/bin/q"), "usr/bin/q");
    assert_eq!(normalize("/usr/bin/q"), "usr/bin/q");
}

#[test]
fn member_comes_out_of_plain_and_gzipped_tar_whatever_its_spelling() {
    let t = tar(&[
        ("./usr/bin/qemu-a", b"AAA", None),
        ("./usr/bin/qemu-b", b"BBBB", None),
    ]);
    for data in [t.clone(), gzip(&t)] {
        assert_eq!(extract(&data, "./usr/bin/qemu-b").unwrap(), b"BBBB");
        assert_eq!(extract(&data, "/usr/bin/qemu-a").unwrap(), b"AAA");
    }
}

#[test]
fn missing_member_lists_similar_names_and_links_name_their_target() {
    let t = tar(&[
        ("usr/bin/qemu-aarch64", b"A", None),
        ("usr/bin/qemu-arm64", b"", Some("qemu-aarch64")),
    ]);
    match extract(&t, "usr/bin/qemu-riscv64") {
        Err(ArchiveError::Missing { similar, .. }) => {
            assert_eq!(similar, ["usr/bin/qemu-aarch64", "usr/bin/qemu-arm64"])
        }
        other => panic!("{other:?}"),
    }
    match extract(&t, "usr/bin/qemu-arm64") {
        Err(ArchiveError::Link { target, .. }) => assert_eq!(target, "qemu-aarch64"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deb_without_data_member_is_named() {
    let mut ar = ar::Builder::new(Vec::new());
    ar.append(
        &ar::Header::new(b"debian-binary".to_vec(), 4),
        &b"2.0\n"[..],
    )
    .unwrap();
    let data = ar.into_inner().unwrap();
    let mut out = Vec::new();
    let err = extract_member(ArchiveFormat::Deb, &data[..], "x", &mut out).unwrap_err();
    assert!(err.to_string().contains("found: debian-binary"), "{err}");
}

#[test]
fn truncated_archive_is_a_read_error() {
    let t = gzip(&tar(&[("q", &[7u8; 100_000], None)]));
    let err = extract(&t[..t.len() / 2], "q").unwrap_err();
    assert!(matches!(err, ArchiveError::Read(_)), "{err:?}");
}

#[test]
fn many_members_come_out_of_one_pass() {
    let t = gzip(&tar(&[
        ("./usr/bin/qemu-a", b"AAA", None),
        ("./usr/bin/qemu-alias", b"", Some("qemu-a")),
        ("./usr/bin/qemu-b", b"BBBB", None),
    ]));
    let members = [
        "./usr/bin/qemu-b",
        "./usr/bin/qemu-missing",
        "./usr/bin/qemu-alias",
        "./usr/bin/qemu-a",
    ];
    let mut outs = vec![Vec::new(); 4];
    let found = extract_members(ArchiveFormat::Tar, &t[..], &members, &mut outs).unwrap();
    assert_eq!(
        found,
        [
            Found::Copied(4),
            Found::No,
            Found::Link("qemu-a".into()),
            Found::Copied(3)
        ]
    );
    assert_eq!(outs, [b"BBBB".to_vec(), vec![], vec![], b"AAA".to_vec()]);
}
