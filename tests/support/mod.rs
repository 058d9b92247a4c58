//! Helpers shared by the supply-chain tests: the HTTPS server, real fixture files, and
//! assertions about what the cache holds.
#![allow(dead_code)]

pub mod apiserver;
pub mod proxy;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use binfmtd::config::{Config, DownloadOptions, Origin, Remote, Source};
use sha2::{Digest, Sha256};

/// A fixture fetched by tests/fixtures/fetch.sh into $FIXTURES (tests/run.sh sets it when
/// the checkout is not readable by the sandbox uid) or target/fixtures. Missing fixtures
/// are a setup error.
pub fn fixture(rel: &str) -> PathBuf {
    let dir = std::env::var_os("FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"));
    let p = dir.join(rel);
    assert!(
        p.exists(),
        "missing fixture {}: run `bash tests/fixtures/fetch.sh` first (tests/run.sh does)",
        p.display()
    );
    p
}

/// A real file's bytes (qemu binaries from qemu-user-static, /bin/ls, fixture .debs).
pub fn real(path: impl AsRef<Path>) -> Arc<Vec<u8>> {
    let path = path.as_ref();
    Arc::new(std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Hint: apt-get install qemu-user-static",
            path.display()
        )
    }))
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Download options for tests: trust the test CA, short timeouts, quick retries.
pub fn opts(server: &server::Server) -> DownloadOptions {
    DownloadOptions {
        connect_timeout: std::time::Duration::from_secs(5),
        read_timeout: std::time::Duration::from_secs(2),
        retries: 2,
        backoff: std::time::Duration::from_millis(50),
        max_bytes: 256 << 20,
        extra_ca_bundle: Some(server.ca_file.clone()),
        ..DownloadOptions::default()
    }
}

pub fn remote(urls: Vec<String>, bytes: &[u8]) -> Remote {
    Remote {
        urls,
        sha256: sha256(bytes),
        size: Some(bytes.len() as u64),
        allow_http: false,
        allow_file: false,
    }
}

pub fn source(name: &str, target: &str, origin: Origin) -> Source {
    Source {
        name: name.into(),
        host: binfmtd::arch::host(),
        targets: Some(vec![binfmtd::arch::lookup(target).unwrap()]),
        origin,
        member_sha256: Default::default(),
    }
}

pub fn config(server: &server::Server, sources: Vec<Source>) -> Config {
    Config {
        download: opts(server),
        sources,
        agent: Default::default(),
    }
}

/// Names of files under `<cache>/<area>`.
pub fn files(cache: &Path, area: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join(area))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file at a final path in the cache is complete: its name is its sha256, and
/// every index entry points at an existing object. Returns the object names.
pub fn assert_cache_consistent(cache: &Path) -> Vec<String> {
    for area in ["sha256", "archives"] {
        for name in files(cache, area) {
            if name.starts_with(".tmp-") {
                continue;
            }
            let bytes = std::fs::read(cache.join(area).join(&name)).unwrap();
            assert_eq!(
                sha256(&bytes),
                name,
                "{area}/{name} holds other bytes than its name says"
            );
        }
    }
    for name in files(cache, "index") {
        if name.starts_with(".tmp-") {
            continue;
        }
        let text = std::fs::read_to_string(cache.join("index").join(&name)).unwrap();
        let e: binfmtd::cache::IndexEntry = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("index/{name} is not a complete entry: {e}"));
        assert!(
            e.path.is_file(),
            "index/{name} points at missing {}",
            e.path.display()
        );
    }
    files(cache, "sha256")
        .into_iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .collect()
}

/// After a failure: no object, archive or index entry, and no temp file left behind.
pub fn assert_cache_empty(cache: &Path) {
    for area in ["sha256", "archives", "index"] {
        assert_eq!(
            files(cache, area),
            Vec::<String>::new(),
            "{area}/ should be empty after a refused source"
        );
    }
}
