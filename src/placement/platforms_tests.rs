use serde_json::{json, Value};

use super::*;
pub(super) use crate::placement::test_support::d;

pub(super) fn desc(
    mt: &str,
    digest: &str,
    platform: Option<Value>,
    annotations: Option<Value>,
) -> Value {
    let mut v = json!({"mediaType": mt, "digest": digest, "size": 1234});
    if let Some(p) = platform {
        v["platform"] = p;
    }
    if let Some(a) = annotations {
        v["annotations"] = a;
    }
    v
}

pub(super) fn plat(os: &str, arch: &str, variant: Option<&str>) -> Option<Value> {
    let mut p = json!({"os": os, "architecture": arch});
    if let Some(v) = variant {
        p["variant"] = json!(v);
    }
    Some(p)
}

fn attestation(of: &str, digest: &str) -> Value {
    desc(
        OCI_MANIFEST,
        digest,
        plat("unknown", "unknown", None),
        Some(
            json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": of}),
        ),
    )
}

pub(super) fn index(mt: Option<&str>, manifests: Vec<Value>) -> Vec<u8> {
    let mut v = json!({"schemaVersion": 2, "manifests": manifests});
    if let Some(mt) = mt {
        v["mediaType"] = json!(mt);
    }
    serde_json::to_vec(&v).unwrap()
}

