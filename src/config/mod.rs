//! The config file (TOML, default /etc/binfmtd/config.toml): where interpreters come from.
//!
//! Two steps, as with every input: serde parses the text into `RawConfig` (unknown keys are
//! errors, names are kebab-case), then `validate` turns it into a `Config` whose values are
//! typed and checked, or into a list of errors that each name the field and the fix.
//! Both steps are pure; only `load` reads a file.

mod agent;
mod default;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::arch::Arch;

pub use agent::AgentSettings;
pub use default::{embedded_sources, EMBEDDED_TOML};
pub use validate::{validate, FieldError};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/binfmtd/config.toml";

/// The file as written. Every field is optional except what a source needs to exist.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    #[serde(default)]
    pub download: RawDownload,
    /// Consult the built-in Debian source after the listed ones (default true).
    pub embedded_default: Option<bool>,
    #[serde(default, rename = "source")]
    pub sources: Vec<RawSource>,
    /// Agent settings (`binfmtd run`); the command line wins over each.
    pub arches: Option<Vec<String>>,
    pub skip_native: Option<bool>,
    pub credentials: Option<bool>,
    pub open_binary: Option<bool>,
    pub replace_foreign: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDownload {
    pub connect_timeout_secs: Option<u64>,
    pub read_timeout_secs: Option<u64>,
    pub retries: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub max_bytes: Option<u64>,
    pub extra_ca_bundle: Option<PathBuf>,
    pub attempt_timeout_secs: Option<u64>,
    pub total_timeout_secs: Option<u64>,
    pub min_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSource {
    pub name: Option<String>,
    pub kind: String,
    pub host: String,
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub urls: Vec<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub member: Option<String>,
    pub path: Option<PathBuf>,
    /// Options, not bools: a local source refuses them even when set to false.
    pub allow_http: Option<bool>,
    pub allow_file: Option<bool>,
    #[serde(default)]
    pub member_sha256: BTreeMap<String, String>,
}

/// A validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub download: DownloadOptions,
    /// Listed sources first, then (unless disabled) the embedded default.
    pub sources: Vec<Source>,
    /// Which arches and flags `binfmtd run` converges to, when the command line is silent.
    pub agent: AgentSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOptions {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Rounds over the whole mirror list after the first one.
    pub retries: u32,
    /// First pause between rounds; doubles each round, with jitter.
    pub backoff: Duration,
    /// Bodies larger than this are refused (a source's `size`, when set, is tighter).
    pub max_bytes: u64,
    pub extra_ca_bundle: Option<PathBuf>,
    /// One attempt at one URL ends by then, however steadily bytes arrive.
    pub attempt_timeout: Duration,
    /// The whole download of one source (every mirror, every round) ends by then.
    pub total_timeout: Duration,
    /// Slower than this (bytes/s, averaged over each `read_timeout`) counts as stalled;
    /// 0 turns the check off.
    pub min_rate: u64,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_bytes: 512 << 20,
            extra_ca_bundle: None,
            attempt_timeout: Duration::from_secs(600),
            total_timeout: Duration::from_secs(1800),
            min_rate: 1024,
        }
    }
}

/// One place interpreters come from, for one host CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    /// The CPU the interpreter binaries run on; sources for other hosts are skipped.
    pub host: &'static Arch,
    /// The guest arches it serves; `None` means any arch whose member exists.
    pub targets: Option<Vec<&'static Arch>>,
    pub origin: Origin,
    /// Optional pins of extracted members, by qemu arch name.
    pub member_sha256: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A single interpreter binary downloaded as is.
    Raw(Remote),
    /// A tar (plain, gz, xz or zst: detected from the bytes) or a .deb, plus a member path.
    Archive {
        remote: Remote,
        format: ArchiveFormat,
        member: String,
    },
    /// A local file serving one target.
    LocalFile(PathBuf),
    /// A local directory; `member` names the file inside it.
    LocalDir { dir: PathBuf, member: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    Deb,
}

/// Something downloaded: mirrors tried in order, pinned by sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub urls: Vec<String>,
    pub sha256: String,
    pub size: Option<u64>,
    pub allow_http: bool,
    pub allow_file: bool,
}

/// Fill `{cpu}` in a member template with the qemu binary's suffix (`riscv64`, `aarch64`).
pub fn member_for(template: &str, arch: &Arch) -> String {
    template.replace("{cpu}", arch.interpreter)
}

impl Source {
    /// Does this source serve `arch` on `host`?
    pub fn serves(&self, arch: &Arch, host: &Arch) -> bool {
        std::ptr::eq(self.host, host)
            && self
                .targets
                .as_ref()
                .is_none_or(|t| t.iter().any(|a| std::ptr::eq(*a, arch)))
    }

    /// A short description for `status`: name, kind, and what is pinned.
    pub fn describe(&self, arch: &Arch) -> String {
        match &self.origin {
            Origin::Raw(r) => format!(
                "{} (raw {}, sha256 {})",
                self.name,
                r.urls[0],
                short(&r.sha256)
            ),
            Origin::Archive {
                remote,
                member,
                format,
            } => format!(
                "{} ({} {} member {}, sha256 {})",
                self.name,
                if *format == ArchiveFormat::Deb {
                    "deb"
                } else {
                    "tar"
                },
                remote.urls[0],
                member_for(member, arch),
                short(&remote.sha256)
            ),
            Origin::LocalFile(p) => format!("{} (local file {})", self.name, p.display()),
            Origin::LocalDir { dir, member } => {
                format!(
                    "{} (local {})",
                    self.name,
                    dir.join(member_for(member, arch)).display()
                )
            }
        }
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

/// Errors reading the config file; validation errors are listed one per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}. Hint: create it (see packaging/config.example.toml) or pass --config FILE")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file (or a directory above it) fails the trust rule: another user could
    /// rewrite what root installs and runs.
    #[error("config {0}")]
    Untrusted(crate::trust::TrustError),
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path} is invalid:\n{}", errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
}

/// Parse and validate config text (pure). `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: format!(
            "{}{}",
            e.message(),
            e.span().map(|s| at_line(text, s.start)).unwrap_or_default()
        ),
    })?;
    let invalid = |errors| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors,
    };
    match (validate(&raw), agent::settings(&raw)) {
        (Ok(config), Ok(agent)) => Ok(Config { agent, ..config }),
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => Err(invalid(e)),
        (Err(mut e), Err(more)) => {
            e.extend(more);
            Err(invalid(e))
        }
    }
}

/// " (line L, column C)" for a byte offset, 1-based as editors count.
fn at_line(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" (line {line}, column {column})")
}

/// Read the config at `path`. A missing file at the default path means "no config": the
/// embedded default applies. A missing file the user named explicitly is an error. The
/// file is opened by the trust rule (`crate::trust`) and parsed from that handle: it names
/// what root downloads, pins and registers, so only root may be able to change it.
pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = match crate::trust::open_file(path) {
        Ok(f) => f.file,
        Err(e) if e.is_missing() && !explicit => return parse("", path),
        Err(e @ crate::trust::TrustError::Unsafe { .. }) => return Err(ConfigError::Untrusted(e)),
        Err(e) if e.is_missing() => {
            return Err(read_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                e.to_string(),
            )))
        }
        Err(e) => return Err(read_err(std::io::Error::other(e.to_string()))),
    };
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(read_err)?;
    parse(&text, path)
}

#[cfg(test)]
mod tests;
