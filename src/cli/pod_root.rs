//! `--mount-namespace`: join another mount namespace, keeping a handle on the one binfmtd
//! started in. The agent's own inputs (the config file, kubeconfigs, the service-account
//! token and CA) are the pod's files and stay invisible in the host's namespace; they are
//! read through `/proc/self/fd/<N>` of the starting root, a magic link that resolves into
//! the old mount tree (relative symlinks such as a ConfigMap's `..data` work through it).
//! Everything else (binfmt_misc, the cache, interpreters, the status file) is the host's.

use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The mount namespace binfmtd started in, after it entered another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoot {
    /// `/proc/self/fd/<N>`: an O_PATH handle on the starting namespace's `/`.
    pub dir: PathBuf,
    /// The working directory at start, for relative paths on the command line.
    pub cwd: PathBuf,
    /// The service-account directory with its symlinks resolved at start: an absolute
    /// symlink (an image's /var/run -> /run) would resolve in the host's tree afterwards.
    pub service_account: PathBuf,
}

/// `path` with the symlinks in its directory resolved, in the current namespace (before
/// setns); the last component stays as named (a ConfigMap's `config.toml -> ..data/...` is
/// relative and is followed through the handle). Unchanged when the directory is missing.
pub fn real_dir(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_path_buf();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir)
        .map(|d| d.join(name))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Where to read `path` (as named on the command line) from: unchanged without a pod root,
/// else the same file in the starting namespace, through the handle.
pub fn own_path(path: &Path, root: Option<&PodRoot>) -> PathBuf {
    let Some(root) = root else {
        return path.to_path_buf();
    };
    let abs = root.cwd.join(path);
    root.dir.join(abs.strip_prefix("/").unwrap_or(&abs))
}

/// Enter the mount namespace at `path`, returning the handle on the one left behind. The
/// handles (its root, the namespace) stay open for the life of the process (close-on-exec: no probe inherits it).
/// Call before any thread starts: setns into a mount namespace fails in a threaded process.
pub fn enter(path: &Path) -> anyhow::Result<PodRoot> {
    let ns = std::fs::File::open(path).map_err(|e| {
        anyhow::anyhow!(
            "--mount-namespace {}: cannot open: {e}. Hint: with hostPID, /proc/1/ns/mnt is the host's",
            path.display()
        )
    })?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let sa = Path::new(crate::kube::config::SERVICE_ACCOUNT_DIR);
    let service_account = std::fs::canonicalize(sa).unwrap_or_else(|_| sa.to_path_buf());
    // std opens with O_CLOEXEC; O_PATH: a handle on the tree, no read access needed.
    let old_root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open("/")
        .map_err(|e| anyhow::anyhow!("--mount-namespace: cannot open this namespace's /: {e}"))?;
    // Once binfmtd, often its only process, has left it, the namespace would be torn down
    // and every mount in it (the ConfigMap, the token) detached from that root: a handle
    // on the namespace itself keeps it whole.
    let old_ns = std::fs::File::open("/proc/self/ns/mnt")
        .map_err(|e| anyhow::anyhow!("--mount-namespace: cannot open /proc/self/ns/mnt: {e}"))?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        anyhow::anyhow!(
            "--mount-namespace {}: setns failed: {e}. Hint: it needs CAP_SYS_ADMIN and CAP_SYS_CHROOT (a privileged container)",
            path.display()
        )
    })?;
    // The working directory still points into the old namespace's tree.
    let _ = std::env::set_current_dir("/");
    // Downloads resolve names in the pod's namespace, with its resolv.conf.
    match old_ns.try_clone() {
        Ok(ns) => crate::fetch::resolve::resolve_in(ns.into()),
        Err(e) => tracing::warn!(error = %e, "cannot keep a handle for name resolution"),
    }
    let _ = old_ns.into_raw_fd();
    let fd = old_root.into_raw_fd();
    Ok(PodRoot {
        dir: PathBuf::from(format!("/proc/self/fd/{fd}")),
        cwd,
        service_account,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_resolve_through_the_handle() {
        let root = PodRoot {
            dir: PathBuf::from("/proc/self/fd/3"),
            cwd: PathBuf::from("/srv/pod"),
            service_account: PathBuf::from("/run/secrets/kubernetes.io/serviceaccount"),
        };
        let table: &[(&str, Option<&PodRoot>, &str)] = &[
            ("/etc/binfmtd/config.toml", None, "/etc/binfmtd/config.toml"),
            ("config.toml", None, "config.toml"),
            (
                "/etc/binfmtd/config.toml",
                Some(&root),
                "/proc/self/fd/3/etc/binfmtd/config.toml",
            ),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount",
                Some(&root),
                "/proc/self/fd/3/var/run/secrets/kubernetes.io/serviceaccount",
            ),
            (
                "kube/config",
                Some(&root),
                "/proc/self/fd/3/srv/pod/kube/config",
            ),
            ("/", Some(&root), "/proc/self/fd/3/"),
        ];
        for (path, root, want) in table {
            assert_eq!(own_path(Path::new(path), *root), Path::new(want), "{path}");
        }
    }
}
