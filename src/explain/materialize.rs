//! Writing what a verdict reads out of an image's merged layers into a private directory,
//! within limits: a regular file is copied whole only up to [`FILE_CAP`]; a larger one
//! gets its first and last [`EDGE`] bytes and, for ELF, the ranges the explain reader uses
//! (headers, dynamic section, version tables: see [`super::elf_ranges`]), the rest left a
//! hole; all data written stays under [`TOTAL_CAP`], and files past it are left out. Hard
//! links are made as links. Each file not copied whole is reported as [`Limited`].

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::ops::Range;

use super::elf_ranges::{merge, missing, needed};
use super::image::{Blob, ImageError, Source};
use super::layers::{clean, layer, Kind, Node, Tree};
use super::scratch::{copy_sparse, write_ranges, Scratch};

/// Largest file copied whole. Most libraries are smaller (libc 2 MB, libstdc++ 2.4 MB);
/// a larger ELF costs a few hundred KiB in ranges instead, so an image full of large
/// programs (qemu-user: 40 of 12 MB) stays far under [`TOTAL_CAP`].
pub const FILE_CAP: u64 = 4 << 20;
/// Data written to the scratch directory in all (holes and links cost nothing).
pub const TOTAL_CAP: u64 = 256 << 20;
/// What whole copies leave of [`TOTAL_CAP`] for the ranges of large files.
pub const RANGES_RESERVE: u64 = 64 << 20;
/// Bytes kept from the start and from the end of a file not copied whole: the ELF
/// header and program headers are at the start, the section headers usually at the end,
/// a `#!` line in the first 256 bytes.
pub const EDGE: u64 = 64 << 10;
/// Passes over a layer for one large ELF file: header tables, then the sections they name.
const RANGE_ROUNDS: usize = 3;

/// How much of a file over the limits was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coverage {
    /// Its first and last bytes, and for ELF the ranges the loader facts come from.
    Ranges,
    /// Nothing: the total cap was reached.
    Nothing,
}

/// A file not copied whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Limited {
    /// Inside the image, with a leading `/`.
    pub path: String,
    pub size: u64,
    pub read: Coverage,
}

/// Called for each winning regular file met in a layer pass: its entry number in the
/// layer, path, mode, size, and its bytes.
type OnFile<'a> = dyn FnMut(usize, &str, u32, u64, &mut dyn Read) -> io::Result<()> + 'a;

/// A large file whose ELF ranges are still to be filled: where, and what it has.
struct Pending {
    path: String,
    /// Set once its ranges are in: until then it stays 0600, so it can be reopened.
    mode: u32,
    size: u64,
    have: Vec<Range<u64>>,
}

struct Writer<'a> {
    dest: &'a Scratch,
    written: u64,
    limited: Vec<Limited>,
    /// (layer, entry) -> a large file to fill in ranges.
    pending: BTreeMap<(usize, usize), Pending>,
}

