//! Image platforms from registry bytes: an OCI image index or Docker manifest list, or one
//! OCI/Docker image manifest with its config, into {os, architecture, variant} per manifest
//! digest. Attestation manifests (buildx) are left out; anything malformed is refused with
//! the reason, so a registry cannot steer a decision with a crafted document.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::arch_label;
use crate::arch::{lookup, Arch};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// At most this many descriptors in one index: real ones hold a few dozen (platforms and
/// their attestations); more is a registry trying to make the controller work.
pub const MAX_DESCRIPTORS: usize = 256;
/// At most this many bytes in one manifest or config document (distribution's own limit).
pub const MAX_BYTES: usize = 4 << 20;

/// The annotation buildx puts on an attestation manifest inside an index.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An index: containerd pulls only the node's own platform out of it.
    Index,
    /// One manifest: containerd pulls it whatever its platform.
    Manifest,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// One runnable manifest: its digest, its platform, and binfmtd's arch row when the
/// platform is Linux on an architecture in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub digest: String,
    pub platform: Platform,
    pub arch: Option<&'static Arch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSet {
    pub kind: Kind,
    pub entries: Vec<Entry>,
    /// Attestation manifests and `unknown/unknown` entries left out.
    pub ignored: usize,
}

impl PlatformSet {
    /// The label names (`amd64`, `arm64`, ...) of the Linux arches the image offers.
    pub fn arches(&self) -> BTreeSet<&'static str> {
        self.entries
            .iter()
            .filter_map(|e| e.arch.map(arch_label))
            .collect()
    }

    /// The manifest for arch `label` (first in document order, as containerd picks).
    pub fn entry_for(&self, label: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.arch.map(arch_label) == Some(label))
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error("media type {got:?} is not {wanted}. Hint: the registry answered with another kind of document; check the reference names a container image")]
    MediaType { got: String, wanted: &'static str },
    #[error("document says mediaType {body:?} but was served as {served:?}. Hint: the registry or the image is broken; re-push the image")]
    MediaTypeMismatch { body: String, served: String },
    #[error("{what} is {len} bytes, over the cap of {MAX_BYTES}. Hint: no image manifest is that large; check the registry")]
    TooLarge { what: &'static str, len: usize },
    #[error("index has {count} descriptors, over the cap of {MAX_DESCRIPTORS}. Hint: name one platform's manifest by digest instead")]
    TooMany { count: usize },
    #[error("{what} is not valid JSON of its kind: {reason}. Hint: the registry sent something else than an image document; check the reference and the registry")]
    Malformed { what: &'static str, reason: String },
    #[error("schemaVersion {0} is not 2. Hint: schema 1 images are deprecated; rebuild the image")]
    Schema(u64),
    #[error("digest {0:?} is malformed (want sha256:<64 hex> or sha512:<128 hex>). Hint: the index is broken; re-push the image")]
    Digest(String),
    #[error("index lists {0} twice. Hint: the index is broken; re-push the image")]
    Duplicate(String),
    #[error("index entry {digest} is itself an index ({media_type}). Hint: nested indexes are not followed; name a flat index or one manifest")]
    Nested { digest: String, media_type: String },
    #[error("config digest is {got} but the manifest names {named}. Hint: the registry sent another blob than asked for")]
    ConfigMismatch { got: String, named: String },
    #[error("no platform in the {0}. Hint: the image is not a runnable container image")]
    NoPlatform(&'static str),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    schema_version: u64,
    media_type: Option<String>,
    manifests: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    #[allow(dead_code)]
    size: u64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    architecture: String,
    os: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: u64,
    media_type: Option<String>,
    config: RawDescriptor,
}

/// Whether `s` is a digest binfmtd accepts: `sha256:` + 64 or `sha512:` + 128 lowercase hex.
pub fn valid_digest(s: &str) -> bool {
    let hex = |h: &str, n: usize| {
        h.len() == n
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match s.split_once(':') {
        Some(("sha256", h)) => hex(h, 64),
        Some(("sha512", h)) => hex(h, 128),
        _ => false,
    }
}

/// The digest a registry names these bytes by (sha256).
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::fetch::hex(&Sha256::digest(bytes)))
}

fn parse_json<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, PlatformError> {
    if bytes.len() > MAX_BYTES {
        return Err(PlatformError::TooLarge {
            what,
            len: bytes.len(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| PlatformError::Malformed {
        what,
        reason: e.to_string(),
    })
}

fn check_body_type(body: &Option<String>, served: &str) -> Result<(), PlatformError> {
    match body {
        Some(b) if b != served => Err(PlatformError::MediaTypeMismatch {
            body: b.clone(),
            served: served.to_string(),
        }),
        _ => Ok(()),
    }
}

fn schema(v: u64) -> Result<(), PlatformError> {
    if v == 2 {
        Ok(())
    } else {
        Err(PlatformError::Schema(v))
    }
}

/// binfmtd's row for a Linux platform: `linux/arm/v7` first, then `linux/arm` (variants
/// the table does not list, such as `arm64/v9`, still name their architecture).
fn arch_of(p: &Platform) -> Option<&'static Arch> {
    if p.os != "linux" {
        return None;
    }
    let base = format!("linux/{}", p.architecture);
    p.variant
        .as_ref()
        .and_then(|v| lookup(&format!("{base}/{v}")).ok())
        .or_else(|| lookup(&base).ok())
}

fn platform(raw: RawPlatform) -> Platform {
    Platform {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant.filter(|v| !v.is_empty()),
    }
}

fn is_attestation(d: &RawDescriptor) -> bool {
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    unknown || d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some("attestation-manifest")
}

/// A descriptor inside an index must name a manifest by a well-formed digest.
fn check_descriptor(d: &RawDescriptor) -> Result<(), PlatformError> {
    if !valid_digest(&d.digest) {
        return Err(PlatformError::Digest(d.digest.clone()));
    }
    if d.media_type == OCI_INDEX || d.media_type == DOCKER_LIST {
        return Err(PlatformError::Nested {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
        });
    }
    if d.media_type != OCI_MANIFEST && d.media_type != DOCKER_MANIFEST {
        return Err(PlatformError::MediaType {
            got: d.media_type.clone(),
            wanted: "an image manifest inside an index",
        });
    }
    Ok(())
}

/// Parse an index or manifest list served with `media_type`.
pub fn parse_index(media_type: &str, bytes: &[u8]) -> Result<PlatformSet, PlatformError> {
    if media_type != OCI_INDEX && media_type != DOCKER_LIST {
        return Err(PlatformError::MediaType {
            got: media_type.to_string(),
            wanted: "an OCI image index or a Docker manifest list",
        });
    }
    let raw: RawIndex = parse_json("image index", bytes)?;
    schema(raw.schema_version)?;
    check_body_type(&raw.media_type, media_type)?;
    if raw.manifests.len() > MAX_DESCRIPTORS {
        return Err(PlatformError::TooMany {
            count: raw.manifests.len(),
        });
    }
    let (mut entries, mut ignored) = (Vec::new(), 0);
    let (mut digests, mut platforms) = (BTreeSet::new(), BTreeSet::new());
    for d in raw.manifests {
        check_descriptor(&d)?;
        if !digests.insert(d.digest.clone()) {
            return Err(PlatformError::Duplicate(d.digest));
        }
        if is_attestation(&d) {
            ignored += 1;
            continue;
        }
        let Some(p) = d.platform else {
            ignored += 1;
            continue;
        };
        let p = platform(p);
        if !platforms.insert(p.clone()) {
            return Err(PlatformError::Duplicate(format!("platform {p}")));
        }
        entries.push(Entry {
            digest: d.digest,
            arch: arch_of(&p),
            platform: p,
        });
    }
    if entries.is_empty() {
        return Err(PlatformError::NoPlatform("image index"));
    }
    Ok(PlatformSet {
        kind: Kind::Index,
        entries,
        ignored,
    })
}

/// Parse one image manifest served with `media_type`, and its config blob: the platform
/// of a single-platform image lives in the config. The manifest's digest is computed from
/// its bytes; the config must hash to the digest the manifest names.
pub fn parse_manifest(
    media_type: &str,
    manifest: &[u8],
    config: &[u8],
) -> Result<PlatformSet, PlatformError> {
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(PlatformError::MediaType {
            got: media_type.to_string(),
            wanted: "an OCI or Docker image manifest",
        });
    }
    let raw: RawManifest = parse_json("image manifest", manifest)?;
    schema(raw.schema_version)?;
    check_body_type(&raw.media_type, media_type)?;
    if raw.config.media_type != OCI_CONFIG && raw.config.media_type != DOCKER_CONFIG {
        return Err(PlatformError::MediaType {
            got: raw.config.media_type,
            wanted: "an image config (OCI or Docker)",
        });
    }
    if !valid_digest(&raw.config.digest) {
        return Err(PlatformError::Digest(raw.config.digest));
    }
    let got = digest_of(config);
    if raw.config.digest.starts_with("sha256:") && got != raw.config.digest {
        return Err(PlatformError::ConfigMismatch {
            got,
            named: raw.config.digest,
        });
    }
    let p: RawPlatform = parse_json("image config", config)?;
    if p.os.is_empty() || p.architecture.is_empty() {
        return Err(PlatformError::NoPlatform("image config"));
    }
    let p = platform(p);
    let entries = vec![Entry {
        digest: digest_of(manifest),
        arch: arch_of(&p),
        platform: p,
    }];
    Ok(PlatformSet {
        kind: Kind::Manifest,
        entries,
        ignored: 0,
    })
}

#[cfg(test)]
#[path = "platforms_manifest_tests.rs"]
mod manifest_tests;
#[cfg(test)]
#[path = "platforms_tests.rs"]
mod tests;
