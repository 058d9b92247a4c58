//! Architectures: the table (pure data) and every way a user names an entry in it.
//!
//! A user may type a qemu target (`aarch64`), an OCI platform (`linux/arm64`,
//! `linux/arm/v7`), a Kubernetes/GOARCH name (`arm64`, `386`, `loong64`) or a Debian
//! architecture (`armhf`, `ppc64el`). All of them resolve to one row; an unknown name is
//! an error that lists the closest valid names.

mod table;

pub use table::ARCHES;

/// Broad CPU family, used for grouping in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    X86,
    Alpha,
    Arm,
    Sparc,
    Ppc,
    M68k,
    Mips,
    Sh,
    S390,
    Hppa,
    Riscv,
    Xtensa,
    Microblaze,
    OpenRisc,
    Hexagon,
    LoongArch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ElfClass {
    #[serde(rename = "elf32")]
    Elf32,
    #[serde(rename = "elf64")]
    Elf64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// One binfmt_misc target. `magic`/`mask` are the bytes matched at offset 0 of a file.
#[derive(Debug, PartialEq, Eq)]
pub struct Arch {
    /// qemu's target name; also the suffix of our entry name (`binfmtd-<qemu>`).
    pub qemu: &'static str,
    pub family: Family,
    /// The qemu-user binary that runs this format (`qemu-<interpreter>`); i486 runs on qemu-i386.
    pub interpreter: &'static str,
    pub oci: &'static [&'static str],
    pub goarch: Option<&'static str>,
    pub debian: &'static [&'static str],
    pub other_names: &'static [&'static str],
    pub magic: &'static [u8],
    pub mask: &'static [u8],
}

impl Arch {
    pub fn elf_class(&self) -> ElfClass {
        if self.magic[4] == 2 {
            ElfClass::Elf64
        } else {
            ElfClass::Elf32
        }
    }

    pub fn endian(&self) -> Endian {
        if self.magic[5] == 2 {
            Endian::Big
        } else {
            Endian::Little
        }
    }

    /// e_machine, read from the magic in the format's own byte order.
    pub fn elf_machine(&self) -> u16 {
        let b = [self.magic[18], self.magic[19]];
        match self.endian() {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    /// Every name that resolves to this row, qemu name first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.qemu)
            .chain(self.oci.iter().copied())
            .chain(self.goarch)
            .chain(self.debian.iter().copied())
            .chain(self.other_names.iter().copied())
    }

    /// Does a file starting with `header` match this format's magic under its mask,
    /// exactly as the kernel decides it?
    pub fn matches(&self, header: &[u8]) -> bool {
        header.len() >= self.magic.len()
            && self
                .magic
                .iter()
                .zip(self.mask)
                .zip(header)
                .all(|((m, k), h)| h & k == m & k)
    }

    /// The OCI platform string users see in reports (`linux/arm64`), if the format has one.
    pub fn platform(&self) -> Option<&'static str> {
        self.oci.first().copied()
    }
}

/// An arch name that resolves to nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown architecture {name:?}; closest valid names: {}. `binfmtd status` lists every format", suggestions.join(", "))]
pub struct UnknownArch {
    pub name: String,
    pub suggestions: Vec<&'static str>,
}

/// Resolve any user-facing name (case-insensitive) to its table row.
pub fn lookup(name: &str) -> Result<&'static Arch, UnknownArch> {
    let wanted = name.trim().to_ascii_lowercase();
    ARCHES
        .iter()
        .find(|a| a.names().any(|n| n == wanted))
        .ok_or_else(|| UnknownArch {
            name: name.to_string(),
            suggestions: closest(&wanted),
        })
}

/// Resolve a comma-separated list; `all` expands to every row. Duplicates are folded.
pub fn lookup_list(list: &str) -> Result<Vec<&'static Arch>, UnknownArch> {
    let mut out: Vec<&'static Arch> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.eq_ignore_ascii_case("all") {
            return Ok(ARCHES.iter().collect());
        }
        let arch = lookup(part)?;
        if !out.contains(&arch) {
            out.push(arch);
        }
    }
    Ok(out)
}

/// The row whose magic matches the first bytes of a file, if any.
pub fn from_header(header: &[u8]) -> Option<&'static Arch> {
    ARCHES.iter().find(|a| a.matches(header))
}

/// The row for an ELF machine/class/byte order (for objects no magic matches,
/// e.g. relocatable files). MIPS o32 and n32 share these; o32 (listed first) wins.
pub fn from_elf(machine: u16, class: ElfClass, endian: Endian) -> Option<&'static Arch> {
    ARCHES
        .iter()
        .find(|a| a.elf_machine() == machine && a.elf_class() == class && a.endian() == endian)
}

/// The row this binary was compiled for: the CPU it runs on natively.
pub fn host() -> &'static Arch {
    let qemu = match std::env::consts::ARCH {
        "x86" => "i386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "mips" if cfg!(target_endian = "little") => "mipsel",
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        "sparc" => "sparc",
        other => other,
    };
    lookup(qemu).expect("binfmtd is built for a CPU in its own arch table")
}

fn closest(wanted: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = ARCHES
        .iter()
        .flat_map(|a| a.names())
        .map(|n| (distance(wanted, n), n))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance; names are short, so the quadratic table is fine.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
