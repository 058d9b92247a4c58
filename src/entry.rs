//! binfmt_misc entries as values: the register string we write, and the entry files we read.
//!
//! Pure: nothing here touches the kernel. `kernel.rs` moves these bytes in and out of
//! `<mount>/register` and `<mount>/<name>`.

use std::fmt;
use std::path::PathBuf;

/// Entries whose name starts with this are binfmtd's; every other entry belongs to
/// another tool and is never removed or rewritten unless the operator says so.
pub const OWN_PREFIX: &str = "binfmtd-";

/// The kernel rejects a register write longer than this.
const MAX_REGISTER_LEN: usize = 1920;
/// Older kernels read only 128 bytes of a file to match against (BINPRM_BUF_SIZE).
const MAX_MATCH_END: usize = 128;
/// Paths longer than this are truncated by some kernels' entry display; refuse them.
const MAX_INTERPRETER_LEN: usize = 127;

/// Registration flags. The kernel prints them in the order P O C F.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Flags {
    /// P: preserve argv[0] (the interpreter must understand AT_FLAGS_PRESERVE_ARGV0).
    pub preserve_argv0: bool,
    /// O: hand the interpreter an open fd of the binary.
    pub open_binary: bool,
    /// C: credentials from the binary (setuid works; the emulator runs with them). Implies O.
    pub credentials: bool,
    /// F: open the interpreter now, so other mount namespaces can use it.
    pub fix_binary: bool,
}

impl Flags {
    /// Parse the letters as they appear in an entry file or a register string.
    pub fn parse(s: &str) -> Result<Flags, String> {
        match Flags::parse_known(s) {
            (f, unknown) if unknown.is_empty() => Ok(f),
            (_, unknown) => Err(format!("unknown binfmt_misc flag(s) {unknown:?} in {s:?}")),
        }
    }

    /// The flags binfmtd knows, and every other letter as it appeared: a newer kernel may
    /// show flags this build does not know, and that must not make its entries unreadable.
    pub fn parse_known(s: &str) -> (Flags, String) {
        let (mut f, mut unknown) = (Flags::default(), String::new());
        for c in s.trim().chars() {
            match c {
                'P' => f.preserve_argv0 = true,
                'O' => f.open_binary = true,
                'C' => f.credentials = true,
                'F' => f.fix_binary = true,
                other => unknown.push(other),
            }
        }
        (f, unknown)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, 'P'),
            (self.open_binary, 'O'),
            (self.credentials, 'C'),
            (self.fix_binary, 'F'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// How an entry recognises files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Magic {
        offset: usize,
        magic: Vec<u8>,
        mask: Vec<u8>,
    },
    Extension(String),
}

/// One entry as read back from `<mount>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: Flags,
    /// Flag letters this build does not know (from a newer kernel), kept to be reported.
    pub unknown_flags: String,
    pub matcher: Matcher,
}

impl Entry {
    pub fn is_own(&self) -> bool {
        self.name.starts_with(OWN_PREFIX)
    }

    /// Every flag letter the kernel showed: the known ones in kernel order, then the rest.
    pub fn flag_letters(&self) -> String {
        format!("{}{}", self.flags, self.unknown_flags)
    }

    /// Would the kernel hand a file starting with `header` to this entry (if enabled)?
    pub fn matches_header(&self, header: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => header.get(*offset..offset + magic.len()).is_some_and(|h| {
                h.iter()
                    .zip(magic)
                    .zip(mask)
                    .all(|((h, m), k)| h & k == m & k)
            }),
            Matcher::Extension(_) => false,
        }
    }

    /// Same magic and mask (compared under the mask, as the kernel does) as `arch`.
    pub fn same_format_as(&self, magic: &[u8], mask: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Magic {
                offset: 0,
                magic: m,
                mask: k,
            } => {
                k.len() == mask.len()
                    && k == mask
                    && m.iter().zip(k).zip(magic).all(|((a, k), b)| a & k == b & k)
            }
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("binfmt_misc entry {name:?}: {what}")]
    Parse { name: String, what: String },
    #[error("cannot build a registration for {name:?}: {what}")]
    Encode { name: String, what: String },
}

