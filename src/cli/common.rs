//! Pieces the subcommands share: privilege check, arch lists, the kernel and the prover.

use std::path::{Path, PathBuf};

use crate::arch::{self, Arch};
use crate::exit::{Exit, Failure};
use crate::kernel::{BinfmtFs, KernelError, MountOutcome};
use crate::prover::Prover;

/// Where binfmtd keeps its state (recorded interpreter sums, probe scratch space).
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// binfmtd's state directory: interpreter cache, recorded sums, probe scratch space.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CACHE_DIR, global = true)]
    pub cache_dir: PathBuf,
}

pub const DEFAULT_CACHE_DIR: &str = "/var/lib/binfmtd";

impl CacheArgs {
    /// Recorded interpreter sums (empty, and never saved, when the directory is unusable).
    pub fn sums(&self) -> crate::interp::Sums {
        crate::converge::sums(&self.cache_dir)
    }
}

/// Options that say where probes run.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Directory in which probe programs are written and executed (a private, removed
    /// subdirectory per probe). Must allow exec. Default: <cache-dir>/probe when writable,
    /// else the system temporary directory.
    #[arg(long, value_name = "DIR", global = true)]
    pub probe_dir: Option<PathBuf>,

    /// How long one probe may run before it is killed and counted as failed (1 or more).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub probe_timeout: u64,
}

/// Registering needs CAP_SYS_ADMIN over the binfmt_misc instance; say so before touching it.
pub fn require_admin(action: &str) -> Result<(), Failure> {
    let has = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false);
    if has {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Environment,
        format!("{action} needs CAP_SYS_ADMIN (run as root, or give the unit/pod CAP_SYS_ADMIN); nothing was changed"),
    ))
}

pub fn kernel_failure(e: KernelError) -> anyhow::Error {
    let exit = match &e {
        KernelError::Unavailable { .. } => Exit::Environment,
        e if e.is_permission() => Exit::Environment,
        _ => Exit::Internal,
    };
    Failure::new(exit, e.to_string()).into()
}

/// Open binfmt_misc, mounting it when asked to (install does; status never does).
pub fn open_kernel(root: &Path, mount: bool) -> anyhow::Result<BinfmtFs> {
    if !mount {
        return BinfmtFs::open(root).map_err(kernel_failure);
    }
    let (fs, how) = BinfmtFs::open_or_mount(root).map_err(kernel_failure)?;
    if how == MountOutcome::MountedNow {
        tracing::warn!(path = %root.display(), "mounted binfmt_misc; it stays mounted (unmounting would drop every entry)");
        if private_mount_namespace() {
            eprintln!(
                "binfmtd: warning: binfmt_misc was mounted at {} inside a mount namespace other than the host's (PID 1's). \
                 Since Linux 6.7 its entries vanish when the last mount goes away. Hint: mount binfmt_misc on the host \
                 (systemctl start proc-sys-fs-binfmt_misc.mount) or run binfmtd in the host mount namespace (nsenter -t 1 -m)",
                root.display()
            );
        }
    }
    Ok(fs)
}

/// Parse `--arch` lists into rows, mapping an unknown name to a usage error.
pub fn arches(list: &str) -> anyhow::Result<Vec<&'static Arch>> {
    let out = arch::lookup_list(list).map_err(|e| Failure::new(Exit::Usage, e.to_string()))?;
    if out.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            "--arch is empty; name arches like arm64,riscv64 or use all",
        )
        .into());
    }
    Ok(out)
}

/// The prover that executes real probe programs.
pub fn prover(args: &ProbeArgs, cache: &CacheArgs) -> Box<dyn Prover> {
    let dir = args
        .probe_dir
        .clone()
        .unwrap_or_else(|| default_probe_dir(&cache.cache_dir));
    crate::prover::exec_prover(dir, std::time::Duration::from_secs(args.probe_timeout))
}

fn default_probe_dir(cache_dir: &Path) -> PathBuf {
    let state = cache_dir.join("probe");
    // Created with an explicit mode and checked by the trust rule (the runner checks again).
    if crate::trust::ensure_dir(&state, 0o755).is_ok()
        && nix::unistd::access(&state, nix::unistd::AccessFlags::W_OK).is_ok()
    {
        state
    } else {
        std::env::temp_dir()
    }
}

/// Are we in a mount namespace other than PID 1's? (A DaemonSet without hostPID, or a
/// systemd unit with PrivateMounts=, would be.)
fn private_mount_namespace() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(a), Ok(b)) => a != b,
        _ => false,
    }
}
