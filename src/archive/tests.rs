use std::io::{self, Cursor, Write};

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
    extract_max(data, member, u64::MAX)
}

fn extract_max(data: &[u8], member: &str, max: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    extract_member(ArchiveFormat::Tar, Cursor::new(data), member, &mut out, max).map(|_| out)
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
        ("./usr/bin/qemu-a", b"\x7fELFA", None),
        ("./usr/bin/qemu-b", b"\x7fELFBB", None),
    ]);
    for data in [t.clone(), gzip(&t)] {
        assert_eq!(extract(&data, "./usr/bin/qemu-b").unwrap(), b"\x7fELFBB");
        assert_eq!(extract(&data, "/usr/bin/qemu-a").unwrap(), b"\x7fELFA");
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
    let err = extract_member(
        ArchiveFormat::Deb,
        Cursor::new(data),
        "x",
        &mut out,
        1 << 20,
    )
    .unwrap_err();
    assert!(err.to_string().contains("found: debian-binary"), "{err}");
}

#[test]
fn truncated_archive_is_a_read_error() {
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(100_000, 7);
    let t = gzip(&tar(&[("q", &elf, None)]));
    let err = extract(&t[..t.len() / 2], "q").unwrap_err();
    assert!(matches!(err, ArchiveError::Read(_)), "{err:?}");
}

#[test]
fn many_members_come_out_of_one_pass() {
    let t = gzip(&tar(&[
        ("./usr/bin/qemu-a", b"\x7fELFA", None),
        ("./usr/bin/qemu-alias", b"", Some("qemu-a")),
        ("./usr/bin/qemu-b", b"\x7fELFBB", None),
    ]));
    let members = [
        "./usr/bin/qemu-b",
        "./usr/bin/qemu-missing",
        "./usr/bin/qemu-alias",
        "./usr/bin/qemu-a",
    ];
    let mut outs = vec![Vec::new(); 4];
    let found = extract_members(
        ArchiveFormat::Tar,
        Cursor::new(t),
        &members,
        &mut outs,
        1 << 20,
    )
    .unwrap();
    assert_eq!(
        found,
        [
            Found::Copied(6),
            Found::No,
            Found::Link("qemu-a".into()),
            Found::Copied(5)
        ]
    );
    assert_eq!(
        outs,
        [b"\x7fELFBB".to_vec(), vec![], vec![], b"\x7fELFA".to_vec()]
    );
}

/// Counts what reaches it, so a refusal can be shown to have written nothing.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn count(data: &[u8], member: &str, max: u64) -> (Result<u64, ArchiveError>, u64) {
    let mut c = Counter::default();
    let r = extract_member(ArchiveFormat::Tar, Cursor::new(data), member, &mut c, max);
    (r, c.0)
}

#[test]
fn oversized_or_non_elf_members_are_refused_before_anything_is_written() {
    let mut big = b"\x7fELF".to_vec();
    big.resize(3 << 20, 0);
    let t = tar(&[("q", &big, None)]);
    let (r, written) = count(&t, "q", 1 << 20);
    assert!(
        matches!(r, Err(ArchiveError::TooLarge { size, max: 1048576, .. }) if size == 3 << 20),
        "{r:?}"
    );
    assert_eq!(written, 0);
    assert_eq!(
        count(&t, "q", 3 << 20).0.unwrap(),
        3 << 20,
        "the limit is inclusive"
    );
    let zeros = tar(&[
        ("q", &vec![0u8; 3 << 20], None),
        ("e", b"", None),
        ("s", b"\x7fE", None),
    ]);
    for member in ["q", "e", "s"] {
        let (r, written) = count(&zeros, member, u64::MAX);
        assert!(
            matches!(r, Err(ArchiveError::NotElf { .. })),
            "{member}: {r:?}"
        );
        assert_eq!(written, 0, "{member}");
    }
}

#[test]
fn a_member_cut_short_is_truncated_not_complete() {
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(10_000, 1);
    let t = tar(&[("q", &elf, None)]);
    let cut = &t[..512 + 6_000];
    match extract(cut, "q") {
        Err(ArchiveError::Truncated { got, size, .. }) => assert_eq!((got, size), (6_000, 10_000)),
        other => panic!("{other:?}"),
    }
}

/// A tar with `link` as a hard link (tar's `1` entry type) to `target`.
fn with_hard_link(mut entries: Vec<(&str, &[u8])>, link: &str, target: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries.drain(..) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, link, target).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hard_links_resolve_to_their_target_member() {
    let t = with_hard_link(
        vec![
            ("./usr/bin/qemu-x", b"\x7fELFX"),
            ("./usr/bin/qemu-y", b"\x7fELFY"),
        ],
        "./usr/bin/qemu-alias",
        "./usr/bin/qemu-x",
    );
    assert_eq!(extract(&t, "usr/bin/qemu-alias").unwrap(), b"\x7fELFX");
    let members = ["usr/bin/qemu-y", "usr/bin/qemu-alias"];
    let mut outs = vec![Vec::new(); 2];
    let found = extract_members(ArchiveFormat::Tar, Cursor::new(&t), &members, &mut outs, 99);
    assert_eq!(found.unwrap(), [Found::Copied(5), Found::Copied(5)]);
    assert_eq!(outs, [b"\x7fELFY".to_vec(), b"\x7fELFX".to_vec()]);
    // A link to itself is not followed for ever.
    let t = with_hard_link(vec![], "loop", "loop");
    assert!(matches!(
        extract(&t, "loop"),
        Err(ArchiveError::Link { .. })
    ));
}

#[test]
fn every_zstd_frame_is_decoded_and_skippable_frames_skipped() {
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(300_000, 9);
    let t = tar(&[("q", &elf, None)]);
    let z = |d: &[u8]| {
        ruzstd::encoding::compress_to_vec(d, ruzstd::encoding::CompressionLevel::Fastest)
    };
    let (a, b) = t.split_at(100_000);
    // A skippable frame: magic 0x184D2A5?, little-endian length, payload.
    let skip = [&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0][..], b"abc"].concat();
    let data = [z(a), skip, z(b)].concat();
    assert_eq!(extract(&data, "q").unwrap(), elf);
}
