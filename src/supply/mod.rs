//! The interpreter supply chain, top level: for each requested arch, pick a source, get
//! the bytes (download, extract, or copy), verify them, and commit them to the cache.
//!
//! Partial-failure policy: each arch succeeds or fails on its own; one arch's broken
//! source never stops another arch. Sources are tried in config order, but only a source
//! that does not HAVE the arch (member missing, local file absent) passes the turn to the
//! next one: a download or verification failure is reported, never papered over by a
//! different source.

mod check;
mod steps;
mod version;

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::archive::ArchiveError;
use crate::cache::{Cache, CacheError, GcReport};
use crate::config::Config;
use crate::fetch::{FetchError, HttpTransport, Transport};

pub use check::core_check;
pub use version::parse_qemu_version;

/// The verification every committed interpreter passes: an ELF for the host CPU,
/// statically linked, owned by root and not group/other-writable (directory too).
pub type Check<'a> = &'a dyn Fn(&Path, &Arch) -> Result<(), String>;

/// An interpreter ready to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedInterpreter {
    pub arch: &'static Arch,
    /// Final path in the cache (`<cache>/sha256/<hex>`).
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Which source it came from, for `status`.
    pub source: String,
    /// qemu's version (`10.0.13`), when `--version` could be read.
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error("no source provides an interpreter for {arch} on {host} hosts{tried}. Hint: add a [[source]] with host = \"{host}\" to the config, or install qemu-user-static and use a kind = \"local\" source")]
    NoSource {
        arch: String,
        host: String,
        tried: String,
    },
    #[error("{arch}: source {source_name}: {error}")]
    Fetch {
        arch: String,
        source_name: String,
        error: FetchError,
    },
    #[error("{arch}: source {source_name}: {error}")]
    Archive {
        arch: String,
        source_name: String,
        error: ArchiveError,
    },
    #[error("{arch}: source {source_name}: member {member} has sha256 {got}, but member-sha256 pins {want}. Hint: the archive changed content or the pin is wrong; nothing was installed")]
    MemberHash {
        arch: String,
        source_name: String,
        member: String,
        got: String,
        want: String,
    },
    #[error("{arch}: source {source_name}: refused the interpreter: {what}")]
    Refused {
        arch: String,
        source_name: String,
        what: String,
    },
    #[error("{arch}: source {source_name}: {what}")]
    Setup {
        arch: String,
        source_name: String,
        what: String,
    },
    #[error("{arch}: {error}")]
    Cache { arch: String, error: CacheError },
}

/// Everything a provisioning run needs, injected: the cache, the transport, the check.
pub struct Supplier<'a> {
    pub config: &'a Config,
    pub cache: &'a Cache,
    pub host: &'static Arch,
    pub check: Check<'a>,
    /// `None`: build the real HTTP transport per source (from the config's download options).
    pub transport: Option<&'a dyn Transport>,
}

impl Supplier<'_> {
    /// Provision every arch; one result per arch, in the order asked.
    pub fn provision(
        &self,
        arches: &[&'static Arch],
    ) -> Vec<(&'static Arch, Result<ProvisionedInterpreter, SupplyError>)> {
        arches.iter().map(|a| (*a, self.provision_one(a))).collect()
    }

    fn provision_one(&self, arch: &'static Arch) -> Result<ProvisionedInterpreter, SupplyError> {
        let mut tried = Vec::new();
        for source in self
            .config
            .sources
            .iter()
            .filter(|s| s.serves(arch, self.host))
        {
            match steps::from_source(self, source, arch) {
                Err(steps::Miss(why)) => tried.push(format!("{}: {why}", source.name)),
                Ok(result) => return result,
            }
        }
        Err(SupplyError::NoSource {
            arch: arch.qemu.into(),
            host: self.host.qemu.into(),
            tried: if tried.is_empty() {
                String::new()
            } else {
                format!(" (tried {})", tried.join("; "))
            },
        })
    }

    fn transport_for(&self, allow_http: bool) -> Result<Box<dyn Transport + '_>, String> {
        match self.transport {
            Some(t) => Ok(Box::new(Borrowed(t))),
            None => HttpTransport::new(&self.config.download, allow_http)
                .map(|t| Box::new(t) as Box<dyn Transport>)
                .map_err(|e| e.to_string()),
        }
    }
}

struct Borrowed<'a>(&'a dyn Transport);

impl Transport for Borrowed<'_> {
    fn get(
        &self,
        url: &str,
        sink: &mut dyn std::io::Write,
        limit: u64,
        p: &mut crate::fetch::Progress,
    ) -> Result<u64, crate::fetch::AttemptError> {
        self.0.get(url, sink, limit, p)
    }
}

/// The simple entry point: open the cache at `cache_dir`, use real HTTPS, and verify with
/// `check`. A cache that cannot be opened fails every arch with the same error.
pub fn provision(
    config: &Config,
    arches: &[&'static Arch],
    cache_dir: &Path,
    host: &'static Arch,
    check: Check<'_>,
) -> Vec<(&'static Arch, Result<ProvisionedInterpreter, SupplyError>)> {
    match Cache::open(cache_dir) {
        Ok(cache) => Supplier {
            config,
            cache: &cache,
            host,
            check,
            transport: None,
        }
        .provision(arches),
        Err(e) => {
            let msg = e.to_string();
            arches
                .iter()
                .map(|a| {
                    (
                        *a,
                        Err(SupplyError::Setup {
                            arch: a.qemu.into(),
                            source_name: "cache".into(),
                            what: msg.clone(),
                        }),
                    )
                })
                .collect()
        }
    }
}

/// Drop every interpreter and archive that neither the index nor `in_use` (sha256s of
/// interpreters still registered with the kernel) references.
pub fn gc(cache_dir: &Path, in_use: &[String]) -> Result<GcReport, CacheError> {
    let cache = Cache::open(cache_dir)?;
    let mut keep: Vec<String> = in_use.to_vec();
    for e in cache.index()? {
        keep.push(e.sha256);
        keep.extend(e.archive_sha256);
    }
    cache.gc(&keep)
}
