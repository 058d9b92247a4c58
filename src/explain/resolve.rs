//! DT_NEEDED resolution inside a root, the way that root's dynamic loader would do it.
//!
//! glibc (dl-load.c): for each needed name, in breadth-first order over the tree, reuse an
//! already loaded object of that name or SONAME; else DT_RPATH of the requesting object and
//! of each object that loaded it up to the program (only while the requester has no
//! DT_RUNPATH; an object's RPATH counts only if it has no RUNPATH itself), then the
//! requester's own DT_RUNPATH (never inherited), then /etc/ld.so.cache, then the default
//! directories (multiarch, lib64, /lib, /usr/lib) unless DF_1_NODEFLIB. musl: the RPATH or
//! RUNPATH of the requester and its loaders, then /etc/ld-musl-ARCH.path (default
//! /lib:/usr/local/lib:/usr/lib); libc/libpthread/libm/... are the loader itself.
//! A file of another CPU, class or byte order is skipped and the search goes on.
//! Parsed libraries and the root's cache and conf are kept for the whole run.

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::dynamic::Dynamic;
use super::fs::{read_file, Root};
use super::ldcache::parse_cache;
use super::ldconf::conf_dirs;
use super::ldpaths::{default_dirs, expand, flavor, musl_builtin, Flavor, MUSL_DEFAULT_PATH};
use super::versions::{self, Object};
use super::{ElfInfo, FileInfo, Problem};
use crate::arch::{ElfClass, Endian};

/// Stop following a dependency tree this large (a loop of symlinked names cannot grow it,
/// names are matched first; this bounds a hostile tree).
const MAX_OBJECTS: usize = 1024;
const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// The loader-relevant facts of one library file.
#[derive(Debug)]
pub struct LibFile {
    machine: u16,
    class: ElfClass,
    endian: Endian,
    dynamic: Dynamic,
}

impl LibFile {
    fn of(e: &ElfInfo) -> LibFile {
        LibFile {
            machine: e.machine,
            class: e.class,
            endian: e.endian,
            dynamic: e.dynamic.clone(),
        }
    }

    fn fits(&self, e: &ElfInfo) -> bool {
        (self.machine, self.class, self.endian) == (e.machine, e.class, e.endian)
    }
}

/// One library the loader would map.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Loaded {
    /// The DT_NEEDED name.
    pub name: String,
    /// The file it resolves to, inside the root.
    pub path: String,
    /// Who needs it (path inside the root).
    pub needed_by: String,
}

/// Every library of one program, and what is missing or mismatched.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub loaded: Vec<Loaded>,
    pub problems: Vec<Problem>,
}

struct Obj {
    names: Vec<String>,
    path: String,
    file: Rc<LibFile>,
    parent: Option<usize>,
}

/// Where one name was looked for.
#[derive(Default)]
struct Search {
    searched: Vec<String>,
    skipped: Vec<String>,
}

/// glibc's match of a DT_NEEDED name against the loaded objects: a name one was loaded
/// by, or its SONAME, which is then remembered as a name of it (the symbol-version check
/// looks objects up by these names only).
fn already_loaded(objs: &mut [Obj], name: &str) -> bool {
    for o in objs.iter_mut() {
        if o.names.iter().any(|n| n == name) {
            return true;
        }
        if o.file.dynamic.soname.as_deref() == Some(name) {
            o.names.push(name.to_string());
            return true;
        }
    }
    false
}

fn missing_name(p: &Problem) -> Option<&str> {
    match p {
        Problem::LibraryMissing { library, .. } => Some(library),
        _ => None,
    }
}

/// Resolves programs' libraries inside one root, caching what repeats.
pub struct Resolver {
    root: Root,
    files: RefCell<HashMap<PathBuf, Option<Rc<LibFile>>>>,
    /// The root's ld.so.cache by library name (paths in cache order); None when absent.
    cache: OnceCell<Option<HashMap<String, Vec<String>>>>,
    conf: OnceCell<Vec<String>>,
    musl: RefCell<HashMap<String, Vec<String>>>,
}

impl Resolver {
    pub fn new(root: Root) -> Resolver {
        Resolver {
            root,
            files: RefCell::default(),
            cache: OnceCell::new(),
            conf: OnceCell::new(),
            musl: RefCell::default(),
        }
    }

