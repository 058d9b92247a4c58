//! The resolver's checks against documents a well-behaved registry would not send: a
//! scripted `Fetch` serves exact bytes (digest lies, nested indexes, huge indexes, wrong
//! types); the real registry path is exercised in tests/place_*.rs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;
use crate::placement::platforms::{Kind, OCI_CONFIG, MAX_DESCRIPTORS};

struct Scripted {
    manifests: HashMap<String, Served>,
    blobs: HashMap<String, Vec<u8>>,
    calls: AtomicUsize,
}

impl Fetch for Scripted {
    async fn manifest(&self, loc: &Location, _: &[&Credential]) -> Result<Served, RegistryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.manifests
            .get(loc.reference())
            .cloned()
            .ok_or(RegistryError::NotFound { image: loc.key() })
    }
    async fn blob(&self, loc: &Location, digest: &str, _: &[&Credential]) -> Result<Vec<u8>, RegistryError> {
        self.blobs
            .get(digest)
            .cloned()
            .ok_or(RegistryError::NotFound { image: loc.digest_key(digest) })
    }
}

fn served(media_type: &str, body: &serde_json::Value) -> Served {
    Served {
        media_type: media_type.into(),
        body: serde_json::to_vec(body).unwrap(),
        digest: None,
    }
}

fn desc(media_type: &str, digest: &str, arch: &str) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": digest, "size": 1,
           "platform": {"os": "linux", "architecture": arch}})
}

fn index(descs: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs})
}

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn resolver(manifests: Vec<(&str, Served)>, blobs: Vec<(String, Vec<u8>)>) -> Resolver<Scripted> {
    let s = Scripted {
        manifests: manifests.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        blobs: blobs.into_iter().collect(),
        calls: AtomicUsize::new(0),
    };
    Resolver::new(s, Cache::new(16, cache::TAG_TTL))
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn an_index_resolves_once_then_comes_from_the_cache_by_tag_and_by_digest() {
    let body = index(vec![desc(OCI_MANIFEST, &d('a'), "amd64"), desc(OCI_MANIFEST, &d('b'), "arm64")]);
    let doc = served(OCI_INDEX, &body);
    let digest = digest_of(&doc.body);
    let r = resolver(vec![("v1", doc)], vec![]);
    let set = run(r.resolve("r.io/app:v1", &[])).unwrap();
    assert_eq!(set.kind, Kind::Index);
    assert_eq!(set.arches().into_iter().collect::<Vec<_>>(), ["amd64", "arm64"]);
    run(r.resolve("r.io/app:v1", &[])).unwrap();
    // By the digest the tag was served with: no request either.
    run(r.resolve(&format!("r.io/app@{digest}"), &[])).unwrap();
    assert_eq!(r.fetch.calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.cached(), (1, 1));
}

#[test]
fn a_single_manifest_reads_its_platform_from_the_config() {
    let config = serde_json::to_vec(&json!({"os": "linux", "architecture": "arm64"})).unwrap();
    let cfg_digest = digest_of(&config);
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": config.len()}, "layers": []});
    let r = resolver(vec![("latest", served(OCI_MANIFEST, &manifest))], vec![(cfg_digest, config)]);
    let set = run(r.resolve("r.io/one", &[])).unwrap();
    assert_eq!((set.kind, set.arches().into_iter().collect::<Vec<_>>()), (Kind::Manifest, vec!["arm64"]));
}

#[test]
fn bad_documents_are_refused_with_the_reason() {
    let good = index(vec![desc(OCI_MANIFEST, &d('a'), "amd64")]);
    let mut lying_header = served(OCI_INDEX, &good);
    lying_header.digest = Some(d('f'));
    let nested = index(vec![desc(OCI_INDEX, &d('a'), "amd64")]);
    let huge = index((0..=MAX_DESCRIPTORS).map(|i| desc(OCI_MANIFEST, &format!("sha256:{i:064x}"), "amd64")).collect());
    let config = b"{}".to_vec();
    let wrong_config = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": d('c'), "size": 2}, "layers": []});
    let r = resolver(
        vec![
            ("header", lying_header),
            ("nested", served(OCI_INDEX, &nested)),
            ("huge", served(OCI_INDEX, &huge)),
            ("html", Served { media_type: "text/html".into(), body: b"<html>".to_vec(), digest: None }),
            ("json-lie", served(DOCKER_LIST, &good)),
            ("config", served(OCI_MANIFEST, &wrong_config)),
            (d('e').as_str(), served(OCI_INDEX, &good)),
        ],
        vec![(d('c'), config)],
    );
    let why = |image: &str| run(r.resolve(image, &[])).unwrap_err().to_string();
    let table = [
        ("r.io/x:header", "whose digest is"),
        ("r.io/x:nested", "is itself an index"),
        ("r.io/x:huge", "over the cap of 256"),
        ("r.io/x:html", "media type \"text/html\""),
        ("r.io/x:json-lie", "but was served as"),
        ("r.io/x:config", "config digest is"),
        (&format!("r.io/x@{}", d('e')), "whose digest is"),
        ("r.io/x:missing", "HTTP 404"),
        ("Bad/Ref", "is not valid"),
    ];
    for (image, want) in table {
        let got = why(image);
        assert!(got.contains(want), "{image}: {got}");
    }
    assert_eq!(r.cached(), (0, 0), "nothing refused is cached");
}