impl Tree {
    /// Write symlinks and the regular files `want` picks into `dest`, within the caps,
    /// with the directories on the way to them (an empty directory holds nothing a
    /// verdict reads). A path through a symlink is never written through.
    pub fn materialize(
        &self,
        src: &Source,
        layers: &[Blob],
        want: &dyn Fn(&str) -> bool,
        dest: &Scratch,
    ) -> Result<Vec<Limited>, ImageError> {
        self.skeleton(dest)?;
        // A wanted hard link needs its target's bytes, wherever the target is.
        let targets: HashSet<&str> = self
            .nodes
            .iter()
            .filter_map(|(p, n)| match &n.kind {
                Kind::Hardlink(t) if want(p) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let pick = |p: &str| want(p) || targets.contains(p);
        let mut w = Writer {
            dest,
            written: 0,
            limited: vec![],
            pending: BTreeMap::new(),
        };
        for (i, blob) in layers.iter().enumerate() {
            self.pass(src, blob, i, &mut |ord, path, mode, size, e| {
                if pick(path) {
                    w.file(i, ord, path, mode, size, e)?;
                }
                Ok(())
            })?;
        }
        for _ in 0..RANGE_ROUNDS {
            if !w.fill_ranges(self, src, layers)? {
                break;
            }
        }
        for p in w.pending.values() {
            dest.finish_mode(&p.path, p.mode).map_err(io_at(&p.path))?;
        }
        self.link(dest, want)?;
        Ok(w.limited)
    }

    fn skeleton(&self, dest: &Scratch) -> Result<(), ImageError> {
        for (path, node) in &self.nodes {
            if let Kind::Symlink(t) = &node.kind {
                dest.symlink(path, t).map_err(io_at(path))?;
            }
        }
        Ok(())
    }

    /// Stream layer `i`, calling `each(entry, path, mode, size, reader)` for every entry
    /// that is the winning regular file at its path.
    fn pass(
        &self,
        src: &Source,
        blob: &Blob,
        i: usize,
        each: &mut OnFile,
    ) -> Result<(), ImageError> {
        let mut a = tar::Archive::new(layer(src, blob)?);
        for (ord, e) in a.entries().map_err(io_at(&blob.name))?.enumerate() {
            let mut e = e.map_err(io_at(&blob.name))?;
            let Some(path) = clean(&String::from_utf8_lossy(&e.path_bytes())) else {
                continue;
            };
            let winner = self.nodes.get(&path).filter(|n| n.layer == i);
            if let Some(Node {
                kind: Kind::File { ord: o, mode },
                ..
            }) = winner
            {
                if *o == ord {
                    let size = e.size();
                    each(ord, &path, *mode, size, &mut e).map_err(io_at(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Wanted hard links, as links to the file already written (never through a symlink).
    fn link(&self, dest: &Scratch, want: &dyn Fn(&str) -> bool) -> Result<(), ImageError> {
        for (path, node) in &self.nodes {
            if let Kind::Hardlink(target) = &node.kind {
                if want(path) {
                    dest.hard_link(path, target).map_err(io_at(path))?;
                }
            }
        }
        Ok(())
    }
}

impl Writer<'_> {
    fn file(
        &mut self,
        i: usize,
        ord: usize,
        path: &str,
        mode: u32,
        size: u64,
        from: &mut dyn Read,
    ) -> io::Result<()> {
        let left = TOTAL_CAP - self.written;
        let whole = (size <= 2 * EDGE && size <= left)
            || (size <= FILE_CAP && size + RANGES_RESERVE <= left);
        let partial = !whole;
        let cost = if whole { size } else { 2 * EDGE };
        if cost > left {
            self.limit(path, size, Coverage::Nothing);
            return Ok(());
        }
        let Some(mut f) = self.dest.create(path)? else {
            return Ok(());
        };
        self.written += cost;
        if !partial {
            copy_sparse(from, &mut f, size)?;
            return self.dest.finish_mode(path, mode);
        }
        let tail = size.saturating_sub(EDGE).max(EDGE);
        let have = vec![0..EDGE.min(size), tail..size];
        write_ranges(from, &f, &have)?;
        f.set_len(size)?;
        self.limit(path, size, Coverage::Ranges);
        let p = Pending {
            path: path.to_string(),
            mode,
            size,
            have,
        };
        self.pending.insert((i, ord), p);
        Ok(())
    }

    fn limit(&mut self, path: &str, size: u64, read: Coverage) {
        self.limited.push(Limited {
            path: format!("/{path}"),
            size,
            read,
        });
    }

    /// One more pass over the layers holding large ELF files, writing the ranges their
    /// tables now name. Returns whether anything was asked for.
    fn fill_ranges(
        &mut self,
        tree: &Tree,
        src: &Source,
        layers: &[Blob],
    ) -> Result<bool, ImageError> {
        let mut todo: BTreeMap<(usize, usize), Vec<Range<u64>>> = BTreeMap::new();
        for (key, p) in &mut self.pending {
            let f = self.dest.reopen(&p.path).map_err(io_at(&p.path))?;
            let cache = object::ReadCache::new(f);
            let ask = missing(&needed(&cache, p.size), &p.have);
            let cost: u64 = ask.iter().map(|r| r.end - r.start).sum();
            if ask.is_empty() || cost > TOTAL_CAP - self.written {
                continue;
            }
            self.written += cost;
            p.have = merge(&[p.have.clone(), ask.clone()].concat());
            todo.insert(*key, ask);
        }
        let layers_todo: HashSet<usize> = todo.keys().map(|k| k.0).collect();
        for (i, blob) in layers
            .iter()
            .enumerate()
            .filter(|(i, _)| layers_todo.contains(i))
        {
            let (pending, dest) = (&self.pending, self.dest);
            tree.pass(src, blob, i, &mut |ord, _, _, _, e| match (
                todo.get(&(i, ord)),
                pending.get(&(i, ord)),
            ) {
                (Some(ranges), Some(p)) => write_ranges(e, &dest.reopen(&p.path)?, ranges),
                _ => Ok(()),
            })?;
        }
        Ok(!todo.is_empty())
    }
}

fn io_at(p: &str) -> impl Fn(io::Error) -> ImageError {
    let p = p.to_string();
    move |error| ImageError::Io {
        path: p.clone(),
        error,
    }
}