    /// Resolve every library `elf` (the program at host path `program`) needs, and check
    /// the symbol versions each needs. Nothing for a file without a dynamic loader.
    pub fn resolve(&self, program: &Path, elf: &ElfInfo) -> Resolution {
        let Some(interp) = &elf.interpreter else {
            return Resolution::default();
        };
        let flavor = flavor(interp, elf);
        let mut objs = self.start(program, interp, elf, &flavor);
        let mut out = Resolution::default();
        let mut queue = VecDeque::from([0]);
        while let Some(i) = queue.pop_front() {
            for needed in objs[i].file.dynamic.needed.clone() {
                // glibc expands $ORIGIN in a DT_NEEDED path before anything else: the
                // object is then known by the expanded name only.
                let name = match needed.contains('/') {
                    true => expand(std::slice::from_ref(&needed), &objs[i].path).remove(0),
                    false => needed.clone(),
                };
                if already_loaded(&mut objs, &name) || musl_builtin(&flavor, &name) {
                    continue;
                }
                if objs.len() >= MAX_OBJECTS {
                    break;
                }
                match self.search(&name, i, &objs, &flavor, elf) {
                    Ok((path, file)) => {
                        out.loaded.push(Loaded {
                            name: needed,
                            path: path.clone(),
                            needed_by: objs[i].path.clone(),
                        });
                        objs.push(Obj {
                            names: vec![name, path.clone()],
                            path,
                            file,
                            parent: Some(i),
                        });
                        queue.push_back(objs.len() - 1);
                    }
                    Err(s) => out
                        .problems
                        .push(self.missing(&needed, &objs[i], s, &flavor, elf)),
                }
            }
        }
        if let Flavor::Glibc { .. } = flavor {
            let problems = self.versions(&objs, &out.problems);
            out.problems.extend(problems);
        }
        out
    }

    /// The program, and for glibc its loader (mapped first; a DT_NEEDED of its SONAME is
    /// that object).
    fn start(&self, program: &Path, interp: &str, elf: &ElfInfo, flavor: &Flavor) -> Vec<Obj> {
        let mut objs = vec![Obj {
            names: vec![],
            path: self.inside(program),
            file: Rc::new(LibFile::of(elf)),
            parent: None,
        }];
        if let (Flavor::Glibc { .. }, Some(file)) = (flavor, self.open(interp)) {
            // glibc maps its own loader first; a DT_NEEDED of its SONAME is that object.
            let mut names = vec![interp.to_string()];
            names.extend(file.dynamic.soname.clone());
            objs.push(Obj {
                names,
                path: interp.to_string(),
                file,
                parent: None,
            });
        }
        objs
    }

    /// Symbol versions every loaded object needs, against the objects loaded (glibc only).
    fn versions(&self, objs: &[Obj], problems: &[Problem]) -> Vec<Problem> {
        let view: Vec<Object> = objs
            .iter()
            .map(|o| Object {
                names: &o.names,
                path: &o.path,
                dynamic: &o.file.dynamic,
            })
            .collect();
        let missing: Vec<&str> = problems.iter().filter_map(missing_name).collect();
        versions::check(&view, &missing, self.root.dir())
    }

    fn search(
        &self,
        name: &str,
        i: usize,
        objs: &[Obj],
        flavor: &Flavor,
        elf: &ElfInfo,
    ) -> Result<(String, Rc<LibFile>), Search> {
        let mut s = Search::default();
        if name.contains('/') {
            // A path (already $ORIGIN-expanded) is opened as is, relative to the working
            // directory, taken as / here.
            s.searched.push(name.to_string());
            return self.try_path(name, elf, &mut s).ok_or(s);
        }
        for dir in self.search_dirs(i, objs, flavor) {
            if dir == LD_SO_CACHE {
                s.searched.push(self.cache_label());
                let cache = self.cache();
                for path in cache.and_then(|c| c.get(name)).into_iter().flatten() {
                    if let Some(found) = self.try_path(path, elf, &mut s) {
                        return Ok(found);
                    }
                }
                continue;
            }
            s.searched.push(dir.clone());
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Some(found) = self.try_path(&path, elf, &mut s) {
                return Ok(found);
            }
        }
        Err(s)
    }

    /// The loader's search list for a name needed by object `i` (LD_SO_CACHE marks the cache).
    fn search_dirs(&self, i: usize, objs: &[Obj], flavor: &Flavor) -> Vec<String> {
        let req = &objs[i];
        let mut dirs = vec![];
        let chain = std::iter::successors(Some(i), |&k| objs[k].parent);
        match flavor {
            Flavor::Musl { path_file } => {
                for k in chain {
                    let d = &objs[k].file.dynamic;
                    let path = if d.runpath.is_empty() {
                        &d.rpath
                    } else {
                        &d.runpath
                    };
                    dirs.extend(expand(path, &objs[k].path));
                }
                dirs.extend(self.musl_path(path_file));
            }
            Flavor::Glibc { triplet } => {
                if req.file.dynamic.runpath.is_empty() {
                    for k in chain {
                        let d = &objs[k].file.dynamic;
                        if d.runpath.is_empty() {
                            dirs.extend(expand(&d.rpath, &objs[k].path));
                        }
                    }
                }
                dirs.extend(expand(&req.file.dynamic.runpath, &req.path));
                if !req.file.dynamic.nodeflib {
                    dirs.push(LD_SO_CACHE.to_string());
                    dirs.extend(default_dirs(*triplet, req.file.class));
                }
            }
        }
        dirs
    }

