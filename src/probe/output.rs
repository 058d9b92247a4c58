//! What a probe prints, parsed and judged. Pure: bytes in, values out.
//!
//! A probe prints exactly one line: `BINFMTD-PROBE argc=HH argv0=HH arch=NAME\n`, where
//! each HH is two lowercase hex digits computed at run time (argc's low byte, and the
//! first byte of argv[0]) and NAME was baked in when the program was built.

use super::ProbeError;

pub const MARKER: &str = "BINFMTD-PROBE";

/// A parsed probe line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The arch name baked into the program (the row's qemu name).
    pub arch: String,
    /// argc as the program saw it (low byte).
    pub argc: u8,
    /// The first byte of argv[0] as the program saw it (0 for an empty argv[0]).
    pub argv0_byte: u8,
}

/// How argv[0] reached the program, judged from argc and argv[0]'s first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Argv0Mode {
    /// argc as given and argv[0] as given: P is set and the interpreter understands it
    /// (or nothing sat between exec and the program).
    Preserved,
    /// argc as given but argv[0] is something else (the program's path): no P flag.
    Replaced,
    /// argc one larger than given: the entry has P but the interpreter does not know it,
    /// so it ran the program with the path AND the original argv[0] as arguments.
    Shifted,
    /// argc neither as given nor one larger: arguments were mangled some other way.
    Unexpected,
}

impl Report {
    /// Judge the run that passed `argv0_given` and `args_given` further arguments.
    /// Run probes with an argv[0] whose first byte no path starts with (e.g. `@probe`),
    /// so Preserved and Replaced cannot be confused.
    pub fn argv0_mode(&self, argv0_given: &str, args_given: usize) -> Argv0Mode {
        // The program reports argc's low byte only, so compare modulo 256.
        let expected = (1 + args_given) as u8;
        let first = argv0_given.bytes().next().unwrap_or(0);
        if self.argc == expected {
            if self.argv0_byte == first {
                Argv0Mode::Preserved
            } else {
                Argv0Mode::Replaced
            }
        } else if self.argc == expected.wrapping_add(1) {
            Argv0Mode::Shifted
        } else {
            Argv0Mode::Unexpected
        }
    }
}

/// Parse a probe's whole stdout. Anything but exactly one well-formed line is an error
/// that quotes what was printed.
pub fn parse_output(stdout: &[u8]) -> Result<Report, ProbeError> {
    let wrong = |reason: &str| ProbeError::WrongOutput {
        reason: reason.to_string(),
        output: quote(stdout),
    };
    let text = std::str::from_utf8(stdout).map_err(|_| wrong("not UTF-8"))?;
    let line = text
        .strip_suffix('\n')
        .ok_or_else(|| wrong("no complete line"))?;
    if line.contains('\n') {
        return Err(wrong("more than one line"));
    }
    let mut words = line.split(' ');
    if words.next() != Some(MARKER) {
        return Err(wrong("marker missing"));
    }
    let argc = field(words.next(), "argc=").ok_or_else(|| wrong("bad argc field"))?;
    let argv0 = field(words.next(), "argv0=").ok_or_else(|| wrong("bad argv0 field"))?;
    let arch = words
        .next()
        .and_then(|w| w.strip_prefix("arch="))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| wrong("bad arch field"))?;
    if words.next().is_some() {
        return Err(wrong("trailing fields"));
    }
    Ok(Report {
        arch: arch.to_string(),
        argc,
        argv0_byte: argv0,
    })
}

/// `name=HH` with exactly two lowercase hex digits.
fn field(word: Option<&str>, name: &str) -> Option<u8> {
    let digits = word?.strip_prefix(name)?;
    let ok = digits.len() == 2
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| u8::from_str_radix(digits, 16).ok())?
}

/// At most 200 bytes of output, escaped, for error messages.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const LIMIT: usize = 200;
    let shown = &bytes[..bytes.len().min(LIMIT)];
    let mut s: String = shown.escape_ascii().to_string();
    if bytes.len() > LIMIT {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    format!("\"{s}\"")
}
