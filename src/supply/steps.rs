//! The work for one arch from one source: get the bytes into a temp file in the cache
//! while hashing them, then pin-check, verify, and commit.

use std::io;
use std::path::Path;

use super::{ProvisionedInterpreter, Supplier, SupplyError};
use crate::arch::Arch;
use crate::archive::{self, ArchiveError};
use crate::cache::{HashingFile, IndexEntry, TempFile};
use crate::config::{member_for, ArchiveFormat, Origin, Remote, Source};
use crate::fetch;

/// This source does not have the arch (member or file absent): try the next source.
pub(super) struct Miss(pub String);

type Outcome = Result<Result<Done, SupplyError>, Miss>;

/// An interpreter ready in the cache: found in the index, or committed by this run and
/// still to be indexed.
pub(super) enum Done {
    Reused(ProvisionedInterpreter),
    New(IndexEntry),
}

struct Ctx<'a> {
    s: &'a Supplier<'a>,
    source: &'a Source,
    arch: &'static Arch,
}

pub(super) fn from_source(s: &Supplier, source: &Source, arch: &'static Arch) -> Outcome {
    let cx = Ctx { s, source, arch };
    if let Some(done) = cx.reuse() {
        return Ok(Ok(Done::Reused(done)));
    }
    match &source.origin {
        Origin::Raw(remote) => Ok(cx.raw(remote)),
        Origin::Archive {
            remote,
            format,
            member,
        } => cx.archive(remote, *format, member),
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
        let pinned = self.source.member_sha256.get(self.arch.qemu);
        if e.source != self.source.describe(self.arch) || pinned.is_some_and(|p| *p != e.sha256) {
            return None;
        }
        // Re-hashed (cheaply while unchanged); a changed object is dropped and fetched again.
        let path = self.s.cache.verified_object(&e.sha256)?;
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
            transport,
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

    fn raw(&self, remote: &Remote) -> Result<Done, SupplyError> {
        let mut t = self.s.cache.temp("sha256").map_err(|e| self.cache_err(e))?;
        let d = self.download(remote, &mut t)?;
        self.finish(t, d.sha256, d.size, Some(d.url), None)
    }

    /// The archive, downloaded once into `archives/` and reused by every arch after.
    /// Returns the URL it came from.
    fn ensure_archive(&self, remote: &Remote) -> Result<String, SupplyError> {
        let dest = self.s.cache.archive_path(&remote.sha256);
        if self.s.cache.verified_archive(&remote.sha256).is_some() {
            return Ok(remote.urls[0].clone());
        }
        let cache = self.s.cache;
        let mut t = cache.temp("archives").map_err(|e| self.cache_err(e))?;
        let d = self.download(remote, &mut t)?;
        cache.seal(&t, 0o644).map_err(|e| self.cache_err(e))?;
        cache.commit(t, &dest).map_err(|e| self.cache_err(e))?;
        tracing::info!(arch = self.arch.qemu, url = %d.url, "archive cached");
        Ok(d.url)
    }

    fn archive_error(&self, error: ArchiveError) -> SupplyError {
        SupplyError::Archive {
            arch: self.arch.qemu.into(),
            source_name: self.name(),
            error,
        }
    }

    fn archive(&self, remote: &Remote, format: ArchiveFormat, template: &str) -> Outcome {
        let member = &member_for(template, self.arch);
        let url = match self.ensure_archive(remote) {
            Ok(url) => url,
            Err(e) => return Ok(Err(e)),
        };
        let path = self.s.cache.archive_path(&remote.sha256);
        // Extract for the arches this source serves whose index does not already name an
        // object from it.
        let needed = |a: &'static Arch| {
            let other = Ctx {
                s: self.s,
                source: self.source,
                arch: a,
            };
            self.source.serves(a, self.s.host) && other.reuse().is_none()
        };
        self.s
            .batch
            .scan(self.s.cache, self.source, &path, format, template, &needed);
        if let Some(x) = self.s.batch.take(self.source, self.arch) {
            return Ok(self.finish(
                x.temp,
                x.sha256,
                x.size,
                Some(url),
                Some(remote.sha256.clone()),
            ));
        }
        self.extract_one(&path, format, member, url, &remote.sha256)
    }

    /// One member, in its own pass; relative symlinks (Debian's alias names such as
    /// qemu-arm64 -> qemu-aarch64) are followed with one more pass each.
    fn extract_one(
        &self,
        path: &Path,
        format: ArchiveFormat,
        member: &str,
        url: String,
        archive_sha256: &str,
    ) -> Outcome {
        let mut t = match self.s.cache.temp("sha256") {
            Ok(t) => t,
            Err(e) => return Ok(Err(self.cache_err(e))),
        };
        let mut wanted = member.to_string();
        for _ in 0..4 {
            let file = match self.s.cache.open_file(path) {
                Ok(f) => io::BufReader::with_capacity(1 << 16, f),
                Err(e) => {
                    return Ok(Err(
                        self.setup(format!("cannot open {}: {e}", path.display()))
                    ))
                }
            };
            let mut w = HashingFile::new(&mut t.file);
            let max = self.s.config.download.max_bytes;
            match archive::extract_member(format, file, &wanted, &mut w, max) {
                Err(ArchiveError::Missing { .. }) => {
                    return Err(Miss(format!("no member {wanted}")))
                }
                Err(ArchiveError::Link { target, .. }) if is_plain_relative(&target) => {
                    wanted = match wanted.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target,
                    };
                    if let Err(e) = t
                        .file
                        .set_len(0)
                        .and_then(|_| io::Seek::rewind(&mut t.file))
                    {
                        return Ok(Err(
                            self.setup(format!("cannot reset {}: {e}", t.path.display()))
                        ));
                    }
                }
                Err(error) => return Ok(Err(self.archive_error(error))),
                Ok(_) => {
                    let (sha, n) = w.finish();
                    return Ok(self.finish(t, sha, n, Some(url), Some(archive_sha256.into())));
                }
            }
        }
        Ok(Err(self.archive_error(ArchiveError::Link {
            member: member.into(),
            target: wanted,
        })))
    }

    /// A local file: opened once under the trust rule (it and every directory above it
    /// root's alone), and copied from that same handle, so what is checked is what is
    /// copied. A file other users can change is refused before anything runs it.
    fn local(&self, path: &Path) -> Outcome {
        let src = match crate::trust::open_file(path) {
            Ok(tf) => tf,
            Err(e) if e.is_missing() => {
                return Err(Miss(format!("{} does not exist", path.display())))
            }
            Err(e) => {
                return Ok(Err(SupplyError::Refused {
                    arch: self.arch.qemu.into(),
                    source_name: self.name(),
                    what: e.to_string(),
                }))
            }
        };
        let mut t = match self.s.cache.temp("sha256") {
            Ok(t) => t,
            Err(e) => return Ok(Err(self.cache_err(e))),
        };
        let mut w = HashingFile::new(&mut t.file);
        if let Err(e) = io::copy(&mut &src.file, &mut w) {
            return Ok(Err(
                self.setup(format!("copying {} into the cache: {e}", path.display()))
            ));
        }
        let (sha, n) = w.finish();
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
    ) -> Result<Done, SupplyError> {
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
        if cache.verified_object(&sha).is_some() {
            drop(t);
            (self.s.check)(&dest, self.s.host).map_err(refused)?;
        } else {
            cache.seal(&t, 0o755).map_err(|e| self.cache_err(e))?;
            (self.s.check)(&t.path, self.s.host).map_err(refused)?;
            cache.commit(t, &dest).map_err(|e| self.cache_err(e))?;
        }
        // The version (a process start) and the index entry are done for all arches at
        // once by `Supplier::provision`.
        tracing::info!(arch = self.arch.qemu, path = %dest.display(), "interpreter committed");
        Ok(Done::New(IndexEntry {
            arch: self.arch.qemu.into(),
            sha256: sha,
            path: dest,
            size,
            source: self.source.describe(self.arch),
            url,
            archive_sha256,
            version: None,
        }))
    }
}

/// A link target inside the same tree: no absolute path, no `..`.
fn is_plain_relative(target: &str) -> bool {
    !target.is_empty() && !target.starts_with('/') && !target.split('/').any(|c| c == "..")
}