    /// Open `path` inside the root; a file that exists but is not a library for this
    /// program's CPU is recorded as skipped.
    fn try_path(&self, path: &str, elf: &ElfInfo, s: &mut Search) -> Option<(String, Rc<LibFile>)> {
        let host = self.root.resolve(Path::new(path))?;
        if !host.is_file() {
            return None;
        }
        match self.parsed(&host) {
            Some(f) if f.fits(elf) => Some((path.to_string(), f)),
            Some(f) => {
                let a = crate::arch::from_elf(f.machine, f.class, f.endian);
                let what = a.map_or_else(
                    || format!("ELF machine {}", f.machine),
                    |a| a.qemu.to_string(),
                );
                s.skipped.push(format!("{path} is for {what}"));
                None
            }
            None => {
                s.skipped.push(format!("{path} is not an ELF library"));
                None
            }
        }
    }

    fn open(&self, path: &str) -> Option<Rc<LibFile>> {
        let host = self.root.resolve(Path::new(path)).filter(|h| h.is_file())?;
        self.parsed(&host)
    }

    fn parsed(&self, host: &Path) -> Option<Rc<LibFile>> {
        if let Some(f) = self.files.borrow().get(host) {
            return f.clone();
        }
        let f = match read_file(host) {
            Ok((Ok(FileInfo::Elf(e)), _, _)) => Some(Rc::new(LibFile::of(&e))),
            _ => None,
        };
        self.files
            .borrow_mut()
            .insert(host.to_path_buf(), f.clone());
        f
    }

    fn missing(&self, name: &str, by: &Obj, s: Search, flavor: &Flavor, elf: &ElfInfo) -> Problem {
        let hint = match flavor {
            Flavor::Glibc { .. } => self.stale_cache_hint(name, elf),
            Flavor::Musl { .. } => None,
        };
        Problem::LibraryMissing {
            library: name.to_string(),
            needed_by: by.path.clone(),
            root: self.root.dir().to_path_buf(),
            searched: s.searched,
            skipped: s.skipped,
            hint,
        }
    }

    /// A library in a directory ld.so.conf lists, that the loader did not find: the cache
    /// is stale (or absent), and only `ldconfig` makes the loader see it.
    fn stale_cache_hint(&self, name: &str, elf: &ElfInfo) -> Option<String> {
        let conf = self
            .conf
            .get_or_init(|| conf_dirs(&self.root, Path::new("/etc/ld.so.conf"), 0));
        let dir = conf.iter().find(|d| {
            let path = format!("{d}/{name}");
            self.try_path(&path, elf, &mut Search::default()).is_some()
        })?;
        Some(format!(
            "it is in {dir}, which /etc/ld.so.conf lists, but the loader reads only {}, which lacks it: run `ldconfig -r {}`",
            self.cache_label(),
            self.root.dir().display()
        ))
    }

    fn cache(&self) -> Option<&HashMap<String, Vec<String>>> {
        self.cache
            .get_or_init(|| {
                let host = self.root.resolve(Path::new(LD_SO_CACHE))?;
                let parsed = parse_cache(&std::fs::read(host).ok()?).ok()?;
                let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
                for e in parsed.entries {
                    by_name.entry(e.name).or_default().push(e.path);
                }
                Some(by_name)
            })
            .as_ref()
    }

    fn cache_label(&self) -> String {
        match self.cache() {
            Some(_) => LD_SO_CACHE.to_string(),
            None => format!("{LD_SO_CACHE} (absent or unreadable)"),
        }
    }

    fn musl_path(&self, path_file: &str) -> Vec<String> {
        let mut cache = self.musl.borrow_mut();
        let dirs = cache.entry(path_file.to_string()).or_insert_with(|| {
            let text = match self.root.resolve(Path::new(path_file)) {
                Some(h) => std::fs::read_to_string(h).unwrap_or_default(),
                None => MUSL_DEFAULT_PATH.to_string(),
            };
            text.split([':', '\n'])
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect()
        });
        dirs.clone()
    }

    /// The path of a host file inside the root (the program's own location: $ORIGIN).
    fn inside(&self, host: &Path) -> String {
        let real = std::fs::canonicalize(host).unwrap_or_else(|_| host.to_path_buf());
        let root = std::fs::canonicalize(self.root.dir())
            .unwrap_or_else(|_| self.root.dir().to_path_buf());
        match real.strip_prefix(&root) {
            Ok(rel) => Path::new("/").join(rel).display().to_string(),
            Err(_) => real.display().to_string(),
        }
    }
}
