//! The effectful edge of `explain`: reading files (bounded reads through
//! `object::ReadCache`), resolving paths inside a root the way a chroot would, finding the
//! root's libc.so.6, reading binfmt_misc, asking an emulator its version, walking trees.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use object::{ReadCache, ReadRef};

use super::resolve::{Loaded, Resolution, Resolver};
use super::verdict::{Binfmt, Facts, Libc, Node, NodeEntry, ScriptTarget};
use super::{inspect, verdict, FileInfo, GlibcVersion, Problem, Verdict, HEAD_LEN};
use crate::arch::Arch;
use crate::kernel::{BinfmtFs, BinfmtMisc};
use crate::prover::Prover;

/// The kernel follows at most this many symlinks in one lookup (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
/// The kernel allows this many nested interpreters (#! of #! ...).
const MAX_SCRIPT_DEPTH: usize = 4;
/// What `env` searches when PATH is the usual default.
const DEFAULT_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A directory tree files are judged against: `/`, or a container rootfs.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolve `path` as a process chrooted into the root would: absolute symlinks restart
    /// at the root, `..` never leaves it. The host path of the final file, or None when
    /// the path does not exist there.
    pub fn resolve(&self, path: &Path) -> Option<PathBuf> {
        let mut todo: VecDeque<OsString> = components(path);
        let mut cur = PathBuf::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let host = self.dir.join(&next);
            if !fs::symlink_metadata(&host).ok()?.file_type().is_symlink() {
                cur = next;
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            for t in components(&target).into_iter().rev() {
                todo.push_front(t);
            }
        }
        Some(self.dir.join(cur))
    }

    /// Every libc.so.6 in the usual library directories (and one level below them, the
    /// multiarch directories), with the highest GLIBC_x.y each defines.
    pub fn libcs(&self) -> Vec<Libc> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for base in [
            "lib",
            "lib64",
            "lib32",
            "libx32",
            "usr/lib",
            "usr/lib64",
            "usr/lib32",
        ] {
            let Some(dir) = self.resolve(Path::new(base)) else {
                continue;
            };
            let subdirs = fs::read_dir(&dir).into_iter().flatten().flatten();
            let candidates = std::iter::once(PathBuf::from(base))
                .chain(subdirs.map(|d| Path::new(base).join(d.file_name())));
            for rel in candidates {
                let inside = Path::new("/").join(rel).join("libc.so.6");
                let Some(host) = self.resolve(&inside) else {
                    continue;
                };
                if seen.contains(&host) {
                    continue;
                }
                seen.push(host.clone());
                // Old glibc ships libc.so.6 as a link to libc-2.xx.so: the name is a fallback.
                let link =
                    fs::read_link(self.dir.join(inside.strip_prefix("/").unwrap_or(&inside)));
                let named = link.ok().and_then(|l| version_from_name(&l));
                if let Some(libc) = read_libc(&host, &inside, named) {
                    out.push(libc);
                }
            }
        }
        out
    }

    /// Is `cmd` in one of the default PATH directories of the root?
    pub fn find_in_path(&self, cmd: &str) -> Option<PathBuf> {
        if cmd.contains('/') {
            return self.resolve(Path::new(cmd));
        }
        DEFAULT_PATH
            .iter()
            .find_map(|d| self.resolve(&Path::new(d).join(cmd)))
    }
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// `libc-2.31.so` -> 2.31.
fn version_from_name(link: &Path) -> Option<GlibcVersion> {
    let name = link.file_name()?.to_str()?;
    GlibcVersion::parse(name.strip_prefix("libc-")?.strip_suffix(".so")?)
}

fn read_libc(host: &Path, inside: &Path, named: Option<GlibcVersion>) -> Option<Libc> {
    let (info, _, _) = read_file(host).ok()?;
    let Ok(FileInfo::Elf(elf)) = info else {
        return None;
    };
    Some(Libc {
        path: inside.display().to_string(),
        machine: elf.machine,
        class: elf.class,
        endian: elf.endian,
        version: elf.glibc_defined.or(named)?,
    })
}

type Inspected = (Result<FileInfo, super::ExplainError>, Vec<u8>, bool);

/// Open and inspect one file: its info, its first bytes, and whether an x bit is set.
pub fn read_file(path: &Path) -> io::Result<Inspected> {
    let file = File::open(path)?;
    let executable = file.metadata()?.permissions().mode() & 0o111 != 0;
    let cache = ReadCache::new(file);
    let info = inspect(&cache);
    let len = (&cache).len().unwrap_or(0);
    let head = (&cache)
        .read_bytes_at(0, len.min(HEAD_LEN as u64))
        .unwrap_or_default()
        .to_vec();
    Ok((info, head, executable))
}

/// Read this node's binfmt_misc instance. Unavailable is a state to report, not an error.
pub fn observe_node(binfmt_misc: &Path, root: &Root, native: Vec<&'static Arch>) -> Node {
    let binfmt = match BinfmtFs::open(binfmt_misc) {
        Err(e) => Binfmt::Unavailable {
            reason: e.to_string(),
        },
        Ok(fs) => match (fs.instance_enabled(), fs.entries()) {
            (Ok(false), _) => Binfmt::Disabled {
                path: binfmt_misc.to_path_buf(),
            },
            (Err(e), _) | (_, Err(e)) => Binfmt::Unavailable {
                reason: e.to_string(),
            },
            (Ok(true), Ok(entries)) => Binfmt::Entries {
                path: binfmt_misc.to_path_buf(),
                entries: entries
                    .into_iter()
                    .map(|entry| NodeEntry {
                        interpreter_in_root: root.resolve(&entry.interpreter).is_some(),
                        entry,
                    })
                    .collect(),
            },
        },
    };
    Node {
        native,
        binfmt,
        root: root.dir().to_path_buf(),
        libcs: root.libcs(),
    }
}

