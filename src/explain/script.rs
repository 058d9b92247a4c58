//! `#!` lines, parsed the way the kernel's binfmt_script does.

use super::ExplainError;

/// The kernel reads this many bytes of a file to find the `#!` line (BINPRM_BUF_SIZE
/// since Linux 5.1); an interpreter path not finished inside it is refused.
pub const SHEBANG_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shebang {
    /// The interpreter path, exactly as written (the kernel does not search PATH).
    pub interpreter: String,
    /// Everything after the interpreter, as ONE argument (the kernel does not split it).
    pub argument: Option<String>,
}

impl Shebang {
    /// For `#!/usr/bin/env CMD`, the command env will look up in PATH.
    pub fn env_command(&self) -> Option<&str> {
        let is_env = self.interpreter.rsplit('/').next() == Some("env");
        let arg = self.argument.as_deref()?;
        // `env -S "cmd args"` splits its argument; the first word that is not an option is the command.
        let cmd = arg.split_whitespace().find(|w| !w.starts_with('-'))?;
        is_env.then_some(cmd)
    }
}

/// Parse the first line of a file that starts with `#!`.
pub fn parse(head: &[u8]) -> Result<Shebang, ExplainError> {
    let bad = |what: &str| ExplainError::BadScript {
        what: what.to_string(),
    };
    let body = head
        .strip_prefix(b"#!")
        .ok_or_else(|| bad("no #! at the start"))?;
    let body = &body[..body.len().min(SHEBANG_MAX - 2)];
    let line_end = body.iter().position(|&b| b == b'\n');
    let line = &body[..line_end.unwrap_or(body.len())];
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !is_blank(b)).unwrap_or(line.len());
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|b| is_blank(b) || *b == 0)
        .unwrap_or(rest.len());
    if end == 0 {
        return Err(bad("the #! line names no interpreter"));
    }
    if line_end.is_none() && end == rest.len() && head.len() >= SHEBANG_MAX {
        return Err(bad(&format!(
            "the interpreter path does not end within the first {SHEBANG_MAX} bytes"
        )));
    }
    let interpreter = String::from_utf8_lossy(&rest[..end]).into_owned();
    let arg = rest[end..].split(|&b| b == 0).next().unwrap_or_default();
    // Only blanks are trimmed: a DOS `\r` stays, as the kernel keeps it.
    let arg = String::from_utf8_lossy(arg)
        .trim_matches([' ', '\t'])
        .to_string();
    Ok(Shebang {
        interpreter,
        argument: (!arg.is_empty()).then_some(arg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_parse_like_the_kernel() {
        let s = parse(b"#!/bin/sh\necho hi\n").unwrap();
        assert_eq!((s.interpreter.as_str(), s.argument), ("/bin/sh", None));
        let s = parse(b"#! /usr/bin/env  python3 -u \t\n").unwrap();
        assert_eq!(s.interpreter, "/usr/bin/env");
        // One argument, not split: the kernel passes "python3 -u" as a single word.
        assert_eq!(s.argument.as_deref(), Some("python3 -u"));
        assert_eq!(s.env_command(), Some("python3"));
        let s = parse(b"#!/usr/bin/env -S perl -w\n").unwrap();
        assert_eq!(s.env_command(), Some("perl"));
        assert_eq!(parse(b"#!/bin/bash").unwrap().interpreter, "/bin/bash");
        // A script saved with DOS line ends asks for "/bin/sh\r", which does not exist.
        assert_eq!(parse(b"#!/bin/sh\r\n").unwrap().interpreter, "/bin/sh\r");
        assert_eq!(parse(b"#!/bin/sh -e\n").unwrap().env_command(), None);
    }

    #[test]
    fn empty_or_unterminated_interpreters_are_refused() {
        assert!(parse(b"#!\n").is_err());
        assert!(parse(b"#!   \n").is_err());
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        assert!(parse(&long).is_err());
    }
}
