//! glibc versions as they appear in symbol-version tables (`GLIBC_2.38`).

use std::fmt;

/// A glibc symbol version, `GLIBC_2.38` -> 2.38. Ordered numerically (2.9 < 2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion(pub Vec3);

/// major, minor, patch (`GLIBC_2.3.4` has a patch; most have 0).
pub type Vec3 = [u32; 3];

impl GlibcVersion {
    /// Parse a version-table name; `GLIBC_PRIVATE` and `GLIBC_ABI_DT_RELR` are not versions.
    pub fn from_symbol_version(name: &[u8]) -> Option<GlibcVersion> {
        GlibcVersion::parse(std::str::from_utf8(name.strip_prefix(b"GLIBC_")?).ok()?)
    }

    /// Parse `2.38` or `2.3.4`.
    pub fn parse(s: &str) -> Option<GlibcVersion> {
        let mut out = [0u32; 3];
        let mut parts = s.split('.');
        for slot in out.iter_mut() {
            match parts.next() {
                Some(p) => *slot = p.parse().ok()?,
                None => break,
            }
        }
        (parts.next().is_none() && s.contains('.')).then_some(GlibcVersion(out))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        if c == 0 {
            write!(f, "{a}.{b}")
        } else {
            write!(f, "{a}.{b}.{c}")
        }
    }
}

impl serde::Serialize for GlibcVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_order_numerically_and_skip_non_versions() {
        let v = |s: &[u8]| GlibcVersion::from_symbol_version(s);
        assert!(v(b"GLIBC_2.9") < v(b"GLIBC_2.10"));
        assert!(v(b"GLIBC_2.3.4") > v(b"GLIBC_2.3"));
        assert_eq!(v(b"GLIBC_2.38").unwrap().to_string(), "2.38");
        assert_eq!(v(b"GLIBC_2.3.4").unwrap().to_string(), "2.3.4");
        for not_a_version in [
            &b"GLIBC_PRIVATE"[..],
            b"GLIBC_ABI_DT_RELR",
            b"GCC_3.0",
            b"GLIBC_2",
        ] {
            assert_eq!(
                v(not_a_version),
                None,
                "{:?}",
                String::from_utf8_lossy(not_a_version)
            );
        }
    }
}
