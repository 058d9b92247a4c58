//! An image's filesystem: its layers applied in order (whiteouts `.wh.NAME` and opaque
//! directories `.wh..wh..opq` honoured) into an in-memory tree of paths, without writing
//! anything. Whiteouts are collected per layer and applied once, before the layer's own
//! entries, against the layers below only (OCI: a whiteout never hides an entry of its
//! own layer). [`Tree::materialize`] (in [`super::materialize`]) then writes what a
//! verdict reads into a private directory, so the usual root-based checks run against it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path};

use super::image::{invalid, Blob, ImageError, Source};

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";
const MAX_SYMLINKS: usize = 40;
/// Paths in the merged tree. A large distribution image has a few hundred thousand; more
/// costs memory for nothing a verdict needs.
pub const MAX_PATHS: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Which layer and which entry of it holds the bytes.
    File {
        ord: usize,
        mode: u32,
    },
    Symlink(String),
    /// A hard link to another path of the image.
    Hardlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub layer: usize,
    pub kind: Kind,
}

/// The merged filesystem: relative paths (no leading `/`) -> what wins there.
#[derive(Debug, Default)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

/// A layer blob decompressed (gzip, zstd or plain, told from its first bytes).
pub(super) fn layer<'s>(src: &'s Source, blob: &Blob) -> Result<Box<dyn Read + 's>, ImageError> {
    let mut buf = BufReader::new(src.read(&blob.name, blob.size)?);
    let io_err = |error| ImageError::Io {
        path: blob.name.clone(),
        error,
    };
    let head = buf.fill_buf().map_err(io_err)?.to_vec();
    Ok(match crate::archive::sniff(&head) {
        crate::archive::Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        crate::archive::Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buf)
                .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?,
        ),
        _ => Box::new(buf),
    })
}

/// A tar member name inside the image, or None when it would leave the root (`..`).
pub fn clean(path: &str) -> Option<String> {
    let mut parts = vec![];
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The whiteouts of one layer, deduplicated: applied once, after the layer is read.
#[derive(Debug, Default)]
pub struct Whiteouts {
    /// Directories whose lower contents are hidden (`DIR/.wh..wh..opq`).
    pub opaque: BTreeSet<String>,
    /// Paths hidden with everything under them (`DIR/.wh.NAME`).
    pub hidden: BTreeSet<String>,
}

/// What one tar entry of a layer is: a whiteout, or an entry to insert.
enum Entry {
    Opaque(String),
    Hidden(String),
    Put(String, Kind),
}

fn classify(path: &str, kind: Kind) -> Entry {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name == OPAQUE {
        return Entry::Opaque(dir.to_string());
    }
    match name.strip_prefix(WHITEOUT) {
        Some(hidden) if dir.is_empty() => Entry::Hidden(hidden.to_string()),
        Some(hidden) => Entry::Hidden(format!("{dir}/{hidden}")),
        None => Entry::Put(path.to_string(), kind),
    }
}

/// The tree's kind for a tar entry, or None for what a verdict never reads (devices).
fn kind_of<R: Read>(e: &tar::Entry<'_, R>, ord: usize) -> Option<Kind> {
    let link = e
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(l.as_ref()).into_owned());
    let ty = e.header().entry_type();
    Some(if ty.is_dir() {
        Kind::Dir
    } else if ty.is_symlink() {
        Kind::Symlink(link.unwrap_or_default())
    } else if ty.is_hard_link() {
        Kind::Hardlink(link.as_deref().and_then(clean)?)
    } else if ty.is_file() || ty.is_contiguous() {
        Kind::File {
            ord,
            mode: e.header().mode().unwrap_or(0o644),
        }
    } else {
        return None;
    })
}

impl Tree {
    /// Apply every layer in order: its whiteouts against the layers below, then its entries.
    pub fn build(src: &Source, layers: &[Blob]) -> Result<Tree, ImageError> {
        let mut t = Tree::default();
        for (i, blob) in layers.iter().enumerate() {
            let io_err = |error| ImageError::Io {
                path: blob.name.clone(),
                error,
            };
            src.verify(&blob.name, blob.size)?;
            let mut a = tar::Archive::new(layer(src, blob)?);
            let mut entries = vec![];
            for (ord, e) in a.entries().map_err(io_err)?.enumerate() {
                let e = e.map_err(io_err)?;
                let Some(path) = clean(&String::from_utf8_lossy(&e.path_bytes())) else {
                    continue;
                };
                let Some(kind) = kind_of(&e, ord) else {
                    continue;
                };
                entries.push((path, kind));
                if t.nodes.len() + entries.len() > MAX_PATHS {
                    return Err(invalid(format!(
                        "{}: the image has more than {MAX_PATHS} paths; explain stops there. Hint: judge the unpacked rootfs with `explain --root DIR` instead",
                        blob.name
                    )));
                }
            }
            t.apply_layer(i, entries);
        }
        Ok(t)
    }

    /// All entries of layer `layer`, in tar order: its whiteouts (each applied once however
    /// often it is listed) against the layers below, then its other entries.
    pub fn apply_layer(&mut self, layer: usize, entries: Vec<(String, Kind)>) {
        let mut w = Whiteouts::default();
        let mut puts = vec![];
        for (path, kind) in entries {
            match classify(&path, kind) {
                Entry::Opaque(d) => {
                    w.opaque.insert(d);
                }
                Entry::Hidden(p) => {
                    w.hidden.insert(p);
                }
                Entry::Put(p, k) => puts.push((p, k)),
            }
        }
        self.whiteout(&w);
        for (p, k) in puts {
            self.put(layer, &p, k);
        }
    }