/// (digest, platform string, arch label) per entry.
type Want<'a> = &'a [(&'a str, &'a str, Option<&'a str>)];

#[test]
fn index_table() {
    let m = |c, p| desc(OCI_MANIFEST, &d(c), p, None);
    let dm = |c, p| desc(DOCKER_MANIFEST, &d(c), p, None);
    let rows: Vec<(&str, &str, Vec<u8>, Want, usize)> = vec![
        (
            "buildx multi-arch with attestations",
            OCI_INDEX,
            index(
                Some(OCI_INDEX),
                vec![
                    m('1', plat("linux", "amd64", None)),
                    m('2', plat("linux", "arm64", None)),
                    attestation(&d('1'), &d('3')),
                    attestation(&d('2'), &d('4')),
                ],
            ),
            &[
                ("1", "linux/amd64", Some("amd64")),
                ("2", "linux/arm64", Some("arm64")),
            ],
            2,
        ),
        (
            "amd64-only index with an attestation",
            OCI_INDEX,
            index(
                None,
                vec![
                    m('1', plat("linux", "amd64", None)),
                    attestation(&d('1'), &d('2')),
                ],
            ),
            &[("1", "linux/amd64", Some("amd64"))],
            1,
        ),
        (
            "unknown/unknown without annotation left out",
            OCI_INDEX,
            index(
                None,
                vec![
                    m('1', plat("linux", "arm64", None)),
                    m('2', plat("unknown", "unknown", None)),
                ],
            ),
            &[("1", "linux/arm64", Some("arm64"))],
            1,
        ),
        (
            "attestation named only by annotation",
            OCI_INDEX,
            index(
                None,
                vec![
                    m('1', plat("linux", "amd64", None)),
                    desc(
                        OCI_MANIFEST,
                        &d('2'),
                        plat("linux", "amd64", Some("v9")),
                        Some(json!({"vnd.docker.reference.type": "attestation-manifest"})),
                    ),
                ],
            ),
            &[("1", "linux/amd64", Some("amd64"))],
            1,
        ),
        (
            "docker manifest list, arm variants",
            DOCKER_LIST,
            index(
                Some(DOCKER_LIST),
                vec![
                    dm('1', plat("linux", "arm", Some("v7"))),
                    dm('2', plat("linux", "arm", Some("v6"))),
                    dm('3', plat("linux", "arm64", Some("v8"))),
                    dm('4', plat("linux", "386", None)),
                ],
            ),
            &[
                ("1", "linux/arm/v7", Some("arm")),
                ("2", "linux/arm/v6", Some("arm")),
                ("3", "linux/arm64/v8", Some("arm64")),
                ("4", "linux/386", Some("386")),
            ],
            0,
        ),
        (
            "windows and unknown arches kept without a row",
            OCI_INDEX,
            index(
                None,
                vec![
                    m('1', plat("windows", "amd64", None)),
                    m('2', plat("linux", "wasm", None)),
                    m('3', plat("linux", "riscv64", None)),
                ],
            ),
            &[
                ("1", "windows/amd64", None),
                ("2", "linux/wasm", None),
                ("3", "linux/riscv64", Some("riscv64")),
            ],
            0,
        ),
        (
            "variant the table lacks still names the arch",
            OCI_INDEX,
            index(
                None,
                vec![
                    m('1', plat("linux", "arm64", Some("v9"))),
                    m('2', plat("linux", "amd64", Some("v4"))),
                ],
            ),
            &[
                ("1", "linux/arm64/v9", Some("arm64")),
                ("2", "linux/amd64/v4", Some("amd64")),
            ],
            0,
        ),
        (
            "entry without platform left out",
            OCI_INDEX,
            index(
                None,
                vec![m('1', None), m('2', plat("linux", "s390x", None))],
            ),
            &[("2", "linux/s390x", Some("s390x"))],
            1,
        ),
        (
            "empty variant is no variant",
            OCI_INDEX,
            index(None, vec![m('1', plat("linux", "ppc64le", Some("")))]),
            &[("1", "linux/ppc64le", Some("ppc64le"))],
            0,
        ),
    ];
    for (case, mt, bytes, want, ignored) in rows {
        let got = parse_index(mt, &bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(got.kind, Kind::Index, "{case}");
        assert_eq!(got.ignored, ignored, "{case}");
        let got: Vec<_> = got
            .entries
            .iter()
            .map(|e| {
                (
                    e.digest.clone(),
                    e.platform.to_string(),
                    e.arch.map(arch_label),
                )
            })
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|(c, p, a)| (d(c.chars().next().unwrap()), p.to_string(), *a))
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn index_refusals() {
    let m = |c, p| desc(OCI_MANIFEST, &d(c), p, None);
    let amd = || plat("linux", "amd64", None);
    let too_many: Vec<Value> = (0..=MAX_DESCRIPTORS)
        .map(|i| desc(OCI_MANIFEST, &format!("sha256:{i:064x}"), amd(), None))
        .collect();
    let huge = vec![b' '; MAX_BYTES + 1];
    let rows: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "served as a manifest",
            OCI_MANIFEST,
            index(None, vec![m('1', amd())]),
            "is not an OCI image index",
        ),
        (
            "served as html",
            "text/html",
            b"<html>".to_vec(),
            "is not an OCI image index",
        ),
        (
            "body says docker list, served as oci",
            OCI_INDEX,
            index(Some(DOCKER_LIST), vec![m('1', amd())]),
            "but was served as",
        ),
        (
            "schema 1",
            OCI_INDEX,
            serde_json::to_vec(&json!({"schemaVersion": 1, "manifests": []})).unwrap(),
            "schemaVersion 1",
        ),
        (
            "not json",
            OCI_INDEX,
            b"{\"schemaVersion\": 2, \"manifests\": [".to_vec(),
            "not valid JSON",
        ),
        (
            "manifests missing",
            OCI_INDEX,
            b"{\"schemaVersion\": 2}".to_vec(),
            "missing field `manifests`",
        ),
        (
            "over the descriptor cap",
            OCI_INDEX,
            index(None, too_many),
            "over the cap of 256",
        ),
        ("over the byte cap", OCI_INDEX, huge, "over the cap of"),
        (
            "short digest",
            OCI_INDEX,
            index(None, vec![desc(OCI_MANIFEST, "sha256:abc", amd(), None)]),
            "digest \"sha256:abc\" is malformed",
        ),
        (
            "uppercase digest",
            OCI_INDEX,
            index(
                None,
                vec![desc(
                    OCI_MANIFEST,
                    &format!("sha256:{}", "A".repeat(64)),
                    amd(),
                    None,
                )],
            ),
            "is malformed",
        ),
        (
            "md5 digest",
            OCI_INDEX,
            index(
                None,
                vec![desc(
                    OCI_MANIFEST,
                    &format!("md5:{}", "a".repeat(32)),
                    amd(),
                    None,
                )],
            ),
            "is malformed",
        ),
        (
            "path in digest",
            OCI_INDEX,
            index(
                None,
                vec![desc(OCI_MANIFEST, "sha256:../../etc/passwd", amd(), None)],
            ),
            "is malformed",
        ),
        (
            "same digest twice",
            OCI_INDEX,
            index(
                None,
                vec![m('1', amd()), m('1', plat("linux", "arm64", None))],
            ),
            "lists sha256:1111",
        ),
        (
            "same platform twice",
            OCI_INDEX,
            index(None, vec![m('1', amd()), m('2', amd())]),
            "lists platform linux/amd64 twice",
        ),
        (
            "nested index",
            OCI_INDEX,
            index(None, vec![desc(OCI_INDEX, &d('1'), None, None)]),
            "is itself an index",
        ),
        (
            "layer in an index",
            OCI_INDEX,
            index(
                None,
                vec![desc(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    &d('1'),
                    amd(),
                    None,
                )],
            ),
            "an image manifest inside an index",
        ),
        (
            "only attestations",
            OCI_INDEX,
            index(None, vec![attestation(&d('1'), &d('2'))]),
            "no platform in the image index",
        ),
        (
            "empty index",
            OCI_INDEX,
            index(None, vec![]),
            "no platform in the image index",
        ),
    ];
    for (case, mt, bytes, want) in rows {
        let err = parse_index(mt, &bytes).expect_err(case).to_string();
        assert!(err.contains(want), "{case}: {err}");
        assert!(err.contains("Hint:"), "{case}: {err}");
    }
}
