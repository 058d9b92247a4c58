//! "Did this exec run emulated?" Pure, over what the trace said and what the file says.
//!
//! Two signals, cheapest first:
//! - `sched_prepare_exec`'s `interp` is an enabled entry's interpreter in the binfmt_misc
//!   instance binfmtd watches: emulated, and the entry's format names the arch.
//! - Otherwise the program's ELF header: a foreign arch whose exec succeeded ran through
//!   some binfmt_misc entry. This covers processes in a user namespace with its own
//!   binfmt_misc instance, whose entries (and interpreter paths) the watched one lacks.

use crate::arch::{self, Arch};
use crate::entry::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NotEmulated,
    /// The arch, when the table has a row for the format.
    Emulated(Option<&'static Arch>),
    /// Only the program's header can tell.
    NeedHeader,
}

/// Judge from the trace alone. `interp` is None on kernels without `sched_prepare_exec`.
pub fn from_interp(filename: &str, interp: Option<&str>, entries: &[Entry]) -> Verdict {
    let Some(interp) = interp else {
        return Verdict::NeedHeader;
    };
    // The kernel loads the file itself: a native ELF (the common case, no file read).
    if interp == filename {
        return Verdict::NotEmulated;
    }
    match entries
        .iter()
        .find(|e| e.enabled && e.interpreter.as_os_str() == interp)
    {
        Some(e) => Verdict::Emulated(arch_of_entry(e)),
        // A `#!` script, or an entry of another binfmt_misc instance: the header decides.
        None => Verdict::NeedHeader,
    }
}

/// Judge from the program's first bytes: a foreign ELF that exec'd ran emulated.
pub fn from_header(header: &[u8], native: &[&'static Arch]) -> Verdict {
    match arch::from_header(header) {
        Some(a) if !native.contains(&a) => Verdict::Emulated(Some(a)),
        _ => Verdict::NotEmulated,
    }
}

/// The arch-table row whose magic and mask the entry uses.
pub fn arch_of_entry(e: &Entry) -> Option<&'static Arch> {
    arch::ARCHES
        .iter()
        .find(|a| e.same_format_as(a.magic, a.mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::parse_entry;
    use crate::explain::verdict::Node;

    fn aarch64_entry(enabled: bool) -> Entry {
        let a = arch::lookup("aarch64").unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let text = format!(
            "{}\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POCF\noffset 0\nmagic {}\nmask {}\n",
            if enabled { "enabled" } else { "disabled" },
            hex(a.magic),
            hex(a.mask)
        );
        parse_entry("qemu-aarch64", &text).unwrap()
    }

    fn native() -> Vec<&'static Arch> {
        Node::default_native(arch::lookup("x86_64").unwrap())
    }

    #[test]
    fn interp_equal_to_filename_is_native_without_reading() {
        let v = from_interp("/usr/bin/cat", Some("/usr/bin/cat"), &[aarch64_entry(true)]);
        assert_eq!(v, Verdict::NotEmulated);
    }

    #[test]
    fn registered_interpreter_names_the_arch() {
        let v = from_interp(
            "/bin/busybox",
            Some("/usr/bin/qemu-aarch64-static"),
            &[aarch64_entry(true)],
        );
        assert_eq!(v, Verdict::Emulated(Some(arch::lookup("aarch64").unwrap())));
    }

    #[test]
    fn disabled_entry_or_unknown_interp_needs_the_header() {
        let v = from_interp(
            "/x",
            Some("/usr/bin/qemu-aarch64-static"),
            &[aarch64_entry(false)],
        );
        assert_eq!(v, Verdict::NeedHeader);
        // Another instance's interpreter path, or a script's shell.
        assert_eq!(
            from_interp("/x", Some("/run/qemu/q"), &[]),
            Verdict::NeedHeader
        );
        assert_eq!(from_interp("/x", None, &[]), Verdict::NeedHeader);
    }

    #[test]
    fn foreign_elf_header_is_emulated_native_and_scripts_are_not() {
        let a64 = arch::lookup("aarch64").unwrap();
        assert_eq!(
            from_header(a64.magic, &native()),
            Verdict::Emulated(Some(a64))
        );
        let i386 = arch::lookup("i386").unwrap();
        assert_eq!(from_header(i386.magic, &native()), Verdict::NotEmulated);
        let x86 = arch::lookup("x86_64").unwrap();
        assert_eq!(from_header(x86.magic, &native()), Verdict::NotEmulated);
        assert_eq!(from_header(b"#!/bin/sh\n", &native()), Verdict::NotEmulated);
        assert_eq!(from_header(b"", &native()), Verdict::NotEmulated);
    }

    #[test]
    fn the_entry_maps_back_to_its_row() {
        assert_eq!(
            arch_of_entry(&aarch64_entry(true)).map(|a| a.qemu),
            Some("aarch64")
        );
    }
}
