//! The embedded default source, used when no config file lists one for this host.
//!
//! Kept as TOML and parsed by the same code as the user's file, so it cannot drift from
//! the format; a unit test parses it.

use super::Source;

/// The default sources as TOML (also printed by the docs as an example of pinning).
pub const EMBEDDED_TOML: &str = include_str!("default.toml");

/// The names the embedded sources use: no user source may take one, or the cache index
/// and `status` would attribute its files to the embedded pin.
pub fn embedded_names() -> Vec<String> {
    let raw: super::RawConfig =
        toml::from_str(EMBEDDED_TOML).expect("the embedded default source is valid TOML");
    raw.sources.into_iter().filter_map(|s| s.name).collect()
}

/// Debian trixie's static qemu-user 10.0.13 for amd64 and arm64 hosts.
pub fn embedded_sources() -> Vec<Source> {
    let raw: super::RawConfig =
        toml::from_str(EMBEDDED_TOML).expect("the embedded default source is valid TOML");
    super::validate::with_reserved_names(&raw, &[])
        .expect("the embedded default source passes validation")
        .sources
}
