//! `binfmtd fetch`: provision interpreters into the cache without registering anything
//! (pre-seeding a node image, checking a config, and the supply chain's crash tests).
//! `binfmtd gc`: drop cached interpreters and archives nothing references.

use std::path::{Path, PathBuf};

use super::common::CacheArgs;
use crate::arch;
use crate::exit::{Exit, Failure};
use crate::supply;

#[derive(Debug, clap::Args)]
pub struct SupplyArgs {
    /// Config file listing interpreter sources (a missing default file means: the embedded
    /// Debian trixie qemu-user source).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Guest arches to provision (comma-separated, any naming: riscv64, linux/arm64, armhf).
    #[arg(long, required = true, value_name = "ARCHES")]
    pub arch: String,

    #[command(flatten)]
    pub supply: SupplyArgs,
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub supply: SupplyArgs,
}

/// Load the config named by `--config`, or the default path (absent there = defaults).
pub fn load_config(args: &SupplyArgs) -> anyhow::Result<crate::config::Config> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(crate::config::DEFAULT_PATH), false),
    };
    crate::config::load(&path, explicit)
        .map_err(|e| Failure::new(Exit::Usage, e.to_string()).into())
}

pub fn run_fetch(args: FetchArgs) -> anyhow::Result<Exit> {
    let arches =
        arch::lookup_list(&args.arch).map_err(|e| Failure::new(Exit::Usage, e.to_string()))?;
    let config = load_config(&args.supply)?;
    let host = arch::host();
    let results = supply::provision(
        &config,
        &arches,
        &args.supply.cache.cache_dir,
        host,
        &supply::core_check,
    );
    let mut code = Exit::Ok;
    for (arch, result) in results {
        match result {
            Ok(p) => println!(
                "{}\tok\t{}\t{}\tqemu {}\t{}",
                arch.qemu,
                p.path.display(),
                p.sha256,
                p.version.as_deref().unwrap_or("unknown"),
                p.source
            ),
            Err(e) => {
                println!("{}\tfailed\t{e}", arch.qemu);
                code = Exit::NotWorking;
            }
        }
    }
    Ok(code)
}

pub fn run_gc(binfmt_misc: &Path, args: GcArgs) -> anyhow::Result<Exit> {
    let report = crate::converge::collect_garbage(binfmt_misc, &args.supply.cache.cache_dir)
        .map_err(|e| Failure::new(Exit::Environment, e.to_string()))?;
    for path in &report.removed {
        println!("removed\t{}", path.display());
    }
    println!("freed\t{} bytes", report.freed_bytes);
    Ok(Exit::Ok)
}
