//! `binfmtd explain`: placeholder wiring; the explain issue fills this in.

use std::path::{Path, PathBuf};

use crate::exit::{Exit, Failure};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Files (or directories, with --recursive) to explain.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(_binfmt_misc: &Path, _args: ExplainArgs) -> anyhow::Result<Exit> {
    Err(Failure::new(Exit::Usage, "explain is not built yet").into())
}
