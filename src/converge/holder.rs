//! Who holds an flock. flock records no owner, but /proc/locks lists the holder's pid by
//! inode, and /proc/PID/exe says which program it runs: a message may call the holder
//! "another binfmtd" only when it is one (its name alone, /proc/PID/comm, anyone can choose).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The holder of a lock, as far as this pid namespace can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A process running binfmtd.
    Binfmtd(u32),
    /// Any other process; `comm` is its name from /proc/PID/comm.
    Other { pid: u32, comm: String },
    /// Not visible here (/proc/locks says pid 0: another pid namespace); `recorded` is the
    /// pid the lock file names, in the holder's own namespace.
    Unseen { recorded: Option<u32> },
}

impl Holder {
    /// The holder in a sentence: "another binfmtd run (pid 12)" for binfmtd (`what` names
    /// its role), "process 12 (flock)" for anything else.
    pub fn who(&self, what: &str) -> String {
        match self {
            Holder::Binfmtd(pid) => format!("another {what} (pid {pid})"),
            Holder::Other { pid, comm } => format!("process {pid} ({comm})"),
            Holder::Unseen { recorded: Some(p) } => {
                format!("a process in another pid namespace (the lock file names pid {p} there)")
            }
            Holder::Unseen { recorded: None } => "a process in another pid namespace".into(),
        }
    }

    /// What to do about it.
    pub fn hint(&self, for_binfmtd: &str) -> String {
        match self {
            Holder::Other { pid, .. } => format!(
                "process {pid} is not binfmtd; find out why it holds the lock (ls -l /proc/{pid}/exe) and stop it"
            ),
            _ => for_binfmtd.to_string(),
        }
    }
}

/// What /proc says about a pid (gathered by `identify`, judged by `classify`).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The target of /proc/PID/exe, when readable.
    pub exe: Option<std::path::PathBuf>,
    /// /proc/PID/exe is the very file this process runs (same device and inode).
    pub same_exe: bool,
    pub comm: String,
}

/// Pure: binfmtd is a process whose executable is ours, or a file named `binfmtd` (an
/// upgrade replaced ours: " (deleted)" marks the old one). The name in comm is not enough.
pub fn classify(pid: u32, facts: &Facts) -> Holder {
    let named_binfmtd = facts.exe.as_deref().is_some_and(|exe| {
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        name.strip_suffix(" (deleted)").unwrap_or(&name) == "binfmtd"
    });
    if facts.same_exe || named_binfmtd {
        Holder::Binfmtd(pid)
    } else {
        let comm = if facts.comm.is_empty() {
            "gone".to_string()
        } else {
            facts.comm.clone()
        };
        Holder::Other { pid, comm }
    }
}

/// The holder of the flock on `file` (None when nobody holds it any more).
pub fn identify(file: &File, recorded: Option<u32>) -> Holder {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let pid = file
        .metadata()
        .ok()
        .and_then(|m| holder_in(&locks, m.dev(), m.ino()));
    let Some(pid) = pid else {
        return Holder::Unseen { recorded };
    };
    let proc = Path::new("/proc").join(pid.to_string());
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let theirs = id(&proc.join("exe"));
    let facts = Facts {
        exe: std::fs::read_link(proc.join("exe")).ok(),
        same_exe: theirs.is_some() && theirs == id(Path::new("/proc/self/exe")),
        comm: std::fs::read_to_string(proc.join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default(),
    };
    classify(pid, &facts)
}

/// Pure: the pid of the FLOCK line for (dev, inode) in /proc/locks text (0 there means:
/// not in our pid namespace, so None).
pub fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 12246 00:15:17890 0 EOF"; "->" marks a waiter.
        if f.len() < 6 || f[1] != "FLOCK" || f.contains(&"->") || f[5] != want {
            return None;
        }
        f[4].parse().ok().filter(|p| *p != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_flock_holder_by_inode() {
        let text = "1: POSIX  ADVISORY  WRITE 99 00:15:17890 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 12246 00:15:17890 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 777 00:15:17890 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 5 fd:01:17890 0 EOF\n";
        let dev = libc::makedev(0, 0x15);
        assert_eq!(holder_in(text, dev, 17890), Some(12246));
        assert_eq!(holder_in(text, libc::makedev(0xfd, 1), 17890), Some(5));
        assert_eq!(holder_in(text, dev, 1), None);
        assert_eq!(
            holder_in("1: FLOCK ADVISORY WRITE 0 00:15:17890 0 EOF", dev, 17890),
            None
        );
    }

    fn facts(exe: Option<&str>, same_exe: bool, comm: &str) -> Facts {
        Facts {
            exe: exe.map(Into::into),
            same_exe,
            comm: comm.into(),
        }
    }

    #[test]
    fn only_a_binfmtd_executable_is_called_binfmtd() {
        let bin = Holder::Binfmtd(7);
        assert_eq!(
            classify(7, &facts(Some("/usr/bin/binfmtd"), false, "x")),
            bin
        );
        let upgraded = facts(Some("/usr/bin/binfmtd (deleted)"), false, "binfmtd");
        assert_eq!(classify(7, &upgraded), bin);
        assert_eq!(classify(7, &facts(Some("/opt/b"), true, "b")), bin);
        // A process that only calls itself binfmtd (prctl, or a script named so) is not one.
        let other = |comm: &str| Holder::Other {
            pid: 7,
            comm: comm.into(),
        };
        let named = facts(Some("/usr/bin/flock"), false, "binfmtd");
        assert_eq!(classify(7, &named), other("binfmtd"));
        assert_eq!(
            classify(7, &facts(None, false, "binfmtd")),
            other("binfmtd")
        );
        assert_eq!(classify(7, &facts(None, false, "")), other("gone"));
    }

    #[test]
    fn messages_name_the_holder_as_what_it_is() {
        assert_eq!(
            Holder::Binfmtd(7).who("binfmtd run"),
            "another binfmtd run (pid 7)"
        );
        let flock = Holder::Other {
            pid: 9,
            comm: "flock".into(),
        };
        assert_eq!(flock.who("binfmtd run"), "process 9 (flock)");
        assert!(flock.hint("stop it").contains("process 9 is not binfmtd"));
        assert_eq!(Holder::Binfmtd(7).hint("stop it"), "stop it");
        let unseen = Holder::Unseen { recorded: Some(3) };
        assert!(unseen.who("binfmtd").contains("names pid 3"));
    }
}
