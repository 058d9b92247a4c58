//! qemu's version, for `status`: run the (host-native) interpreter with `--version`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `qemu-riscv64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)` -> `10.0.13`. Pure.
pub fn parse_qemu_version(stdout: &str) -> Option<String> {
    let first = stdout.lines().next()?;
    let rest = first.split_once(" version ")?.1;
    let v = rest.split_whitespace().next()?;
    v.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| v.to_string())
}

/// Run `path --version` for at most 5 s. Failing to learn the version is not an error:
/// the interpreter already passed its checks, and its probe decides whether it works.
pub fn read(path: &Path) -> Option<String> {
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tracing::debug!(path = %path.display(), %e, "cannot run --version"))
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(path = %path.display(), "--version did not finish in 5 s");
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::parse_qemu_version;

    #[test]
    fn parses_debian_and_upstream_banners() {
        let cases = [
            ("qemu-riscv64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)\nCopyright (c) 2003-2025 Fabrice Bellard\n", Some("10.0.13")),
            ("qemu-aarch64 version 7.2.0 (Debian 1:7.2+dfsg-7+deb12u18)\n", Some("7.2.0")),
            ("qemu-x86_64 version 9.1.50\n", Some("9.1.50")),
            ("BusyBox v1.35.0 multi-call binary.\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_qemu_version(text).as_deref(), want, "{text:?}");
        }
    }
}