/// Parse the text of `<mount>/<name>`.
pub fn parse_entry(name: &str, text: &str) -> Result<Entry, EntryError> {
    let err = |what: String| EntryError::Parse {
        name: name.to_string(),
        what,
    };
    let (mut enabled, mut interpreter) = (None, None);
    let (mut flags, mut unknown_flags) = (Flags::default(), String::new());
    let (mut offset, mut magic, mut mask, mut ext) = (0usize, None, None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "enabled" => enabled = Some(true),
            "disabled" => enabled = Some(false),
            "interpreter" => interpreter = Some(PathBuf::from(value)),
            "flags:" => (flags, unknown_flags) = Flags::parse_known(value),
            "offset" => {
                offset = value
                    .parse()
                    .map_err(|e| err(format!("offset {value:?}: {e}")))?
            }
            "magic" => magic = Some(unhex(value).map_err(err)?),
            "mask" => mask = Some(unhex(value).map_err(err)?),
            "extension" => ext = Some(value.trim_start_matches('.').to_string()),
            _ => {} // Newer kernels may add lines; ignoring them keeps us forward-compatible.
        }
    }
    let matcher = match (magic, ext) {
        (Some(magic), _) => {
            let mask = mask.unwrap_or_else(|| vec![0xff; magic.len()]);
            Matcher::Magic {
                offset,
                magic,
                mask,
            }
        }
        (None, Some(e)) => Matcher::Extension(e),
        (None, None) => return Err(err("neither magic nor extension".into())),
    };
    Ok(Entry {
        name: name.to_string(),
        enabled: enabled.ok_or_else(|| err("no enabled/disabled line".into()))?,
        interpreter: interpreter.ok_or_else(|| err("no interpreter line".into()))?,
        flags,
        unknown_flags,
        matcher,
    })
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// A registration we are about to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub interpreter: PathBuf,
    pub flags: Flags,
}

impl Registration {
    /// binfmtd's own registration for an arch: named `binfmtd-<qemu>`.
    pub fn own(arch: &crate::arch::Arch, interpreter: PathBuf, flags: Flags) -> Registration {
        Registration {
            name: format!("{OWN_PREFIX}{}", arch.qemu),
            magic: arch.magic.to_vec(),
            mask: arch.mask.to_vec(),
            interpreter,
            flags,
        }
    }

    /// The bytes to write to `<mount>/register`.
    ///
    /// Every magic and mask byte is written as `\xHH`: the kernel stops at the first raw
    /// NUL and treats the delimiter specially, so escaping everything is the one form
    /// that is always right.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let err = |what: String| EntryError::Encode {
            name: self.name.clone(),
            what,
        };
        if self.name.is_empty() || self.name == "." || self.name == ".." {
            return Err(err(
                "empty, \".\" or \"..\" is not a valid entry name".into()
            ));
        }
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(err(
                "entry names may hold only letters, digits, '-', '_' and '.'".into(),
            ));
        }
        if self.magic.is_empty() || self.magic.len() != self.mask.len() {
            return Err(err(
                "magic and mask must be non-empty and equally long".into()
            ));
        }
        if self.magic.len() > MAX_MATCH_END {
            return Err(err(format!("magic longer than {MAX_MATCH_END} bytes")));
        }
        let interp = self
            .interpreter
            .to_str()
            .ok_or_else(|| err("interpreter path is not UTF-8".into()))?;
        if !interp.starts_with('/') {
            return Err(err(format!(
                "interpreter {interp:?} must be an absolute path"
            )));
        }
        if interp.len() > MAX_INTERPRETER_LEN {
            return Err(err(format!(
                "interpreter path {interp:?} is longer than {MAX_INTERPRETER_LEN} bytes"
            )));
        }
        if interp.contains([':', '\n', '\\']) || interp.chars().any(char::is_control) {
            return Err(err(format!(
                "interpreter path {interp:?} contains ':', '\\' or a control character; move the interpreter"
            )));
        }
        let esc = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
        let s = format!(
            ":{}:M::{}:{}:{}:{}",
            self.name,
            esc(&self.magic),
            esc(&self.mask),
            interp,
            self.flags
        );
        if s.len() > MAX_REGISTER_LEN {
            return Err(err(format!(
                "register string is {} bytes, over the kernel's {MAX_REGISTER_LEN}",
                s.len()
            )));
        }
        Ok(s.into_bytes())
    }

    /// Does an entry read back from the kernel say exactly what this registration said?
    pub fn is_realised_by(&self, e: &Entry) -> bool {
        e.name == self.name
            && e.interpreter == self.interpreter
            && e.flags == self.flags
            && e.matcher
                == Matcher::Magic {
                    offset: 0,
                    magic: self.magic.clone(),
                    mask: self.mask.clone(),
                }
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
