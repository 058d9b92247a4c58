//! Shared helpers for the integration tests that exercise the real kernel.
//!
//! | module     | what it holds                                                          |
//! |------------|------------------------------------------------------------------------|
//! | `sandbox`  | `Sandbox`: a user+mount+pid namespace with a private binfmt_misc       |
//! | `support`  | the once-per-binary probe: run, skip with a reason, or fail under CI   |
//! | `host`     | snapshots of the host's binfmt_misc, compared around every sandbox run |
//! | `fixtures` | foreign busybox fixtures and register strings from the arch table      |
//! | prelude.sh | shell helpers every sandbox script starts with (`mkrootfs`, `entries`) |

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod fixtures;
pub mod host;
pub mod sandbox;
pub mod support;

pub use fixtures::{register_cmd, Busybox, FOREIGN_BUSYBOX, NATIVE_I386};
pub use sandbox::{Run, Sandbox, QEMU_DIR};

/// Quote a string for sh: single quotes, with embedded single quotes closed and escaped.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
