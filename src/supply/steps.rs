//! The work for one arch from one source: get the bytes into a temp file in the cache
//! while hashing them, then pin-check, verify, and commit.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ProvisionedInterpreter, Supplier, SupplyError};
use crate::arch::Arch;
use crate::archive::{self, ArchiveError};
use crate::cache::{IndexEntry, TempFile};
use crate::config::{member_for, Origin, Remote, Source};
use crate::fetch::{self, hex};

/// This source does not have the arch (member or file absent): try the next source.
pub(super) struct Miss(pub String);

type Outcome = Result<Result<ProvisionedInterpreter, SupplyError>, Miss>;

struct Ctx<'a> {
    s: &'a Supplier<'a>,
    source: &'a Source,
    arch: &'static Arch,
}

/// Bytes written so far, hashed on the way to the file.
struct Hashing<'a> {
    file: &'a mut File,
    hash: Sha256,
    n: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.file.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub(super) fn from_source(s: &Supplier, source: &Source, arch: &'static Arch) -> Outcome {
    let cx = Ctx { s, source, arch };
    if let Some(done) = cx.reuse() {
        return Ok(Ok(done));
    }
    match &source.origin {
        Origin::Raw(remote) => Ok(cx.raw(remote)),
        Origin::Archive {
            remote,
            format,
            member,
        } => cx.archive(remote, *format, &member_for(member, arch)),
        Origin::LocalFile(path) => cx.local(path),
        Origin::LocalDir { dir, member } => cx.local(&dir.join(member_for(member, arch))),
    }
}

