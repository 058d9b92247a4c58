//! Where an image's files are: an OCI layout directory, or a tar indexed once and read in
//! place. Every read is bounded: a layout's files are opened without following a final
//! symlink, must be regular files, and are read no further than their size (and, for a
//! blob, than the size its descriptor gives); a `blobs/sha256/<hex>` read fails at its
//! end unless the bytes have that digest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::image::{invalid, ImageError};

/// Members of a tar source kept in its index. An image tar holds a few per layer (a
/// docker save of the 127-layer maximum stays far below); more is not an image, and
/// indexing it would cost memory for every member.
pub const MAX_MEMBERS: usize = 65_536;
/// Longer member names are not indexed: no manifest names a blob or config that way.
const MAX_MEMBER_NAME: usize = 512;

/// Where the image's files are.
pub enum Source {
    Dir(PathBuf),
    /// Member name -> (offset, size) inside the tar file; symlinked members resolved.
    Tar {
        file: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

fn io_at(path: &str) -> impl Fn(io::Error) -> ImageError + '_ {
    move |error| ImageError::Io {
        path: path.to_string(),
        error,
    }
}

impl Source {
    /// A directory is an OCI layout; a file is a tar indexed once, without extracting.
    pub fn open(path: &Path) -> Result<Source, ImageError> {
        if path.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let shown = path.display().to_string();
        let io_err = io_at(&shown);
        let mut archive = tar::Archive::new(File::open(path).map_err(&io_err)?);
        let mut members = HashMap::new();
        let mut links = vec![];
        for (n, entry) in archive.entries().map_err(&io_err)?.enumerate() {
            if n >= MAX_MEMBERS {
                return Err(invalid(format!(
                    "{shown} has more than {MAX_MEMBERS} members, which no image tar has (a few per layer); it was not indexed further. Hint: give the `docker save`/`podman save` tar of the image itself"
                )));
            }
            let entry = entry.map_err(&io_err)?;
            let raw = entry.path_bytes();
            if raw.len() > MAX_MEMBER_NAME {
                continue;
            }
            let name = crate::archive::normalize(&String::from_utf8_lossy(&raw)).to_string();
            match entry.link_name_bytes() {
                Some(target) if entry.header().entry_type().is_symlink() => {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    let t = String::from_utf8_lossy(&target).into_owned();
                    links.push((name, format!("{dir}/{t}")));
                }
                _ => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
            }
        }
        for (name, target) in links {
            let resolved = normalize_dots(&target);
            if let Some(&at) = members.get(&resolved) {
                members.insert(name, at);
            }
        }
        Ok(Source::Tar {
            file: path.to_path_buf(),
            members,
        })
    }

    pub fn format(&self) -> &'static str {
        match self {
            Source::Dir(_) => "oci-layout",
            Source::Tar { members, .. } if members.contains_key("index.json") => "oci-archive",
            Source::Tar { .. } => "docker-archive",
        }
    }

    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(name).is_file(),
            Source::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// A reader over one member or file, `size` bytes long when a descriptor gives it; a
    /// `blobs/sha256/<hex>` one fails at its end unless its bytes have that digest.
    pub fn read(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Read + '_>, ImageError> {
        let raw = self.read_raw(name, size)?;
        Ok(match name.strip_prefix("blobs/sha256/") {
            Some(hex) => Box::new(Verified {
                inner: raw,
                hasher: Sha256::new(),
                want: hex.to_string(),
                name: name.to_string(),
            }),
            None => raw,
        })
    }

    /// Read a whole blob to check its digest (layers are parsed as streams that may stop
    /// before the end).
    pub fn verify(&self, name: &str, size: Option<u64>) -> Result<(), ImageError> {
        io::copy(&mut self.read(name, size)?, &mut io::sink()).map_err(io_at(name))?;
        Ok(())
    }

    fn read_raw(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Read + '_>, ImageError> {
        let (file, len) = match self {
            Source::Dir(d) => {
                let f = open_regular(&d.join(name)).map_err(io_at(name))?;
                let len = f.metadata().map_err(io_at(name))?.len();
                (f, len)
            }
            Source::Tar { file, members } => {
                let &(off, len) = members
                    .get(name)
                    .ok_or_else(|| invalid(format!("{name} is not in the archive")))?;
                let mut f = File::open(file).map_err(io_at(name))?;
                f.seek(SeekFrom::Start(off)).map_err(io_at(name))?;
                (f, len)
            }
        };
        if let Some(want) = size.filter(|&s| s != len) {
            return Err(invalid(format!(
                "{name} is {len} bytes but its descriptor gives its size as {want}: the image is corrupt or was altered. Hint: copy it again from its registry (`skopeo copy`)"
            )));
        }
        Ok(Box::new(file.take(len)))
    }

    /// A small JSON member, whole.
    pub fn read_json(&self, name: &str, size: Option<u64>) -> Result<Vec<u8>, ImageError> {
        let mut out = vec![];
        self.read(name, size)?
            .take(super::image::MAX_JSON)
            .read_to_end(&mut out)
            .map_err(io_at(name))?;
        Ok(out)
    }
}

/// Open a layout file for reading: not through a symlink, never blocking (a FIFO would),
/// and only if it is a regular file (a device such as /dev/zero has no end).
fn open_regular(path: &Path) -> io::Result<File> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular("a symlink"),
            _ => e,
        })?;
    let ty = f.metadata()?.file_type();
    if !ty.is_file() {
        let what = if ty.is_fifo() {
            "a FIFO"
        } else if ty.is_char_device() || ty.is_block_device() {
            "a device"
        } else {
            "a directory or socket"
        };
        return Err(not_regular(what));
    }
    Ok(f)
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({what}); an image layout holds its blobs and index as plain files. Hint: copy the image with `skopeo copy` or `umoci` instead of linking its files"),
    )
}

/// Hashes what passes through; at the end, a digest other than `want` is an error.
struct Verified<R> {
    inner: R,
    hasher: Sha256,
    /// Emptied once the end is reached and checked.
    want: String,
    name: String,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.want.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let want = std::mem::take(&mut self.want);
        let got: String = std::mem::take(&mut self.hasher)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has sha256 {got}, not the digest that names it: the image is corrupt or was altered",
                    self.name
                ),
            ));
        }
        Ok(0)
    }
}

/// `a/./b/../c` -> `a/c` (never above the start).
fn normalize_dots(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}
