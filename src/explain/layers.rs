//! An image's filesystem: its layers applied in order (whiteouts `.wh.NAME` and opaque
//! directories `.wh..wh..opq` honoured) into an in-memory tree of paths, without writing
//! anything. [`Tree::materialize`] then writes only what a verdict reads (directories,
//! symlinks, and the regular files a filter picks: programs, libraries, loader config)
//! into a private directory, so the usual root-based checks run against it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use super::image::{ImageError, Source};

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";
const MAX_SYMLINKS: usize = 40;

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
fn layer<'s>(src: &'s Source, name: &str) -> Result<Box<dyn Read + 's>, ImageError> {
    let mut buf = BufReader::new(src.read(name)?);
    let io_err = |error| ImageError::Io {
        path: name.to_string(),
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

impl Tree {
    /// Apply every layer in order.
    pub fn build(src: &Source, layers: &[String]) -> Result<Tree, ImageError> {
        let mut t = Tree::default();
        for (i, name) in layers.iter().enumerate() {
            let io_err = |error| ImageError::Io {
                path: name.clone(),
                error,
            };
            src.verify(name)?;
            let mut a = tar::Archive::new(layer(src, name)?);
            for (ord, e) in a.entries().map_err(io_err)?.enumerate() {
                let e = e.map_err(io_err)?;
                let Some(path) = clean(&String::from_utf8_lossy(&e.path_bytes())) else {
                    continue;
                };
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(l.as_ref()).into_owned());
                let ty = e.header().entry_type();
                let kind = if ty.is_dir() {
                    Kind::Dir
                } else if ty.is_symlink() {
                    Kind::Symlink(link.unwrap_or_default())
                } else if ty.is_hard_link() {
                    match link.as_deref().and_then(clean) {
                        Some(target) => Kind::Hardlink(target),
                        None => continue,
                    }
                } else if ty.is_file() || ty.is_contiguous() {
                    Kind::File {
                        ord,
                        mode: e.header().mode().unwrap_or(0o644),
                    }
                } else {
                    continue;
                };
                t.apply(i, &path, kind);
            }
        }
        Ok(t)
    }

    /// One entry of layer `layer`: a whiteout removes from the layers below, else it
    /// replaces what was there (a non-directory replacing a directory drops its contents).
    pub fn apply(&mut self, layer: usize, path: &str, kind: Kind) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let lower = |n: &Node| n.layer < layer;
        if name == OPAQUE {
            self.remove_under(dir, lower);
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            let target = if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            };
            self.nodes.remove(&target);
            self.remove_under(&target, lower);
        } else {
            if kind != Kind::Dir {
                self.remove_under(path, |_| true);
            }
            self.nodes.insert(path.to_string(), Node { layer, kind });
        }
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

    /// Write directories, symlinks and the regular files `want` picks into `dest` (an
    /// empty directory of ours). A path through a symlink is never written through.
    pub fn materialize(
        &self,
        src: &Source,
        layers: &[String],
        want: &dyn Fn(&str) -> bool,
        dest: &Path,
    ) -> Result<(), ImageError> {
        let io_err = |p: &str| {
            let p = p.to_string();
            move |error| ImageError::Io { path: p, error }
        };
        for (path, node) in &self.nodes {
            match &node.kind {
                Kind::Dir => safe_dir(dest, path).map_err(io_err(path))?,
                Kind::Symlink(t) => {
                    if let Some(parent) = parent_of(path) {
                        safe_dir(dest, parent).map_err(io_err(path))?;
                    }
                    let _ = std::os::unix::fs::symlink(t, dest.join(path));
                }
                _ => {}
            }
        }
        for (i, name) in layers.iter().enumerate() {
            let mut a = tar::Archive::new(layer(src, name)?);
            for (ord, e) in a.entries().map_err(io_err(name))?.enumerate() {
                let mut e = e.map_err(io_err(name))?;
                let Some(path) = clean(&String::from_utf8_lossy(&e.path_bytes())) else {
                    continue;
                };
                let winner = self.nodes.get(&path).filter(|n| n.layer == i);
                if let Some(Node {
                    kind: Kind::File { ord: o, mode },
                    ..
                }) = winner
                {
                    if *o == ord && want(&path) {
                        write_file(dest, &path, *mode, &mut e).map_err(io_err(&path))?;
                    }
                }
            }
        }
        for (path, node) in &self.nodes {
            if let Kind::Hardlink(target) = &node.kind {
                if want(path) && dest.join(target).is_file() && !is_link_path(dest, target) {
                    if let Some(parent) = parent_of(path) {
                        safe_dir(dest, parent).map_err(io_err(path))?;
                    }
                    let _ = fs::copy(dest.join(target), dest.join(path));
                }
            }
        }
        Ok(())
    }
}

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(d, _)| d)
}

/// Does any component of `rel` under `dest` exist as a symlink?
fn is_link_path(dest: &Path, rel: &str) -> bool {
    let mut p = dest.to_path_buf();
    rel.split('/').any(|c| {
        p.push(c);
        fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// Create `rel` and its parents under `dest`, refusing to pass through a symlink.
fn safe_dir(dest: &Path, rel: &str) -> io::Result<()> {
    let mut p = dest.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory in the image",
                    p.display()
                )))
            }
            Err(_) => fs::create_dir(&p)?,
        }
    }
    Ok(())
}

fn write_file(dest: &Path, rel: &str, mode: u32, from: &mut impl Read) -> io::Result<()> {
    if let Some(parent) = parent_of(rel) {
        if safe_dir(dest, parent).is_err() {
            return Ok(()); // under a symlink or a file: the image cannot have it there either
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest.join(rel))?;
    io::copy(from, &mut f)?;
    // Keep the x bits (explain reads them); never setuid/setgid in our private copy.
    f.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
    Ok(())
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
