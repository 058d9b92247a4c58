use std::path::Path;

use super::*;
use crate::arch::lookup;

#[test]
fn embedded_default_has_one_deb_per_supported_host() {
    let sources = embedded_sources();
    let hosts: Vec<&str> = sources.iter().map(|s| s.host.qemu).collect();
    assert_eq!(hosts, ["x86_64", "aarch64"]);
    for s in &sources {
        let Origin::Archive {
            remote,
            format,
            member,
        } = &s.origin
        else {
            panic!("{} is not an archive", s.name)
        };
        assert_eq!(*format, ArchiveFormat::Deb);
        assert_eq!(member, "./usr/bin/qemu-{cpu}");
        assert_eq!(
            remote.urls.len(),
            2,
            "pool URL, then the permanent snapshot URL"
        );
        assert!(remote.urls[0].starts_with(
            "https://deb.debian.org/debian/pool/main/q/qemu/qemu-user_10.0.13+ds-0+deb13u1_"
        ));
        assert!(remote.urls[1].starts_with("https://snapshot.debian.org/file/"));
        assert!(s.targets.is_none());
    }
}

#[test]
fn sources_serve_their_host_and_targets_only() {
    let (amd64, arm64, riscv) = (
        lookup("amd64").unwrap(),
        lookup("arm64").unwrap(),
        lookup("riscv64").unwrap(),
    );
    let cfg = parse(
        "embedded-default = false\n[[source]]\nkind = \"local\"\nhost = \"amd64\"\ntargets = [\"riscv64\"]\npath = \"/q\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let s = &cfg.sources[0];
    assert!(s.serves(riscv, amd64));
    assert!(!s.serves(riscv, arm64), "another host CPU");
    assert!(!s.serves(arm64, amd64), "not a listed target");
    assert_eq!(
        member_for("./usr/bin/qemu-{cpu}", lookup("armhf").unwrap()),
        "./usr/bin/qemu-arm"
    );
}

#[test]
fn defaults_apply_and_embedded_default_can_be_disabled() {
    let cfg = parse("", Path::new("t.toml")).unwrap();
    assert_eq!(cfg.download, DownloadOptions::default());
    assert_eq!(cfg.sources, embedded_sources());
    let cfg = parse("embedded-default = false", Path::new("t.toml")).unwrap();
    assert!(cfg.sources.is_empty());
}

#[test]
fn parse_errors_point_at_line_and_column() {
    let err = parse("[download]\nretries = \"many\"\n", Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2, column 11"), "{err}");
}
