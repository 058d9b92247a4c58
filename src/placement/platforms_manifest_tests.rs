use serde_json::json;

use super::tests::{d, desc, index, plat};
use super::*;

fn config(os: &str, arch: &str, variant: Option<&str>) -> Vec<u8> {
    let mut v =
        json!({"os": os, "architecture": arch, "rootfs": {"type": "layers", "diff_ids": []}});
    if let Some(x) = variant {
        v["variant"] = json!(x);
    }
    serde_json::to_vec(&v).unwrap()
}

fn manifest(mt: Option<&str>, config_mt: &str, config_digest: &str) -> Vec<u8> {
    let mut v = json!({"schemaVersion": 2, "config": {"mediaType": config_mt, "digest": config_digest, "size": 10}, "layers": []});
    if let Some(mt) = mt {
        v["mediaType"] = json!(mt);
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn manifest_table() {
    let arm = config("linux", "arm", Some("v7"));
    let amd = config("linux", "amd64", None);
    let win = config("windows", "amd64", None);
    /// (case, media type, manifest, config, Ok((platform, arch label)) or Err(part of the error))
    type Row<'a> = (
        &'a str,
        &'a str,
        Vec<u8>,
        Vec<u8>,
        Result<(&'a str, Option<&'a str>), &'a str>,
    );
    let rows: Vec<Row> = vec![
        (
            "oci single platform",
            OCI_MANIFEST,
            manifest(Some(OCI_MANIFEST), OCI_CONFIG, &digest_of(&arm)),
            arm.clone(),
            Ok(("linux/arm/v7", Some("arm"))),
        ),
        (
            "docker single platform",
            DOCKER_MANIFEST,
            manifest(Some(DOCKER_MANIFEST), DOCKER_CONFIG, &digest_of(&amd)),
            amd.clone(),
            Ok(("linux/amd64", Some("amd64"))),
        ),
        (
            "oci without mediaType field",
            OCI_MANIFEST,
            manifest(None, OCI_CONFIG, &digest_of(&amd)),
            amd.clone(),
            Ok(("linux/amd64", Some("amd64"))),
        ),
        (
            "windows image",
            OCI_MANIFEST,
            manifest(None, OCI_CONFIG, &digest_of(&win)),
            win.clone(),
            Ok(("windows/amd64", None)),
        ),
        (
            "served as an index",
            OCI_INDEX,
            manifest(None, OCI_CONFIG, &digest_of(&amd)),
            amd.clone(),
            Err("is not an OCI or Docker image manifest"),
        ),
        (
            "body docker, served oci",
            OCI_MANIFEST,
            manifest(Some(DOCKER_MANIFEST), OCI_CONFIG, &digest_of(&amd)),
            amd.clone(),
            Err("but was served as"),
        ),
        (
            "artifact config",
            OCI_MANIFEST,
            manifest(
                None,
                "application/vnd.cncf.helm.config.v1+json",
                &digest_of(&amd),
            ),
            amd.clone(),
            Err("is not an image config"),
        ),
        (
            "config from another blob",
            OCI_MANIFEST,
            manifest(None, OCI_CONFIG, &digest_of(&arm)),
            amd.clone(),
            Err("the registry sent another blob"),
        ),
        (
            "malformed config digest",
            OCI_MANIFEST,
            manifest(None, OCI_CONFIG, "sha256:zz"),
            amd.clone(),
            Err("is malformed"),
        ),
        (
            "config without architecture",
            OCI_MANIFEST,
            manifest(None, OCI_CONFIG, &digest_of(b"{\"os\":\"linux\"}")),
            b"{\"os\":\"linux\"}".to_vec(),
            Err("missing field `architecture`"),
        ),
        (
            "config with empty architecture",
            OCI_MANIFEST,
            manifest(
                None,
                OCI_CONFIG,
                &digest_of(b"{\"os\":\"linux\",\"architecture\":\"\"}"),
            ),
            b"{\"os\":\"linux\",\"architecture\":\"\"}".to_vec(),
            Err("no platform in the image config"),
        ),
        (
            "schema 1 manifest",
            DOCKER_MANIFEST,
            b"{\"schemaVersion\":1,\"config\":{\"mediaType\":\"x\",\"digest\":\"x\",\"size\":1}}"
                .to_vec(),
            amd.clone(),
            Err("schemaVersion 1"),
        ),
    ];
    for (case, mt, man, cfg, want) in rows {
        match (parse_manifest(mt, &man, &cfg), want) {
            (Ok(set), Ok((platform, arch))) => {
                assert_eq!(set.kind, Kind::Manifest, "{case}");
                assert_eq!(set.entries.len(), 1, "{case}");
                let e = &set.entries[0];
                assert_eq!(
                    e.digest,
                    digest_of(&man),
                    "{case}: the manifest is named by its own digest"
                );
                assert_eq!(e.platform.to_string(), platform, "{case}");
                assert_eq!(e.arch.map(arch_label), arch, "{case}");
            }
            (Err(e), Err(want)) => {
                assert!(e.to_string().contains(want), "{case}: {e}");
                assert!(e.to_string().contains("Hint:"), "{case}: {e}");
            }
            (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn digest_validation_and_sets() {
    assert_eq!(
        digest_of(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(valid_digest(&d('a')));
    assert!(valid_digest(&format!("sha512:{}", "0".repeat(128))));
    for bad in [
        "",
        "sha256:",
        "sha256",
        &format!("sha256:{}", "a".repeat(63)),
        &format!("sha256:{}", "a".repeat(65)),
        &format!("sha512:{}", "a".repeat(64)),
        &format!("SHA256:{}", "a".repeat(64)),
        &format!("sha256:{}g", "a".repeat(63)),
    ] {
        assert!(!valid_digest(bad), "{bad}");
    }
    let m = |c, p| desc(OCI_MANIFEST, &d(c), p, None);
    let set = parse_index(
        OCI_INDEX,
        &index(
            None,
            vec![
                m('1', plat("linux", "arm", Some("v6"))),
                m('2', plat("linux", "arm", Some("v7"))),
                m('3', plat("linux", "amd64", None)),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        set.arches().into_iter().collect::<Vec<_>>(),
        ["amd64", "arm"]
    );
    assert_eq!(
        set.entry_for("arm").unwrap().digest,
        d('1'),
        "first in document order"
    );
    assert!(set.entry_for("arm64").is_none());
}