impl Ctx<'_> {
    fn name(&self) -> String {
        self.source.name.clone()
    }

    fn cache_err(&self, error: crate::cache::CacheError) -> SupplyError {
        SupplyError::Cache {
            arch: self.arch.qemu.into(),
            error,
        }
    }

    fn setup(&self, what: String) -> SupplyError {
        SupplyError::Setup {
            arch: self.arch.qemu.into(),
            source_name: self.name(),
            what,
        }
    }

    /// The index already names an object from this very source: verify it and reuse it.
    /// Not for local sources: their files may change under the same description.
    fn reuse(&self) -> Option<ProvisionedInterpreter> {
        if matches!(
            self.source.origin,
            Origin::LocalFile(_) | Origin::LocalDir { .. }
        ) {
            return None;
        }
        let e = self.s.cache.index_entry(self.arch.qemu)?;
        let path = self.s.cache.object_path(&e.sha256);
        let pinned = self.source.member_sha256.get(self.arch.qemu);
        if e.source != self.source.describe(self.arch)
            || pinned.is_some_and(|p| *p != e.sha256)
            || !path.is_file()
        {
            return None;
        }
        (self.s.check)(&path, self.s.host).ok()?;
        Some(ProvisionedInterpreter {
            arch: self.arch,
            path,
            sha256: e.sha256,
            size: e.size,
            source: e.source,
            version: e.version,
        })
    }

    fn download(
        &self,
        remote: &Remote,
        t: &mut TempFile,
    ) -> Result<fetch::Downloaded, SupplyError> {
        let transport = self
            .s
            .transport_for(remote.allow_http)
            .map_err(|w| self.setup(w))?;
        fetch::download(
            transport.as_ref(),
            remote,
            &self.s.config.download,
            &mut t.file,
            &self.source.name,
        )
        .map_err(|error| SupplyError::Fetch {
            arch: self.arch.qemu.into(),
            source_name: self.name(),
            error,
        })
    }

    fn raw(&self, remote: &Remote) -> Result<ProvisionedInterpreter, SupplyError> {
        let mut t = self.s.cache.temp("sha256").map_err(|e| self.cache_err(e))?;
        let d = self.download(remote, &mut t)?;
        self.finish(t, d.sha256, d.size, Some(d.url), None)
    }

    /// The archive, downloaded once into `archives/` and reused by every arch after.
    fn ensure_archive(&self, remote: &Remote) -> Result<(File, String), SupplyError> {
        let dest = self.s.cache.archive_path(&remote.sha256);
        if !dest.is_file() {
            let mut t = self
                .s
                .cache
                .temp("archives")
                .map_err(|e| self.cache_err(e))?;
            let d = self.download(remote, &mut t)?;
            self.s
                .cache
                .seal(&t, 0o644)
                .map_err(|e| self.cache_err(e))?;
            self.s
                .cache
                .commit(t, &dest)
                .map_err(|e| self.cache_err(e))?;
            tracing::info!(arch = self.arch.qemu, url = %d.url, "archive cached");
            return self.open_archive(&dest).map(|f| (f, d.url));
        }
        self.open_archive(&dest)
            .map(|f| (f, remote.urls[0].clone()))
    }

    fn open_archive(&self, path: &Path) -> Result<File, SupplyError> {
        File::open(path).map_err(|e| {
            self.cache_err(crate::cache::CacheError {
                op: "open",
                path: path.into(),
                source: e,
            })
        })
    }

    fn archive(
        &self,
        remote: &Remote,
        format: crate::config::ArchiveFormat,
        member: &str,
    ) -> Outcome {
        let (file, url) = match self.ensure_archive(remote) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let mut t = match self.s.cache.temp("sha256") {
            Ok(t) => t,
            Err(e) => return Ok(Err(self.cache_err(e))),
        };
        let mut w = Hashing {
            file: &mut t.file,
            hash: Sha256::new(),
            n: 0,
        };
        match archive::extract_member(
            format,
            io::BufReader::with_capacity(1 << 16, file),
            member,
            &mut w,
        ) {
            Err(ArchiveError::Missing { .. }) => return Err(Miss(format!("no member {member}"))),
            Err(error) => {
                return Ok(Err(SupplyError::Archive {
                    arch: self.arch.qemu.into(),
                    source_name: self.name(),
                    error,
                }))
            }
            Ok(_) => {}
        }
        let (sha, n) = (hex(&w.hash.finalize()), w.n);
        Ok(self.finish(t, sha, n, Some(url), Some(remote.sha256.clone())))
    }

    fn local(&self, path: &Path) -> Outcome {
        let mut src = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Miss(format!("{} does not exist", path.display())))
            }
            Err(e) => {
                return Ok(Err(
                    self.setup(format!("cannot read {}: {e}", path.display()))
                ))
            }
        };
        let mut t = match self.s.cache.temp("sha256") {
            Ok(t) => t,
            Err(e) => return Ok(Err(self.cache_err(e))),
        };
        let mut w = Hashing {
            file: &mut t.file,
            hash: Sha256::new(),
            n: 0,
        };
        if let Err(e) = io::copy(&mut src, &mut w) {
            return Ok(Err(
                self.setup(format!("copying {} into the cache: {e}", path.display()))
            ));
        }
        let (sha, n) = (hex(&w.hash.finalize()), w.n);
        Ok(self.finish(t, sha, n, None, None))
    }

    /// Pin check, then seal, verify, commit (or reuse the identical object), then index.
    fn finish(
        &self,
        t: TempFile,
        sha: String,
        size: u64,
        url: Option<String>,
        archive_sha256: Option<String>,
    ) -> Result<ProvisionedInterpreter, SupplyError> {
        let cache = self.s.cache;
        if let Some(want) = self
            .source
            .member_sha256
            .get(self.arch.qemu)
            .filter(|w| **w != sha)
        {
            let member = match &self.source.origin {
                Origin::Archive { member, .. } => member_for(member, self.arch),
                _ => self.source.describe(self.arch),
            };
            return Err(SupplyError::MemberHash {
                arch: self.arch.qemu.into(),
                source_name: self.name(),
                member,
                got: sha,
                want: want.clone(),
            });
        }
        let dest = cache.object_path(&sha);
        let refused = |what: String| SupplyError::Refused {
            arch: self.arch.qemu.into(),
            source_name: self.name(),
            what,
        };
        if dest.is_file() {
            drop(t);
            (self.s.check)(&dest, self.s.host).map_err(refused)?;
        } else {
            cache.seal(&t, 0o755).map_err(|e| self.cache_err(e))?;
            (self.s.check)(&t.path, self.s.host).map_err(refused)?;
            cache.commit(t, &dest).map_err(|e| self.cache_err(e))?;
        }
        let version = super::version::read(&dest);
        let entry = IndexEntry {
            arch: self.arch.qemu.into(),
            sha256: sha,
            path: dest,
            size,
            source: self.source.describe(self.arch),
            url,
            archive_sha256,
            version,
        };
        cache.write_index(&entry).map_err(|e| self.cache_err(e))?;
        tracing::info!(arch = self.arch.qemu, path = %entry.path.display(), source = %entry.source, "interpreter ready");
        Ok(ProvisionedInterpreter {
            arch: self.arch,
            path: entry.path,
            sha256: entry.sha256,
            size,
            source: entry.source,
            version: entry.version,
        })
    }
}
