//! `binfmtd explain PATH...`: will these files run on this node, and if not, why and what
//! fixes it. Exit 0 when every file can run, 1 when any cannot (or a path named directly
//! is not an executable), 2 for bad input.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::common::{self, CacheArgs, ProbeArgs};
use crate::arch;
use crate::exit::{Exit, Failure};
use crate::explain::container::{explain_image, ImageQuery};
use crate::explain::fs::{observe_node, walk, Explainer, Root};
use crate::explain::report::Reporter;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Files (or directories, with --recursive) to explain.
    #[arg(required_unless_present = "image", conflicts_with = "image")]
    pub paths: Vec<PathBuf>,

    /// Explain a container image instead: an OCI image layout directory or a `docker save`
    /// / `podman save` tar. Says for each platform whether this node runs it natively,
    /// emulated (through which entry) or not at all, and judges the entrypoint of the
    /// platform this node would pull inside the image's own filesystem.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["root", "recursive"])]
    pub image: Option<PathBuf>,

    /// With --image: judge the entrypoint of this platform (`linux/arm64`) instead of the
    /// one this node would pull.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", requires = "image")]
    pub platform: Option<String>,

    /// Explain every regular file under directories given (symlinks are not followed).
    #[arg(short, long)]
    pub recursive: bool,

    /// Judge files against this root (a container rootfs): its dynamic loaders, its
    /// libraries as its loader finds them (RPATH/RUNPATH, /etc/ld.so.cache, default
    /// directories) and their symbol versions, its glibc, its script interpreters.
    /// Default: this machine's /.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print one JSON document (schema in the README, "explain --json").
    #[arg(long)]
    pub json: bool,

    /// Arches this CPU executes without emulation, comma-separated. Default: the host arch
    /// plus the compat arches a native probe proves (i386 on x86_64, arm on some arm64).
    #[arg(long, value_name = "ARCHES")]
    pub native: Option<String>,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,
}

pub fn run(binfmt_misc: &Path, args: ExplainArgs) -> anyhow::Result<Exit> {
    check_paths(&args)?;
    let host = arch::host();
    let prover = common::prover(&args.probe, &args.cache);
    let native = match &args.native {
        Some(list) => arch::lookup_list(list)
            .map_err(|e| Failure::new(Exit::Usage, format!("--native: {e}")))?,
        None => crate::prover::native_arches(prover.as_ref()),
    };
    if let Some(image) = &args.image {
        return run_image(
            binfmt_misc,
            image,
            &args,
            native,
            prover.as_ref(),
            host.qemu,
        );
    }
    let root = Root::new(args.root.clone().unwrap_or_else(|| PathBuf::from("/")));
    let node = observe_node(binfmt_misc, &root, native);
    let explainer = Explainer::new(node, root, prover.as_ref());
    let stdout = io::stdout().lock();
    let mut report = Reporter::new(
        io::BufWriter::new(stdout),
        args.json,
        host.qemu,
        &explainer.node,
    )?;
    for path in &args.paths {
        if path.is_dir() {
            let mut result = Ok(());
            walk(path, &mut |found| {
                if result.is_err() {
                    return;
                }
                result = match found {
                    Ok(p) => report.file(&explainer.explain(&p), false),
                    Err((dir, e)) => report.file(&unlistable(dir, e), false),
                };
            });
            result.map_err(write_error)?;
        } else {
            report
                .file(&explainer.explain(path), true)
                .map_err(write_error)?;
        }
    }
    let all_run = report.finish().map_err(write_error)?;
    Ok(if all_run { Exit::Ok } else { Exit::NotWorking })
}

fn run_image(
    binfmt_misc: &Path,
    image: &Path,
    args: &ExplainArgs,
    native: Vec<&'static arch::Arch>,
    prover: &dyn crate::prover::Prover,
    host: &str,
) -> anyhow::Result<Exit> {
    let query = ImageQuery {
        path: image,
        binfmt_misc,
        native: native.clone(),
        platform: args.platform.as_deref(),
        prover,
    };
    let report = explain_image(&query)
        .map_err(|e| Failure::new(Exit::Usage, format!("--image {}: {e}", image.display())))?;
    let node = observe_node(binfmt_misc, &Root::new("/"), native);
    let stdout = io::stdout().lock();
    let mut out = Reporter::new(io::BufWriter::new(stdout), args.json, host, &node)?;
    out.image(&report).map_err(write_error)?;
    if let Some(x) = &report.entrypoint {
        out.file(x, true).map_err(write_error)?;
    }
    let all_run = out.finish().map_err(write_error)?;
    Ok(if all_run { Exit::Ok } else { Exit::NotWorking })
}

/// Every path must exist; directories need --recursive; only regular files are opened
/// (a fifo would block the read); --root must be a directory.
fn check_paths(args: &ExplainArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::new(Exit::Usage, m);
    if let Some(root) = &args.root {
        if !root.is_dir() {
            return Err(usage(format!(
                "--root {}: not a directory; give the rootfs directory of the container",
                root.display()
            )));
        }
    }
    for p in &args.paths {
        let md = std::fs::metadata(p)
            .map_err(|e| usage(format!("{}: {e}; check the path", p.display())))?;
        if md.is_dir() && !args.recursive {
            return Err(usage(format!(
                "{} is a directory: pass --recursive to explain every file under it",
                p.display()
            )));
        }
        if !md.is_dir() && !md.is_file() {
            return Err(usage(format!(
                "{}: not a regular file or directory; only files can be executed",
                p.display()
            )));
        }
    }
    Ok(())
}

fn unlistable(dir: PathBuf, e: io::Error) -> crate::explain::fs::Explained {
    let p = crate::explain::Problem::Unreadable {
        error: format!("cannot list directory {}: {e}", dir.display()),
    };
    crate::explain::fs::Explained {
        path: dir,
        libraries: vec![],
        info: Err(p.clone()),
        verdict: crate::explain::Verdict::broken(p),
    }
}

/// A closed stdout (`| head`) ends the run quietly with the internal-error code.
fn write_error(e: io::Error) -> anyhow::Error {
    let _ = io::stderr().flush();
    anyhow::Error::new(e).context("writing the report to stdout")
}
