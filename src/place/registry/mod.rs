//! Image platforms from registries: a reference in, the platform set out, with pull-secret
//! credentials, token challenges, extra CAs, byte caps and a bounded cache.
//!
//! | file     | what it holds                                                              |
//! |----------|----------------------------------------------------------------------------|
//! | `names`  | reference -> registry host, repository path, tag/digest (Docker Hub rules)  |
//! | `auth`   | `WWW-Authenticate` challenges; credentials out of pull secrets; matching   |
//! | `cache`  | platform sets by tag (short TTL) and by digest (immutable), bounded        |
//! | `http`   | the `Fetch` over the distribution API (reqwest on rustls/ring)             |
//!
//! The distribution API is spoken with reqwest, which binfmtd already links, rather than an
//! OCI client crate: the caps (bytes per document, descriptors per index) must hold before
//! a body is buffered, and the digest of every document is checked against its name here
//! (`crate::placement::platforms`), so a client's own parsing would only be skipped.

pub mod auth;
pub mod cache;
pub mod http;
pub mod names;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;
use sha2::Digest as _;

pub use auth::Credential;
pub use cache::Cache;
use names::Location;

use crate::placement::platforms::{
    self, digest_of, valid_digest, PlatformError, PlatformSet, DOCKER_LIST, DOCKER_MANIFEST,
    OCI_INDEX, OCI_MANIFEST,
};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("{0}")]
    Reference(String),
    #[error("registry {registry} is unreachable: {detail}. Hint: check the registry's address and that this cluster's network reaches it; for a private CA pass --registry-ca")]
    Unreachable { registry: String, detail: String },
    #[error("registry {registry} refused access to {repository} (HTTP {code}){detail}. Hint: give the pod (or its service account) an imagePullSecret of type kubernetes.io/dockerconfigjson for {registry}")]
    AuthRefused {
        registry: String,
        repository: String,
        code: u16,
        detail: String,
    },
    #[error(
        "image {image} is not in its registry (HTTP 404). Hint: check the repository and the tag"
    )]
    NotFound { image: String },
    #[error("registry {registry} answered HTTP {code} for {what}. Hint: the registry is failing; try again later")]
    Status {
        registry: String,
        what: String,
        code: u16,
    },
    #[error("{what} from registry {registry} is over {cap} bytes. Hint: no image manifest is that large; check the registry")]
    TooLarge {
        registry: String,
        what: String,
        cap: usize,
    },
    #[error("image {image}: the registry sent a document whose digest is {got}, not {named}. Hint: the registry (or something between) altered it; do not trust this registry until that is explained")]
    DigestMismatch {
        image: String,
        named: String,
        got: String,
    },
    #[error("image {image}: {source}")]
    Refused {
        image: String,
        source: PlatformError,
    },
    #[error("the registry deadline of {seconds} s passed before the platforms of {image} were known. Hint: raise --registry-timeout, or check the registry's latency")]
    Deadline { image: String, seconds: u64 },
}

/// One document as the registry served it.
#[derive(Debug, Clone)]
pub struct Served {
    /// Content-Type without parameters.
    pub media_type: String,
    pub body: Vec<u8>,
    /// `Docker-Content-Digest`, when the registry sent one.
    pub digest: Option<String>,
}

/// The distribution API, as far as placement needs it. `creds` are tried in order (then
/// none, when empty), as the kubelet tries a pod's pull secrets.
pub trait Fetch: Send + Sync {
    fn manifest(
        &self,
        loc: &Location,
        creds: &[&Credential],
    ) -> impl std::future::Future<Output = Result<Served, RegistryError>> + Send;
    fn blob(
        &self,
        loc: &Location,
        digest: &str,
        creds: &[&Credential],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, RegistryError>> + Send;
}

/// The digest of `bytes` by the algorithm `named` uses.
fn digest_like(named: &str, bytes: &[u8]) -> String {
    if named.starts_with("sha512:") {
        format!("sha512:{}", crate::fetch::hex(&sha2::Sha512::digest(bytes)))
    } else {
        digest_of(bytes)
    }
}

#[derive(Deserialize)]
struct ConfigRef {
    config: ConfigDigest,
}

#[derive(Deserialize)]
struct ConfigDigest {
    digest: String,
}

/// References to platform sets: the cache first, then the registry.
pub struct Resolver<F> {
    pub fetch: F,
    cache: Mutex<Cache>,
}

impl<F: Fetch> Resolver<F> {
    pub fn new(fetch: F, cache: Cache) -> Self {
        Resolver {
            fetch,
            cache: Mutex::new(cache),
        }
    }

    pub fn cached(&self) -> (usize, usize) {
        self.lock().len()
    }

    /// The platform set of `image`, using `secrets` (registry key -> credential, from the
    /// pod's pull secrets) where they match its registry.
    pub async fn resolve(
        &self,
        image: &str,
        secrets: &[(String, Credential)],
    ) -> Result<Arc<PlatformSet>, RegistryError> {
        let loc = names::locate(image).map_err(|e| RegistryError::Reference(e.to_string()))?;
        let key = loc.key();
        if let Some(hit) = self.lock().get(&key, Instant::now()) {
            return Ok(hit);
        }
        let creds = auth::matching(secrets, &loc.registry, &loc.repository);
        let served = self.fetch.manifest(&loc, &creds).await?;
        let (set, digest) = self.check(image, &loc, &creds, served).await?;
        let set = Arc::new(set);
        let tag_key = loc.digest.is_none().then_some(key);
        let digest_key = loc.digest_key(&digest);
        self.lock()
            .put(tag_key, digest_key, set.clone(), Instant::now());
        Ok(set)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Digest checks, then the document parsed (with its config for a single manifest).
    async fn check(
        &self,
        image: &str,
        loc: &Location,
        creds: &[&Credential],
        served: Served,
    ) -> Result<(PlatformSet, String), RegistryError> {
        let refused = |source| RegistryError::Refused {
            image: image.to_string(),
            source,
        };
        let named = [loc.digest.as_deref(), served.digest.as_deref()];
        for named in named.into_iter().flatten() {
            let got = digest_like(named, &served.body);
            if got != named {
                return Err(RegistryError::DigestMismatch {
                    image: image.to_string(),
                    named: named.to_string(),
                    got,
                });
            }
        }
        let digest = digest_of(&served.body);
        let mt = served.media_type.as_str();
        let set = if mt == OCI_INDEX || mt == DOCKER_LIST {
            platforms::parse_index(mt, &served.body).map_err(refused)?
        } else if mt == OCI_MANIFEST || mt == DOCKER_MANIFEST {
            let cfg: ConfigRef = serde_json::from_slice(&served.body).map_err(|e| {
                refused(PlatformError::Malformed {
                    what: "image manifest",
                    reason: e.to_string(),
                })
            })?;
            if !valid_digest(&cfg.config.digest) {
                return Err(refused(PlatformError::Digest(cfg.config.digest)));
            }
            let config = self.fetch.blob(loc, &cfg.config.digest, creds).await?;
            platforms::parse_manifest(mt, &served.body, &config).map_err(refused)?
        } else {
            return Err(refused(PlatformError::MediaType {
                got: served.media_type.clone(),
                wanted: "an image index, manifest list or image manifest",
            }));
        };
        Ok((set, digest))
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
