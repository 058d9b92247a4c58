//! The binfmt_misc filesystem, behind a small trait.
//!
//! `BinfmtFs` is rooted at a path given by the caller (default
//! /proc/sys/fs/binfmt_misc), so tests point it at a private instance mounted inside a
//! user namespace. Since Linux 6.7 unmounting the last mount of an instance destroys
//! every entry in it, so nothing here ever unmounts.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::entry::{parse_entry, Entry, EntryError, Registration};

pub const DEFAULT_ROOT: &str = "/proc/sys/fs/binfmt_misc";
/// statfs f_type of binfmt_misc ("BINM").
const BINFMTFS_MAGIC: i64 = 0x4249_4e4d;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("binfmt_misc is not available at {path}: {reason}. Hint: load the module (`modprobe binfmt_misc`) and mount it in the host's mount namespace (`mount -t binfmt_misc binfmt_misc {path}`, or `systemctl start proc-sys-fs-binfmt_misc.mount`)")]
    Unavailable { path: PathBuf, reason: String },
    #[error("{op} {path}: {source}{}", hint(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Entry(#[from] EntryError),
}

impl KernelError {
    /// Permission problems are the operator's environment, not a per-arch failure.
    pub fn is_permission(&self) -> bool {
        matches!(self, KernelError::Io { source, .. } if matches!(source.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)))
    }

    /// EEXIST from `register`: an entry with that name appeared since we last looked.
    pub fn is_exists(&self) -> bool {
        matches!(self, KernelError::Io { source, .. } if source.raw_os_error() == Some(libc::EEXIST))
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            ". Hint: binfmtd needs root with CAP_SYS_ADMIN over this binfmt_misc instance"
        }
        Some(libc::EEXIST) => ". Hint: an entry with this name exists; it must be removed first",
        Some(libc::ENOENT) => {
            ". Hint: the interpreter must exist in the writer's mount namespace when F is set"
        }
        _ => "",
    }
}

/// What binfmtd needs from binfmt_misc. The real implementation is `BinfmtFs`.
pub trait BinfmtMisc {
    fn root(&self) -> &Path;
    /// Every entry, in directory order. An entry that vanishes while we read is skipped.
    fn entries(&self) -> Result<Vec<Entry>, KernelError>;
    fn register(&self, r: &Registration) -> Result<(), KernelError>;
    fn remove(&self, name: &str) -> Result<(), KernelError>;
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), KernelError>;
    /// The instance-wide switch (`status`): when off, no entry is consulted.
    fn instance_enabled(&self) -> Result<bool, KernelError>;
}

/// Whether binfmtd found binfmt_misc mounted or mounted it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountOutcome {
    AlreadyMounted,
    MountedNow,
}

/// The real binfmt_misc instance mounted at `root`.
#[derive(Debug, Clone)]
pub struct BinfmtFs {
    root: PathBuf,
}

impl BinfmtFs {
    /// Use the instance at `root`, which must already be binfmt_misc.
    pub fn open(root: &Path) -> Result<BinfmtFs, KernelError> {
        // Touching a file inside first triggers a systemd automount (Amazon Linux 2023 style).
        let _ = fs::metadata(root.join("status"));
        if is_binfmt_misc(root)? {
            Ok(BinfmtFs {
                root: root.to_path_buf(),
            })
        } else {
            Err(KernelError::Unavailable {
                path: root.to_path_buf(),
                reason: "it is not mounted there".into(),
            })
        }
    }

    /// `root` taken as binfmt_misc without checking; for a poller that reads entries
    /// (which only binfmt_misc yields) and calls `open` when the listing is empty.
    pub fn unchecked(root: &Path) -> BinfmtFs {
        BinfmtFs {
            root: root.to_path_buf(),
        }
    }

    /// Use the instance at `root`, mounting binfmt_misc there first if needed. The mount
    /// is left in place for good: unmounting would destroy every registration.
    pub fn open_or_mount(root: &Path) -> Result<(BinfmtFs, MountOutcome), KernelError> {
        if let Ok(fs) = BinfmtFs::open(root) {
            return Ok((fs, MountOutcome::AlreadyMounted));
        }
        use nix::mount::{mount, MsFlags};
        mount(
            Some("binfmt_misc"),
            root,
            Some("binfmt_misc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| KernelError::Unavailable {
            path: root.to_path_buf(),
            reason: format!("it is not mounted there and mounting it failed ({e})"),
        })?;
        Ok((BinfmtFs::open(root)?, MountOutcome::MountedNow))
    }

    fn write(&self, name: &str, data: &[u8], op: &'static str) -> Result<(), KernelError> {
        let path = self.root.join(name);
        let io = |source| KernelError::Io {
            op,
            path: path.clone(),
            source,
        };
        // One write(2): the kernel parses each write on its own.
        let mut f = fs::OpenOptions::new().write(true).open(&path).map_err(io)?;
        let n = f.write(data).map_err(io)?;
        if n != data.len() {
            return Err(io(io::Error::other(format!(
                "short write: {n} of {} bytes",
                data.len()
            ))));
        }
        Ok(())
    }
}

// f_type's integer type differs between libcs (i64 on glibc, c_ulong on musl): keep the cast.
#[allow(clippy::unnecessary_cast)]
fn is_binfmt_misc(root: &Path) -> Result<bool, KernelError> {
    match nix::sys::statfs::statfs(root) {
        Ok(s) => Ok(s.filesystem_type().0 as i64 == BINFMTFS_MAGIC),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(KernelError::Unavailable {
            path: root.to_path_buf(),
            reason: format!("statfs failed ({e})"),
        }),
    }
}

impl BinfmtMisc for BinfmtFs {
    fn root(&self) -> &Path {
        &self.root
    }

    fn entries(&self) -> Result<Vec<Entry>, KernelError> {
        let io = |source| KernelError::Io {
            op: "list",
            path: self.root.clone(),
            source,
        };
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .map_err(io)?
            .filter_map(|d| d.ok()?.file_name().into_string().ok())
            .filter(|n| n != "register" && n != "status")
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let path = self.root.join(&name);
            match fs::read_to_string(&path) {
                Ok(text) => out.push(parse_entry(&name, &text)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(KernelError::Io {
                        op: "read",
                        path,
                        source,
                    })
                }
            }
        }
        Ok(out)
    }

    fn register(&self, r: &Registration) -> Result<(), KernelError> {
        self.write("register", &r.encode()?, "register")
    }

    fn remove(&self, name: &str) -> Result<(), KernelError> {
        self.write(name, b"-1", "remove")
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), KernelError> {
        self.write(name, if enabled { b"1" } else { b"0" }, "enable/disable")
    }

    fn instance_enabled(&self) -> Result<bool, KernelError> {
        let path = self.root.join("status");
        let text = fs::read_to_string(&path).map_err(|source| KernelError::Io {
            op: "read",
            path,
            source,
        })?;
        Ok(text.trim() == "enabled")
    }
}
