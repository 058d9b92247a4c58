//! `binfmtd uninstall`: remove binfmtd's own entries, never another tool's.

use std::path::Path;

use crate::exit::Exit;

use super::common;

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct UninstallArgs {
    /// Remove binfmtd's entries for these arches (any name; comma-separated).
    #[arg(long, value_name = "LIST")]
    pub arch: Option<String>,

    /// Remove every entry binfmtd owns (names starting with "binfmtd-").
    #[arg(long)]
    pub all: bool,
}

pub fn run(root: &Path, args: UninstallArgs) -> anyhow::Result<Exit> {
    let arches = match &args.arch {
        Some(list) => Some(common::arches(list)?),
        None => None,
    };
    common::require_admin("uninstall")?;
    let fs = common::open_kernel(root, false)?;
    let removed =
        crate::install::uninstall(&fs, arches.as_deref()).map_err(common::kernel_failure)?;
    if removed.is_empty() {
        println!("no binfmtd entries to remove");
    }
    for name in removed {
        println!("removed {name}");
    }
    Ok(Exit::Ok)
}
