//! Where a converge pass gets its interpreters: a local file or directory when the operator names
//! one, otherwise the supply chain (config file, or the embedded Debian default).
//! Every interpreter passes the core checks before it can be registered.

use std::path::PathBuf;

use crate::arch::Arch;
use crate::entry::Flags;
use crate::install::{failed_arch, Outcome};
use crate::interp::{self, InterpError, Sums};
use crate::plan::Desired;
use crate::supply::SupplyError;

use super::{Interpreters, Request};

/// Checked interpreters, arches that failed (never registered), and arches skipped under
/// `all` because no source has them.
pub struct Resolved {
    pub desired: Vec<Desired>,
    pub failed: Vec<Outcome>,
    pub missing: Vec<&'static str>,
    /// True when the interpreters are cache objects (so `gc` applies afterwards): always.
    pub from_cache: bool,
}

/// Locate (or provision) and check an interpreter for each arch. Per-arch failures end up
/// in `failed`; nothing here aborts the pass.
pub fn resolve(
    arches: &[&'static Arch],
    source: &Interpreters,
    req: &Request,
    sums: &Sums,
) -> Resolved {
    let (flags, all): (Flags, bool) = (req.flags, req.all);
    let host = crate::arch::host();
    let located: Vec<Result<PathBuf, Miss>> = match source {
        Interpreters::Local(source) => {
            let found: Vec<_> = arches
                .iter()
                .map(|a| interp::locate(a, source, arches.len()))
                .collect();
            interp::adopt_all(&req.cache_dir, &found, host, sums)
                .into_iter()
                .map(|r| r.map_err(|e| skip_or(e, all)))
                .collect()
        }
        Interpreters::Supply(config) => {
            let cache = &req.cache_dir;
            crate::supply::provision(config, arches, cache, host, &crate::supply::core_check)
                .into_iter()
                .map(|(_, r)| r.map(|p| p.path).map_err(|e| supply_skip_or(e, all)))
                .collect()
        }
    };
    let checked = crate::par::map(&located, |l| match l {
        Ok(p) => {
            interp::check_interpreter_with(p, host, sums).map_err(|e| Miss::Failed(e.to_string()))
        }
        Err(e) => Err(e.clone()),
    });
    let mut out = Resolved {
        desired: vec![],
        failed: vec![],
        missing: vec![],
        // Local interpreters are registered as cache copies too.
        from_cache: true,
    };
    for (&arch, r) in arches.iter().zip(checked) {
        match r {
            Ok(info) => out.desired.push(Desired {
                arch,
                interpreter: info.path,
                flags,
            }),
            Err(Miss::Skip) => out.missing.push(arch.qemu),
            Err(Miss::Failed(e)) => out.failed.push(failed_arch(arch, "-", None, e)),
        }
    }
    out
}

/// Why an arch has no checked interpreter.
#[derive(Debug, Clone)]
enum Miss {
    /// No source has it, under `all`: a skip rather than a failure.
    Skip,
    Failed(String),
}

fn skip_or(e: InterpError, all: bool) -> Miss {
    match e {
        InterpError::NotFound { .. } if all => Miss::Skip,
        e => Miss::Failed(e.to_string()),
    }
}

fn supply_skip_or(e: SupplyError, all: bool) -> Miss {
    match e {
        SupplyError::NoSource { .. } if all => Miss::Skip,
        e => Miss::Failed(e.to_string()),
    }
}