/// A file's info, its verdict, and the libraries it loads.
type Judged = (Result<FileInfo, Problem>, Verdict, Vec<Loaded>);

/// One explained file.
#[derive(Debug, Clone)]
pub struct Explained {
    pub path: PathBuf,
    /// The libraries the root's loader would map for it (dynamic ELF programs).
    pub libraries: Vec<Loaded>,
    pub info: Result<FileInfo, Problem>,
    pub verdict: Verdict,
}

/// Explains files against one node, caching what repeats (loader lookups, qemu versions).
/// The prover asks emulators their version (with a timeout).
pub struct Explainer<'p> {
    pub node: Node,
    root: Root,
    prover: &'p dyn Prover,
    resolver: Resolver,
    loaders: RefCell<HashMap<String, bool>>,
    versions: RefCell<HashMap<PathBuf, Option<String>>>,
}

impl<'p> Explainer<'p> {
    pub fn new(node: Node, root: Root, prover: &'p dyn Prover) -> Explainer<'p> {
        Explainer {
            node,
            resolver: Resolver::new(root.clone()),
            root,
            prover,
            loaders: RefCell::default(),
            versions: RefCell::default(),
        }
    }

    /// Explain the file at `path` (a host path, as given on the command line).
    pub fn explain(&self, path: &Path) -> Explained {
        let (info, mut verdict, libraries) = self.explain_at(path, 0);
        if let Some(e) = verdict.entry.as_mut() {
            e.qemu_version = self.qemu_version(&e.interpreter);
        }
        Explained {
            path: path.to_path_buf(),
            libraries,
            info,
            verdict,
        }
    }

    fn explain_at(&self, path: &Path, depth: usize) -> Judged {
        let (info, head, executable) = match read_file(path) {
            Ok(r) => r,
            Err(e) => {
                let p = Problem::Unreadable {
                    error: format!("{}: {e}", path.display()),
                };
                return (Err(p.clone()), Verdict::broken(p), vec![]);
            }
        };
        let info = match info {
            Ok(info) => info,
            // A broken file nobody marked executable is just not an executable.
            Err(e) if !executable => {
                let note = format!("{}; {e}", super::verdict::NO_EXEC_BIT);
                let p = Problem::BadFile {
                    error: e.to_string(),
                };
                return (Err(p), Verdict::not_executable(note), vec![]);
            }
            Err(e) => {
                let p = Problem::BadFile {
                    error: e.to_string(),
                };
                return (Err(p), Verdict::from_error(&e), vec![]);
            }
        };
        let resolution = match &info {
            FileInfo::Elf(elf) if elf.kind.is_program() => self.resolver.resolve(path, elf),
            _ => Resolution::default(),
        };
        let facts = Facts {
            libraries: resolution.problems,
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            header: head,
            executable,
            loader_present: match &info {
                FileInfo::Elf(elf) => elf.interpreter.as_deref().map(|l| self.loader(l)),
                _ => None,
            },
            script: match &info {
                FileInfo::Script(s) => Some(self.script_target(s, depth)),
                _ => None,
            },
        };
        let v = verdict(&info, &self.node, &facts);
        (Ok(info), v, resolution.loaded)
    }

    fn loader(&self, path: &str) -> bool {
        *self
            .loaders
            .borrow_mut()
            .entry(path.to_string())
            .or_insert_with(|| self.root.resolve(Path::new(path)).is_some())
    }

    fn script_target(&self, s: &super::Shebang, depth: usize) -> ScriptTarget {
        if depth >= MAX_SCRIPT_DEPTH {
            return ScriptTarget::Found(Box::new(Verdict::broken(Problem::BadFile {
                error: format!("more than {MAX_SCRIPT_DEPTH} levels of #! interpreters"),
            })));
        }
        // Only a regular file can be executed (and opening a fifo would block).
        let found = self.root.resolve(Path::new(&s.interpreter));
        let Some(host) = found.filter(|h| h.is_file()) else {
            return ScriptTarget::Missing;
        };
        let (_, v, _) = self.explain_at(&host, depth + 1);
        let Some(cmd) = s.env_command().filter(|_| v.runs()) else {
            return ScriptTarget::Found(Box::new(v));
        };
        match self.root.find_in_path(cmd) {
            None => ScriptTarget::EnvCommandMissing {
                command: cmd.to_string(),
            },
            Some(host) => ScriptTarget::Found(Box::new(self.explain_at(&host, depth + 1).1)),
        }
    }

    /// The emulator's version, asked of the file the entry names (binfmtd's own cache names
    /// interpreters by hash, so the name says nothing; a non-qemu interpreter prints no qemu
    /// banner and gives None). With F the kernel runs the file opened at registration, which
    /// may differ from the file there today.
    fn qemu_version(&self, interpreter: &Path) -> Option<String> {
        let mut cache = self.versions.borrow_mut();
        let v = cache
            .entry(interpreter.to_path_buf())
            .or_insert_with(|| self.prover.qemu_version(interpreter));
        v.clone()
    }
}

/// Every regular file under `dir`, depth first in name order, without following symlinks.
/// A directory that cannot be listed is passed to `on_file` as an error.
pub fn walk(dir: &Path, on_file: &mut dyn FnMut(Result<PathBuf, (PathBuf, io::Error)>)) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) => {
                on_file(Err((d, e)));
                continue;
            }
        };
        let mut list: Vec<(PathBuf, fs::FileType)> = entries
            .flatten()
            .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = vec![];
        for (path, ft) in list {
            if ft.is_dir() {
                subdirs.push(path);
            } else if ft.is_file() {
                on_file(Ok(path));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
