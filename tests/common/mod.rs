//! Shared helpers for the integration tests that exercise the real kernel.
//!
//! | module     | what it holds                                                          |
//! |------------|------------------------------------------------------------------------|
//! | `agent`    | shell helpers for scripts that drive `binfmtd run` (`start_agent`, ...) |
//! | `sandbox`  | `Sandbox`: a user+mount+pid namespace with a private binfmt_misc       |
//! | `cluster`  | a real control plane (tests/k8s/cluster.sh), one per test binary      |
//! | `containerd` | containerd + ctr on the sandbox's tmpfs; busybox images; with CRI + crictl |
//! | `registry` | real OCI registries on loopback (anonymous, basic, token) + test images |
//! | `support`  | the once-per-binary probe: run, skip with a reason, or fail under CI   |
//! | `host`     | snapshots of the host's binfmt_misc, compared around every sandbox run |
//! | `fixtures` | foreign busybox fixtures and register strings from the arch table      |
//! | `report`   | `install --json` and `status --json` readers; exact bytes in a script  |
//! | prelude.sh | shell helpers every sandbox script starts with (`mkrootfs`, `entries`) |

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod cluster;
pub mod containerd;
pub mod fixtures;
pub mod host;
pub mod registry;
pub mod report;
pub mod sandbox;
pub mod support;

pub use fixtures::{register_cmd, Busybox, FOREIGN_BUSYBOX, NATIVE_I386};
pub use sandbox::{Run, Sandbox, QEMU_DIR};

/// Quote a string for sh: single quotes, with embedded single quotes closed and escaped.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Split output written with the prelude's `section NAME` into NAME -> text.
pub fn sections(stdout: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            out.extend(current.take());
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// A section that ends with the prelude's `code` line: (everything before it, exit code).
pub fn with_exit(section: &str) -> (&str, i32) {
    let body = section.trim_end_matches('\n');
    let (text, last) = body.rsplit_once('\n').unwrap_or(("", body));
    let code = last
        .strip_prefix("exit=")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("section does not end with an exit=N line: {section:?}"));
    (text, code)
}
