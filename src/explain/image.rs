//! Container images as saved on disk: an OCI image layout directory, or a `docker save` /
//! `podman save` tar (either an OCI layout inside the tar, or the older docker-archive
//! `manifest.json`). Multi-platform indexes are followed. Blobs are read in place: from the
//! directory, or from their byte range inside the (uncompressed) outer tar.
//!
//! The JSON parsers ([`parse_index`], [`parse_manifest`], [`parse_config`],
//! [`parse_docker_manifest`]) are pure; the fuzzer feeds them arbitrary bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Index and manifest nesting followed (an index of indexes is legal, a loop is not).
const MAX_DEPTH: usize = 4;
/// Manifests and configs larger than this are not metadata.
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{what} is not valid: {error}")]
    Json { what: String, error: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(m: impl Into<String>) -> ImageError {
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

/// Where the image's files are.
pub enum Source {
    Dir(PathBuf),
    /// Member name -> (offset, size) inside the tar file; symlinked members resolved.
    Tar {
        file: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

impl Source {
    /// A directory is an OCI layout; a file is a tar indexed once, without extracting.
    pub fn open(path: &Path) -> Result<Source, ImageError> {
        let io_err = |error| ImageError::Io {
            path: path.display().to_string(),
            error,
        };
        if path.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let mut archive = tar::Archive::new(File::open(path).map_err(io_err)?);
        let mut members = HashMap::new();
        let mut links = vec![];
        for entry in archive.entries().map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = crate::archive::normalize(&String::from_utf8_lossy(&entry.path_bytes()))
                .to_string();
            match entry.link_name_bytes() {
                Some(target) if entry.header().entry_type().is_symlink() => {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    let t = String::from_utf8_lossy(&target).into_owned();
                    links.push((name, format!("{dir}/{t}")));
                }
                _ => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
            }
        }
        for (name, target) in links {
            let resolved = normalize_dots(&target);
            if let Some(&at) = members.get(&resolved) {
                members.insert(name, at);
            }
        }
        Ok(Source::Tar {
            file: path.to_path_buf(),
            members,
        })
    }

    pub fn format(&self) -> &'static str {
        match self {
            Source::Dir(_) => "oci-layout",
            Source::Tar { members, .. } if members.contains_key("index.json") => "oci-archive",
            Source::Tar { .. } => "docker-archive",
        }
    }

    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(name).is_file(),
            Source::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// A reader over one member or file; a `blobs/sha256/<hex>` one fails at its end
    /// unless its bytes have that digest.
    pub fn read(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let raw = self.read_raw(name)?;
        Ok(match name.strip_prefix("blobs/sha256/") {
            Some(hex) => Box::new(Verified {
                inner: raw,
                hasher: Sha256::new(),
                want: hex.to_string(),
                name: name.to_string(),
            }),
            None => raw,
        })
    }

    /// Read a whole blob to check its digest (layers are parsed as streams that may stop
    /// before the end).
    pub fn verify(&self, name: &str) -> Result<(), ImageError> {
        io::copy(&mut self.read(name)?, &mut io::sink()).map_err(|error| ImageError::Io {
            path: name.to_string(),
            error,
        })?;
        Ok(())
    }

    fn read_raw(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let io_err = |error| ImageError::Io {
            path: name.to_string(),
            error,
        };
        match self {
            Source::Dir(d) => Ok(Box::new(File::open(d.join(name)).map_err(io_err)?)),
            Source::Tar { file, members } => {
                let &(off, size) = members
                    .get(name)
                    .ok_or_else(|| invalid(format!("{name} is not in the archive")))?;
                let mut f = File::open(file).map_err(io_err)?;
                f.seek(SeekFrom::Start(off)).map_err(io_err)?;
                Ok(Box::new(f.take(size)))
            }
        }
    }

    /// A small JSON member, whole.
    pub fn read_json(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let mut out = vec![];
        self.read(name)?
            .take(MAX_JSON)
            .read_to_end(&mut out)
            .map_err(|error| ImageError::Io {
                path: name.to_string(),
                error,
            })?;
        Ok(out)
    }
}

/// Hashes what passes through; at the end, a digest other than `want` is an error.
struct Verified<R> {
    inner: R,
    hasher: Sha256,
    /// Emptied once the end is reached and checked.
    want: String,
    name: String,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.want.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let want = std::mem::take(&mut self.want);
        let got: String = std::mem::take(&mut self.hasher)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has sha256 {got}, not the digest that names it: the image is corrupt or was altered",
                    self.name
                ),
            ));
        }
        Ok(0)
    }
}

/// `a/./b/../c` -> `a/c` (never above the start).
fn normalize_dots(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// One runnable image of one platform: its config and its layers (member names, in order).
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub run: RunConfig,
    pub layers: Vec<String>,
}

/// Every platform image in the source (attestation manifests skipped).
pub fn platforms(src: &Source) -> Result<Vec<PlatformImage>, ImageError> {
    if src.has("index.json") {
        let mut out = vec![];
        let index = parse_index(&src.read_json("index.json")?)?;
        walk_index(src, index, 0, &mut out)?;
        return Ok(out);
    }
    if src.has("manifest.json") {
        let entries = parse_docker_manifest(&src.read_json("manifest.json")?)?;
        return entries
            .into_iter()
            .map(|e| {
                let (platform, run) = parse_config(&src.read_json(&member_path(&e.config)?)?)?;
                let layers = e
                    .layers
                    .iter()
                    .map(|l| member_path(l))
                    .collect::<Result<_, _>>()?;
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

fn walk_index(
    src: &Source,
    descriptors: Vec<Descriptor>,
    depth: usize,
    out: &mut Vec<PlatformImage>,
) -> Result<(), ImageError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "image indexes nest deeper than {MAX_DEPTH}"
        )));
    }
    for d in descriptors {
        let attestation = d.annotations.contains_key("vnd.docker.reference.type")
            || d.platform.as_ref().is_some_and(|p| p.os == "unknown");
        if attestation {
            continue;
        }
        let bytes = src.read_json(&blob_path(&d.digest)?)?;
        if d.media_type.contains("index") || d.media_type.contains("manifest.list") {
            walk_index(src, parse_index(&bytes)?, depth + 1, out)?;
            continue;
        }
        let m = parse_manifest(&bytes)?;
        let (from_config, run) = parse_config(&src.read_json(&blob_path(&m.config.digest)?)?)?;
        let layers = m
            .layers
            .iter()
            .map(|l| blob_path(&l.digest))
            .collect::<Result<_, _>>()?;
        out.push(PlatformImage {
            platform: d.platform.unwrap_or(from_config),
            run,
            layers,
        });
    }
    Ok(())
}