    /// One entry of layer `layer`, as if it were the layer's only one: a whiteout removes
    /// from the layers below, anything else is put in place.
    pub fn apply(&mut self, layer: usize, path: &str, kind: Kind) {
        let lower = |n: &Node| n.layer < layer;
        match classify(path, kind) {
            Entry::Opaque(d) => self.remove_under(&d, lower),
            Entry::Hidden(p) => {
                if self.nodes.get(&p).is_some_and(lower) {
                    self.nodes.remove(&p);
                }
                self.remove_under(&p, lower);
            }
            Entry::Put(p, k) => self.put(layer, &p, k),
        }
    }

    /// A layer's whiteouts, applied before its own entries: everything still in the tree
    /// is from the layers below.
    pub fn whiteout(&mut self, w: &Whiteouts) {
        for d in &w.opaque {
            self.remove_under(d, |_| true);
        }
        for p in &w.hidden {
            self.nodes.remove(p);
            self.remove_under(p, |_| true);
        }
    }

    /// Put an entry in place; a non-directory replacing a directory drops its contents.
    fn put(&mut self, layer: usize, path: &str, kind: Kind) {
        if kind != Kind::Dir {
            self.remove_under(path, |_| true);
        }
        self.nodes.insert(path.to_string(), Node { layer, kind });
    }

    fn remove_under(&mut self, dir: &str, pick: impl Fn(&Node) -> bool) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, n)| pick(n))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Follow symlinks as a process inside the container would; the path of the final
    /// entry, or None when it does not exist.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut cur: Vec<String> = vec![];
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let here = cur.join("/");
            let kind = match self.nodes.get(&here) {
                Some(n) => &n.kind,
                // Tars need not list every directory: one exists if something is under it.
                None if self.has_children(&here) => &Kind::Dir,
                None => return None,
            };
            if let Kind::Symlink(target) = kind {
                links += 1;
                if links > MAX_SYMLINKS {
                    return None;
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
        }
        Some(cur.join("/"))
    }

    fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Is `path` (resolved) a regular file of the image?
    pub fn is_file(&self, path: &str) -> bool {
        matches!(
            self.nodes.get(path).map(|n| &n.kind),
            Some(Kind::File { .. } | Kind::Hardlink(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ord: usize) -> Kind {
        Kind::File { ord, mode: 0o755 }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let mut t = Tree::default();
        t.apply(0, "etc", Kind::Dir);
        t.apply(0, "etc/a", file(1));
        t.apply(0, "etc/b", file(2));
        t.apply(0, "opt/x/y", file(3));
        t.apply(1, "etc/c", file(0));
        t.apply(1, "etc/.wh..wh..opq", Kind::Dir);
        t.apply(1, "opt/.wh.x", file(1));
        let keys: Vec<&str> = t.nodes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["etc", "etc/c"]);
        // A file replacing a directory drops what was under it.
        t.apply(2, "etc", file(0));
        assert!(!t.nodes.contains_key("etc/c"));
    }

    /// OCI whiteout semantics through the per-layer path `build` takes: (layers below,
    /// the layer on top, what remains).
    #[test]
    fn whiteout_table() {
        let d = |p: &str| (p.to_string(), Kind::Dir);
        let f = |p: &str| (p.to_string(), file(0));
        type Layer = Vec<(String, Kind)>;
        let cases: Vec<(Layer, Layer, Vec<&str>)> = vec![
            // A whiteout hides the lower entry and everything under it.
            (vec![d("a"), f("a/x"), f("b")], vec![f(".wh.a")], vec!["b"]),
            // ... but not the layer's own entry of that name, before or after it.
            (vec![f("a")], vec![f("a"), f(".wh.a")], vec!["a"]),
            (vec![f("a")], vec![f(".wh.a"), f("a")], vec!["a"]),
            // An opaque marker hides the lower contents of its directory, not the directory,
            // and not the layer's own entries there, in any order.
            (
                vec![d("e"), f("e/old"), f("e/sub/x"), f("other")],
                vec![f("e/new"), f("e/.wh..wh..opq"), f("e/later")],
                vec!["e", "e/later", "e/new", "other"],
            ),
            // Root-level opaque markers, many times over: the layer's own files stay.
            (
                vec![f("low")],
                vec![f("f1"), f(".wh..wh..opq"), f("f2"), f(".wh..wh..opq")],
                vec!["f1", "f2"],
            ),
            // A whiteout of a path that is not there changes nothing.
            (vec![f("a")], vec![f("dir/.wh.gone")], vec!["a"]),
            // A file replacing a lower directory drops its lower contents.
            (vec![d("a"), f("a/x")], vec![f("a")], vec!["a"]),
        ];
        for (i, (lower, upper, want)) in cases.into_iter().enumerate() {
            let mut t = Tree::default();
            t.apply_layer(0, lower);
            t.apply_layer(1, upper);
            let keys: Vec<&str> = t.nodes.keys().map(String::as_str).collect();
            assert_eq!(keys, want, "case {i}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_image() {
        let mut t = Tree::default();
        t.apply(0, "usr/bin/busybox", file(0));
        t.apply(0, "bin", Kind::Symlink("usr/bin".into()));
        t.apply(0, "usr/bin/sh", Kind::Symlink("/bin/busybox".into()));
        t.apply(0, "loop", Kind::Symlink("loop".into()));
        assert_eq!(t.resolve("/bin/sh").as_deref(), Some("usr/bin/busybox"));
        assert_eq!(
            t.resolve("/bin/../../usr/bin/sh").as_deref(),
            Some("usr/bin/busybox")
        );
        assert_eq!(t.resolve("/bin/nothing"), None);
        assert_eq!(t.resolve("/loop"), None);
        assert_eq!(clean("./a/../../etc"), None);
        assert_eq!(clean("/usr/./bin/").as_deref(), Some("usr/bin"));
    }
}
