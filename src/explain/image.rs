//! Container images as saved on disk: an OCI image layout directory, or a `docker save` /
//! `podman save` tar (either an OCI layout inside the tar, or the older docker-archive
//! `manifest.json`). Multi-platform indexes are followed. Blobs are read in place: from the
//! directory, or from their byte range inside the (uncompressed) outer tar.
//!
//! The JSON parsers ([`parse_index`], [`parse_manifest`], [`parse_config`],
//! [`parse_docker_manifest`]) are pure; the fuzzer feeds them arbitrary bytes.

use std::collections::{HashMap, HashSet};
use std::io;

use serde::Deserialize;

pub use super::source::Source;

/// Index and manifest nesting followed (an index of indexes is legal, a loop is not).
const MAX_DEPTH: usize = 4;
/// Manifests and configs larger than this are not metadata.
pub(super) const MAX_JSON: u64 = 16 << 20;
/// Distinct manifests and indexes read in one image. A multi-platform image has a dozen;
/// without a cap (and without deduplication) indexes pointing many times at the same
/// child multiply to hundreds of thousands of reads.
pub const MAX_MANIFESTS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{what} is not valid: {error}")]
    Json { what: String, error: String },
    #[error("{0}")]
    Invalid(String),
}

pub(super) fn invalid(m: impl Into<String>) -> ImageError {
    ImageError::Invalid(m.into())
}

/// An OCI platform: `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The arch-table row, by `os/arch/variant`, then `os/arch`.
    pub fn arch(&self) -> Option<&'static crate::arch::Arch> {
        let plain = format!("{}/{}", self.os, self.architecture);
        crate::arch::lookup(&self.name())
            .or_else(|_| crate::arch::lookup(&plain))
            .ok()
            .filter(|_| self.os == "linux")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    /// The blob's length in bytes: required by OCI, and what reads are bounded by.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ConfigFile {
    #[serde(flatten)]
    platform: Platform,
    #[serde(default)]
    config: Option<RunConfig>,
}

/// What the runtime executes, from the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
}

impl RunConfig {
    /// Entrypoint followed by Cmd, as the runtime builds argv.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.entrypoint.clone().unwrap_or_default();
        v.extend(self.cmd.clone().unwrap_or_default());
        v
    }

    /// The container's PATH (the config's Env), else the runtime default.
    pub fn path(&self) -> Vec<String> {
        let env = self.env.iter().flatten();
        let path = env.filter_map(|e| e.strip_prefix("PATH=")).next_back();
        path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DockerEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

fn json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Json {
        what: what.to_string(),
        error: e.to_string(),
    })
}

pub fn parse_index(bytes: &[u8]) -> Result<Vec<Descriptor>, ImageError> {
    Ok(json::<Index>("image index", bytes)?.manifests)
}

pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ImageError> {
    json("image manifest", bytes)
}

/// The platform and run settings of an image config.
pub fn parse_config(bytes: &[u8]) -> Result<(Platform, RunConfig), ImageError> {
    let c: ConfigFile = json("image config", bytes)?;
    Ok((c.platform, c.config.unwrap_or_default()))
}

pub fn parse_docker_manifest(bytes: &[u8]) -> Result<Vec<DockerEntry>, ImageError> {
    json("docker-archive manifest.json", bytes)
}

/// `sha256:<hex>` -> `blobs/sha256/<hex>`; anything that could leave the blobs directory
/// is refused.
pub fn blob_path(digest: &str) -> Result<String, ImageError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| invalid(format!("digest {digest:?} has no algorithm")))?;
    let ok = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
    };
    if !ok(alg, "+._-") || !ok(hex, "") {
        return Err(invalid(format!("digest {digest:?} is malformed")));
    }
    Ok(format!("blobs/{alg}/{hex}"))
}

/// A relative member path without `..`: what a docker-archive manifest may name.
fn member_path(p: &str) -> Result<String, ImageError> {
    let p = crate::archive::normalize(p);
    if p.is_empty() || p.split('/').any(|c| c == "..") {
        return Err(invalid(format!("member path {p:?} leaves the archive")));
    }
    Ok(p.to_string())
}

/// A blob or member to read, with its size when a descriptor gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub name: String,
    pub size: Option<u64>,
}

/// One runnable image of one platform: its config and its layers (in order).
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub run: RunConfig,
    pub layers: Vec<Blob>,
}

/// Every platform image in the source (attestation manifests skipped).
pub fn platforms(src: &Source) -> Result<Vec<PlatformImage>, ImageError> {
    if src.has("index.json") {
        let index = parse_index(&src.read_json("index.json", None)?)?;
        let mut walk = Walk {
            src,
            seen: HashSet::new(),
            out: vec![],
        };
        walk.index(index, 0)?;
        return Ok(walk.out);
    }
    if src.has("manifest.json") {
        let entries = parse_docker_manifest(&src.read_json("manifest.json", None)?)?;
        if entries.len() > MAX_MANIFESTS {
            return Err(too_many());
        }
        return entries
            .into_iter()
            .map(|e| {
                let (platform, run) =
                    parse_config(&src.read_json(&member_path(&e.config)?, None)?)?;
                let layers = e
                    .layers
                    .iter()
                    .map(|l| {
                        Ok(Blob {
                            name: member_path(l)?,
                            size: None,
                        })
                    })
                    .collect::<Result<_, ImageError>>()?;
                Ok(PlatformImage {
                    platform,
                    run,
                    layers,
                })
            })
            .collect();
    }
    Err(invalid(
        "neither index.json (OCI layout) nor manifest.json (docker-archive) found: give an OCI layout directory or a `docker save`/`podman save` tar",
    ))
}

fn too_many() -> ImageError {
    invalid(format!(
        "the image lists more than {MAX_MANIFESTS} distinct manifests and indexes; explain stops there. Hint: copy out the one platform wanted (`skopeo copy --override-arch`)"
    ))
}

/// An index walk: every manifest and index is read once, however often it is listed.
struct Walk<'s> {
    src: &'s Source,
    seen: HashSet<String>,
    out: Vec<PlatformImage>,
}

impl Walk<'_> {
    fn index(&mut self, descriptors: Vec<Descriptor>, depth: usize) -> Result<(), ImageError> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "image indexes nest deeper than {MAX_DEPTH}"
            )));
        }
        let fresh: Vec<Descriptor> = descriptors
            .into_iter()
            .filter(|d| !is_attestation(d) && self.seen.insert(d.digest.clone()))
            .collect();
        // Counted before anything is read, so a huge list costs no reads at all.
        if self.seen.len() > MAX_MANIFESTS {
            return Err(too_many());
        }
        for d in fresh {
            let bytes = self.src.read_json(&blob_path(&d.digest)?, d.size)?;
            if d.media_type.contains("index") || d.media_type.contains("manifest.list") {
                self.index(parse_index(&bytes)?, depth + 1)?;
                continue;
            }
            let m = parse_manifest(&bytes)?;
            let config = self
                .src
                .read_json(&blob_path(&m.config.digest)?, m.config.size)?;
            let (from_config, run) = parse_config(&config)?;
            let layers = m
                .layers
                .iter()
                .map(|l| {
                    Ok(Blob {
                        name: blob_path(&l.digest)?,
                        size: l.size,
                    })
                })
                .collect::<Result<_, ImageError>>()?;
            self.out.push(PlatformImage {
                platform: d.platform.unwrap_or(from_config),
                run,
                layers,
            });
        }
        Ok(())
    }
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.contains_key("vnd.docker.reference.type")
        || d.platform.as_ref().is_some_and(|p| p.os == "unknown")
}
