//! What the dynamic loader reads from an ELF file: DT_NEEDED, DT_SONAME, DT_RPATH,
//! DT_RUNPATH, DF_1_NODEFLIB, and the symbol-version tables (SHT_GNU_VERNEED: the versions
//! this file needs from each library; SHT_GNU_VERDEF: the versions it defines).
//!
//! Pure over `object::ReadRef`, like the rest of the ELF parsing.

use object::elf;
use object::read::elf::{Dyn, FileHeader, SectionTable};
use object::{Endianness, ReadRef};

use super::ExplainError;

/// The loader-relevant dynamic facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dynamic {
    /// DT_NEEDED, in order: the libraries the loader maps for this file.
    pub needed: Vec<String>,
    /// DT_SONAME: the name other files' DT_NEEDED use for this library.
    pub soname: Option<String>,
    /// DT_RPATH entries (`:`-separated in the file), tokens like `$ORIGIN` unexpanded.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries. When present, glibc ignores this file's DT_RPATH.
    pub runpath: Vec<String>,
    /// DF_1_NODEFLIB: the loader skips ld.so.cache and the default directories.
    #[serde(skip)]
    pub nodeflib: bool,
    /// SHT_GNU_VERNEED: for each library file named there, the versions needed from it.
    #[serde(skip)]
    pub version_needs: Vec<VersionNeed>,
    /// SHT_GNU_VERDEF: the version names this file defines (its own SONAME entry included).
    #[serde(skip)]
    pub version_defs: Vec<String>,
}

/// The versions a file needs from one library (`libstdc++.so.6`: GLIBCXX_3.4.32, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNeed {
    /// vn_file: the library's name as in DT_NEEDED.
    pub file: String,
    /// (version name, weak): a weak need missing is only a warning for the loader.
    pub versions: Vec<(String, bool)>,
}

impl Dynamic {
    /// Every version name needed, with the library it is needed from.
    pub fn needs(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.version_needs.iter().flat_map(|n| {
            n.versions
                .iter()
                .map(move |(v, weak)| (n.file.as_str(), v.as_str(), *weak))
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn split_path(bytes: &[u8]) -> Vec<String> {
    text(bytes)
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Read the dynamic section and the version tables. A file without them (static, or a
/// debug-info file whose sections hold no data) gives an empty `Dynamic`.
pub fn parse<'d, H, R>(
    sections: &SectionTable<'d, H, R>,
    e: Endianness,
    data: R,
) -> Result<Dynamic, ExplainError>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let mut d = Dynamic::default();
    if let Ok(Some((entries, link))) = sections.dynamic(e, data) {
        if let Ok(strings) = sections.strings(e, data, link) {
            for entry in entries {
                let string = || {
                    let off = entry.val32(e)?;
                    strings.get(off).ok().map(text)
                };
                match entry.tag32(e) {
                    Some(elf::DT_NEEDED) => d.needed.extend(string()),
                    Some(elf::DT_SONAME) => d.soname = string(),
                    Some(elf::DT_RPATH) => {
                        d.rpath = string().map_or(vec![], |s| split_path(s.as_bytes()))
                    }
                    Some(elf::DT_RUNPATH) => {
                        d.runpath = string().map_or(vec![], |s| split_path(s.as_bytes()))
                    }
                    Some(elf::DT_FLAGS_1) => {
                        let v: u64 = entry.d_val(e).into();
                        d.nodeflib = v & u64::from(elf::DF_1_NODEFLIB) != 0;
                    }
                    _ => {}
                }
            }
        }
    }
    read_versions(sections, e, data, &mut d)?;
    Ok(d)
}

/// SHT_GNU_VERNEED (versions needed, per library file) and SHT_GNU_VERDEF (versions
/// defined) into `d`.
fn read_versions<'d, H, R>(
    sections: &SectionTable<'d, H, R>,
    e: Endianness,
    data: R,
    d: &mut Dynamic,
) -> Result<(), ExplainError>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let obj = ExplainError::object;
    if let Some((mut it, link)) = sections.gnu_verneed(e, data).map_err(obj)? {
        let strings = sections.strings(e, data, link).map_err(obj)?;
        while let Some((need, mut aux)) = it.next().map_err(obj)? {
            let mut versions = vec![];
            while let Some(a) = aux.next().map_err(obj)? {
                let weak = a.vna_flags.get(e) & elf::VER_FLG_WEAK != 0;
                versions.push((text(a.name(e, strings).map_err(obj)?), weak));
            }
            let file = text(need.file(e, strings).map_err(obj)?);
            d.version_needs.push(VersionNeed { file, versions });
        }
    }
    if let Some((mut it, link)) = sections.gnu_verdef(e, data).map_err(obj)? {
        let strings = sections.strings(e, data, link).map_err(obj)?;
        while let Some((_, mut aux)) = it.next().map_err(obj)? {
            // The first verdaux names the version; later ones name its parents.
            if let Some(a) = aux.next().map_err(obj)? {
                d.version_defs.push(text(a.name(e, strings).map_err(obj)?));
            }
        }
    }
    Ok(())
}
