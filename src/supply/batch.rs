//! One pass over an archive for every requested arch it serves. Decoding a .deb's
//! data.tar.xz takes seconds; doing it once per arch made `--arch all` take minutes.
//! Extracted members wait here, as temp files in the cache, until their arch's turn
//! verifies and commits them; whatever is not taken is removed when the run ends.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::Path;

use crate::arch::Arch;
use crate::archive::{self, Found};
use crate::cache::{Cache, HashingFile, TempFile};
use crate::config::{member_for, ArchiveFormat, Source};

pub(super) struct Extracted {
    pub temp: TempFile,
    pub sha256: String,
    pub size: u64,
}

#[derive(Default)]
pub(super) struct Batches {
    requested: RefCell<Vec<&'static Arch>>,
    scanned: RefCell<HashSet<String>>,
    ready: RefCell<HashMap<(String, &'static str), Extracted>>,
    max_bytes: Cell<u64>,
}

impl Batches {
    /// The arches of this run, and the size cap (download.max-bytes) for each member.
    pub fn set_requested(&self, arches: &[&'static Arch], max_bytes: u64) {
        *self.requested.borrow_mut() = arches.to_vec();
        self.max_bytes.set(max_bytes);
    }

    pub fn take(&self, source: &Source, arch: &Arch) -> Option<Extracted> {
        self.ready
            .borrow_mut()
            .remove(&(source.name.clone(), arch.qemu))
    }

    /// Extract `template` for every requested arch that `needed` says this source must
    /// supply now (it serves the arch, and nothing is cached for it), in one pass; at most
    /// once per source per run. Failures are
    /// left to the per-arch path, which reports them with their arch.
    pub fn scan(
        &self,
        cache: &Cache,
        source: &Source,
        archive: &Path,
        format: ArchiveFormat,
        template: &str,
        needed: &dyn Fn(&'static Arch) -> bool,
    ) {
        if !self.scanned.borrow_mut().insert(source.name.clone()) {
            return;
        }
        let arches: Vec<&'static Arch> = self
            .requested
            .borrow()
            .iter()
            .copied()
            .filter(|a| needed(a))
            .collect();
        if arches.len() < 2 {
            return;
        }
        let Ok(mut temps) = arches
            .iter()
            .map(|_| cache.temp("sha256"))
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        let members: Vec<String> = arches.iter().map(|a| member_for(template, a)).collect();
        let mut outs: Vec<HashingFile> = temps
            .iter_mut()
            .map(|t| HashingFile::new(&mut t.file))
            .collect();
        let max = self.max_bytes.get();
        let found = one_pass(cache, archive, format, &members, &mut outs, max);
        let sums: Vec<(String, u64)> = outs.into_iter().map(HashingFile::finish).collect();
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(source = %source.name, error = %e, "one-pass extraction failed; extracting per arch");
                return;
            }
        };
        let mut ready = self.ready.borrow_mut();
        for (((arch, temp), (sha256, size)), f) in arches.iter().zip(temps).zip(sums).zip(found) {
            if matches!(f, Found::Copied(_)) {
                ready.insert(
                    (source.name.clone(), arch.qemu),
                    Extracted { temp, sha256, size },
                );
            }
        }
    }
}

fn one_pass(
    cache: &Cache,
    archive: &Path,
    format: ArchiveFormat,
    members: &[String],
    outs: &mut [HashingFile],
    max_bytes: u64,
) -> Result<Vec<Found>, String> {
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let f = cache
        .open_file(archive)
        .map_err(|e| format!("{}: {e}", archive.display()))?;
    let f = BufReader::with_capacity(1 << 16, f);
    archive::extract_members(format, f, &names, outs, max_bytes).map_err(|e| e.to_string())
}
