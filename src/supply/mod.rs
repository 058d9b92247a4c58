//! The interpreter supply chain, top level: for each requested arch, pick a source, get
//! the bytes (download, extract, or copy), verify them, and commit them to the cache.
//!
//! Partial-failure policy: each arch succeeds or fails on its own; one arch's broken
//! source never stops another arch. Sources are tried in config order, but only a source
//! that does not HAVE the arch (member missing, local file absent) passes the turn to the
//! next one: a download or verification failure is reported, never papered over by a
//! different source.

mod batch;
mod check;
mod steps;
mod version;

use steps::Done;

use std::cell::OnceCell;
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
    config: &'a Config,
    cache: &'a Cache,
    host: &'static Arch,
    check: Check<'a>,
    /// `None`: the real HTTP transport, built once per run (per allow-http setting).
    transport: Option<&'a dyn Transport>,
    http: [OnceCell<Result<HttpTransport, String>>; 2],
    batch: batch::Batches,
}

impl<'a> Supplier<'a> {
    pub fn new(
        config: &'a Config,
        cache: &'a Cache,
        host: &'static Arch,
        check: Check<'a>,
    ) -> Supplier<'a> {
        Supplier {
            config,
            cache,
            host,
            check,
            transport: None,
            http: Default::default(),
            batch: Default::default(),
        }
    }

    /// Use this transport instead of real HTTPS.
    pub fn with_transport(mut self, t: &'a dyn Transport) -> Supplier<'a> {
        self.transport = Some(t);
        self
    }
}

impl Supplier<'_> {
    /// Provision every arch; one result per arch, in the order asked. On return every
    /// committed file, index entry and rename is on disk.
    pub fn provision(
        &self,
        arches: &[&'static Arch],
    ) -> Vec<(&'static Arch, Result<ProvisionedInterpreter, SupplyError>)> {
        self.batch
            .set_requested(arches, self.config.download.max_bytes);
        let done: Vec<_> = arches.iter().map(|a| (*a, self.provision_one(a))).collect();
        let versions = new_versions(&done);
        let mut out: Vec<_> = done
            .into_iter()
            .zip(versions)
            .map(|((arch, r), version)| (arch, r.and_then(|d| self.index(arch, d, version))))
            .collect();
        if let Err(e) = self.cache.sync() {
            // Not durable means not ready to register: fail the arches that succeeded.
            let what = e.to_string();
            for (arch, r) in out.iter_mut().filter(|(_, r)| r.is_ok()) {
                *r = Err(SupplyError::Setup {
                    arch: arch.qemu.into(),
                    source_name: "cache".into(),
                    what: what.clone(),
                });
            }
        }
        out
    }

    /// Record a newly committed interpreter in the index (with its version).
    fn index(
        &self,
        arch: &'static Arch,
        done: Done,
        version: Option<String>,
    ) -> Result<ProvisionedInterpreter, SupplyError> {
        let mut e = match done {
            Done::Reused(p) => return Ok(p),
            Done::New(e) => e,
        };
        e.version = version;
        self.cache
            .write_index(&e)
            .map_err(|error| SupplyError::Cache {
                arch: arch.qemu.into(),
                error,
            })?;
        tracing::info!(arch = arch.qemu, path = %e.path.display(), source = %e.source, version = ?e.version, "interpreter ready");
        Ok(ProvisionedInterpreter {
            arch,
            path: e.path,
            sha256: e.sha256,
            size: e.size,
            source: e.source,
            version: e.version,
        })
    }

    fn provision_one(&self, arch: &'static Arch) -> Result<Done, SupplyError> {
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

    fn transport_for(&self, allow_http: bool) -> Result<&dyn Transport, String> {
        if let Some(t) = self.transport {
            return Ok(t);
        }
        let cell = &self.http[usize::from(allow_http)];
        match cell.get_or_init(|| {
            HttpTransport::new(&self.config.download, allow_http).map_err(|e| e.to_string())
        }) {
            Ok(t) => Ok(t),
            Err(e) => Err(e.clone()),
        }
    }
}

/// `qemu --version` of every newly committed interpreter, side by side: each is a process
/// start, and sequentially they cost more than the rest of a local install.
fn new_versions(done: &[(&'static Arch, Result<Done, SupplyError>)]) -> Vec<Option<String>> {
    crate::par::map(done, |(_, r)| match r {
        Ok(Done::New(e)) => version::read(&e.path),
        _ => None,
    })
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
        Ok(cache) => Supplier::new(config, &cache, host, check).provision(arches),
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

/// The sha256 names of cache objects among `interpreters` (paths registered with the
/// kernel): what `gc` must keep. Paths are compared after resolving symlinks on both sides,
/// so a `--cache-dir` given through a symlink (or an entry registered through one) still
/// protects the registered file.
pub fn objects_in_use<'p>(
    cache_dir: &Path,
    interpreters: impl IntoIterator<Item = &'p Path>,
) -> Vec<String> {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let objects = [cache_dir.join("sha256"), resolve(cache_dir).join("sha256")];
    interpreters
        .into_iter()
        .filter(|i| {
            i.parent()
                .is_some_and(|dir| objects.iter().any(|o| o == dir || *o == resolve(dir)))
        })
        .filter_map(|i| i.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}
