//! qemu's version, for `status`: run the (host-native) interpreter with `--version`.

use std::path::Path;
use std::time::Duration;

/// `qemu-riscv64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)` -> `10.0.13`: the first
/// word of the core's parse, when it is a version number. Pure.
pub fn parse_qemu_version(stdout: &str) -> Option<String> {
    short(&crate::interp::parse_version(stdout)?)
}

fn short(full: &str) -> Option<String> {
    let v = full.split_whitespace().next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// `path --version` within 5 s. Failing to learn the version is not an error: the
/// interpreter already passed its checks, and its probe decides whether it works.
pub fn read(path: &Path) -> Option<String> {
    short(&crate::interp::qemu_version(path, Duration::from_secs(5))?)
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
