//! One converge pass over a node: the requested arches minus the native ones, interpreters
//! from a local file/dir or the supply chain, the reconcile plan applied and proven, and
//! the interpreter cache collected. `install` runs it once; `run` runs it on every change.
//!
//! Effects come in as arguments (the kernel, the prover, the config), so the daemon, the
//! one-shot command and the tests share this code. The diff itself stays the pure `plan`.

mod holder;
mod interpreters;
mod lock;
mod observe;

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::config::Config;
use crate::entry::Flags;
use crate::install::{self, Outcome};
use crate::interp::{Source, Sums};
use crate::kernel::{BinfmtFs, BinfmtMisc, KernelError};
use crate::prover::{NativeSurvey, Prover};

pub use holder::Holder;
pub use interpreters::{resolve, Resolved};
pub use lock::{ConvergeLock, InstanceLock, LockError};
pub use observe::{kernel_view, observe, with_proofs};

/// Where interpreters come from.
#[derive(Debug, Clone)]
pub enum Interpreters {
    /// A file or directory the operator named (`--interpreter`, `--interpreter-dir`).
    Local(Source),
    /// The supply chain: the config's sources via the cache at `cache_dir`.
    Supply(Config),
}

/// Everything one pass needs to know, as plain values (no command-line types).
#[derive(Debug, Clone)]
pub struct Request {
    pub arches: Vec<&'static Arch>,
    /// `all` was named: arches no source has are skipped, natives silently dropped.
    pub all: bool,
    /// Drop named native arches instead of refusing them.
    pub skip_native: bool,
    pub interpreters: Interpreters,
    pub flags: Flags,
    pub replace_foreign: bool,
    pub cache_dir: PathBuf,
}

/// The flags binfmtd registers with: F always; O unless refused (C implies it).
pub fn flags(credentials: bool, open_binary: bool) -> Flags {
    Flags {
        preserve_argv0: false,
        open_binary: open_binary || credentials,
        credentials,
        fix_binary: true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("{} runs natively on this host; registering an emulator would hijack native binaries (binfmt_misc is consulted before the native loader). Drop it from --arch, or add --skip-native; nothing was registered", .0.join(", "))]
    NativeRequested(Vec<&'static str>),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What one pass did, in the order the arches were requested.
#[derive(Debug, Clone, Default)]
pub struct Converged {
    /// Includes compat arches left alone because nobody can tell whether the host runs
    /// them natively (action `install::UNDECIDED`, with the reason).
    pub outcomes: Vec<Outcome>,
    /// Requested arches this host runs natively (nothing registered for them).
    pub skipped_native: Vec<&'static str>,
    /// Arches skipped under `all` because no source has them.
    pub missing: Vec<&'static str>,
    /// `all` was requested: undecided arches are skipped, not failures.
    pub undecided_skipped: bool,
}

impl Converged {
    pub fn all_working(&self) -> bool {
        let skipped = |o: &Outcome| self.undecided_skipped && o.action == install::UNDECIDED;
        self.outcomes.iter().all(|o| o.working || skipped(o))
    }
}

/// Split the request into foreign arches and named native ones; refuse natives unless
/// `all` or `skip_native` says to drop them.
pub fn select(
    req: &Request,
    native: &NativeSurvey,
) -> Result<(Vec<&'static Arch>, Vec<&'static str>), ConvergeError> {
    let is_native = |a: &Arch| native.is_native(a);
    let named_native: Vec<&'static str> = req
        .arches
        .iter()
        .filter(|a| is_native(a))
        .map(|a| a.qemu)
        .collect();
    if !named_native.is_empty() && !req.all && !req.skip_native {
        return Err(ConvergeError::NativeRequested(named_native));
    }
    let foreign = req
        .arches
        .iter()
        .copied()
        .filter(|a| !is_native(a))
        .collect();
    Ok((foreign, named_native))
}

/// One pass: resolve interpreters (outside the lock: downloads may take long), then plan,
/// apply and prove under the node-wide converge lock, then collect the cache.
pub fn converge(
    fs: &(dyn BinfmtMisc + Sync),
    prover: &dyn Prover,
    req: &Request,
    native: &NativeSurvey,
    lock_wait: std::time::Duration,
) -> Result<Converged, ConvergeError> {
    let (foreign, skipped_native) = select(req, native)?;
    let (foreign, undecided) = install::split_undecided(foreign, native);
    let sums = sums(&req.cache_dir);
    let resolved = resolve(&foreign, &req.interpreters, req, &sums);
    sums.save();
    let (mut outcomes, missing) = (resolved.failed, resolved.missing);
    let applied = {
        let _held = ConvergeLock::acquire(fs.root(), lock_wait)?;
        install::install(
            fs,
            prover,
            &resolved.desired,
            install::Options {
                replace_foreign: req.replace_foreign,
            },
        )?
    };
    outcomes.extend(applied);
    outcomes.sort_by_key(|o| foreign.iter().position(|a| a.qemu == o.arch));
    outcomes.extend(undecided);
    if resolved.from_cache {
        // Interpreters nothing references any more (an old pin, a dropped arch) go now.
        if let Err(e) = collect_garbage(fs.root(), &req.cache_dir) {
            tracing::warn!(error = %e, "cache gc after install failed");
        }
    }
    Ok(Converged {
        outcomes,
        skipped_native,
        missing,
        undecided_skipped: req.all,
    })
}

/// Recorded interpreter sums (empty, and never saved, when the directory is unusable).
pub fn sums(cache_dir: &Path) -> Sums {
    // Created with an explicit mode (never the umask's) and checked by the trust rule.
    let usable = crate::trust::ensure_dir(cache_dir, 0o755).is_ok()
        && nix::unistd::access(cache_dir, nix::unistd::AccessFlags::W_OK).is_ok();
    Sums::load(usable.then_some(cache_dir))
}

/// Drop cached files that neither the index nor a registered entry references.
pub fn collect_garbage(
    binfmt_misc: &Path,
    cache_dir: &Path,
) -> Result<crate::cache::GcReport, crate::cache::CacheError> {
    crate::supply::gc(cache_dir, &registered_objects(binfmt_misc, cache_dir))
}

/// sha256 names of cache objects that registered entries still point at. When
/// binfmt_misc is not mounted nothing is registered through it, so nothing is kept.
fn registered_objects(binfmt_misc: &Path, cache_dir: &Path) -> Vec<String> {
    let Ok(fs) = BinfmtFs::open(binfmt_misc) else {
        return Vec::new();
    };
    let entries = fs.entries().unwrap_or_default();
    crate::supply::objects_in_use(cache_dir, entries.iter().map(|e| e.interpreter.as_path()))
}
