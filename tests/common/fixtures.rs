//! Foreign-architecture fixtures (fetched by tests/fixtures/fetch.sh) and register strings
//! built from binfmtd's own arch table, for tests that talk to the kernel directly.

use std::path::PathBuf;

use binfmtd::arch::{self, Arch};
use binfmtd::entry::{Flags, Registration};

/// A foreign busybox fixture: the Debian arch it comes from, its row in the arch table and
/// what `uname -m` prints when it runs under qemu.
#[derive(Debug, Clone, Copy)]
pub struct Busybox {
    pub debian: &'static str,
    pub suite: &'static str,
    /// Path of the binary inside the extracted package.
    pub path: &'static str,
    pub uname: &'static str,
}

/// Every foreign busybox fetch.sh provides. i386 is not here: it runs natively on x86_64
/// and is the native control (`NATIVE_I386`).
pub const FOREIGN_BUSYBOX: &[Busybox] = &[
    bb("arm64", "aarch64"),
    bb("armhf", "armv7l"),
    bb("mips64el", "mips64"),
    bb("ppc64el", "ppc64le"),
    bb("s390x", "s390x"),
    Busybox {
        debian: "riscv64",
        suite: "trixie",
        path: "usr/bin/busybox",
        uname: "riscv64",
    },
];

pub const NATIVE_I386: Busybox = bb("i386", "x86_64");

const fn bb(debian: &'static str, uname: &'static str) -> Busybox {
    Busybox {
        debian,
        suite: "bookworm",
        path: "bin/busybox",
        uname,
    }
}

impl Busybox {
    pub fn by_debian(debian: &str) -> Busybox {
        *FOREIGN_BUSYBOX
            .iter()
            .chain([&NATIVE_I386])
            .find(|b| b.debian == debian)
            .unwrap_or_else(|| panic!("no busybox fixture for Debian arch {debian:?}"))
    }

    pub fn arch(&self) -> &'static Arch {
        arch::lookup(self.debian).expect("fixture arches are in the arch table")
    }

    /// The qemu target that runs it (`aarch64` for arm64): /usr/bin/qemu-<this>-static.
    pub fn qemu_target(&self) -> &'static str {
        self.arch().interpreter
    }

    /// Host path of the busybox binary; panics with the fix if the fixtures are missing.
    pub fn host_path(&self) -> PathBuf {
        let p = dir()
            .join(self.suite)
            .join(self.debian)
            .join("busybox-static")
            .join(self.path);
        assert!(
            p.is_file(),
            "fixture {} is missing: run `bash tests/fixtures/fetch.sh` (tests/run.sh does) first",
            p.display()
        );
        p
    }
}

/// The fixtures directory: $FIXTURES, or target/fixtures in the source tree (fetch.sh's default).
pub fn dir() -> PathBuf {
    std::env::var_os("FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"))
}

/// A shell command that registers `arch` in the sandbox's instance under binfmtd's own
/// naming, straight through the kernel interface (no binfmtd code but the encoder).
pub fn register_cmd(arch: &Arch, interpreter: &str, flags: &str) -> String {
    let flags = Flags::parse(flags).expect("test flags are valid");
    let reg = Registration::own(arch, interpreter.into(), flags);
    register_raw_cmd(&reg)
}

pub fn register_raw_cmd(reg: &Registration) -> String {
    let bytes = reg.encode().expect("test registrations encode");
    let text = String::from_utf8(bytes).expect("register strings are ASCII");
    // Single quotes keep the \xHH escapes literal; printf '%s' writes them untouched.
    assert!(!text.contains('\''));
    format!("printf '%s' '{text}' > /proc/sys/fs/binfmt_misc/register")
}

/// The qemu copy inside the sandbox for a target.
pub fn qemu_in_sandbox(target: &str) -> String {
    format!("{}/qemu-{target}-static", super::sandbox::QEMU_DIR)
}

/// Where `install --interpreter-dir $QEMU_DIR` registers that qemu: binfmtd's copy of it in
/// the default cache, named by its sha256 (the sandbox copies are /usr/bin's bytes).
pub fn qemu_cached_in_sandbox(target: &str) -> String {
    let host = format!("/usr/bin/qemu-{target}-static");
    let (sha, _) = binfmtd::interp::sha256_file(std::path::Path::new(&host)).unwrap();
    format!("/var/lib/binfmtd/sha256/{sha}")
}
