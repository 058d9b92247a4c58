//! Can this machine run the sandboxed tests? Probed once per test binary.
//!
//! The only acceptable reason to skip is a kernel that cannot give a user namespace its own
//! binfmt_misc instance (Linux < 6.7, or user namespaces disabled). Everything else (not
//! root, util-linux missing) is a broken test setup and fails. With CI=true a skip fails too:
//! CI machines of this project's kind have the support, so a skip there hides a regression.

use std::sync::OnceLock;

use super::sandbox::Sandbox;

static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
static VISIBLE: OnceLock<Result<(), String>> = OnceLock::new();

/// `Some(())` when sandboxes work. Otherwise prints the reason and returns None, or panics
/// under CI=true.
pub fn require() -> Option<()> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the kernel tests create namespaces and write uid maps as real root: run them as root (tests/run.sh)"
    );
    let ci = std::env::var("CI").ok();
    match verdict(PROBE.get_or_init(probe), ci.as_deref()) {
        Verdict::Run => {
            if let Err(e) = VISIBLE.get_or_init(visible) {
                panic!("{e}");
            }
            Some(())
        }
        Verdict::Skip(reason) => {
            eprintln!("SKIPPED: {reason}");
            None
        }
        Verdict::Fail(reason) => panic!("{reason}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Skip(String),
    Fail(String),
}

/// What a test does given the probe result and the CI variable.
pub fn verdict(probe: &Result<(), String>, ci: Option<&str>) -> Verdict {
    match (probe, ci) {
        (Ok(()), _) => Verdict::Run,
        (Err(reason), Some("true")) => Verdict::Fail(format!(
            "CI=true and the kernel sandbox is unavailable, so this test may not skip: {reason}"
        )),
        (Err(reason), _) => Verdict::Skip(reason.clone()),
    }
}

fn probe() -> Result<(), String> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = kernel.trim();
    let run = Sandbox::unchecked()
        .bare()
        .try_run(
            "mount -t proc proc /proc\nmount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\ncat /proc/sys/fs/binfmt_misc/status",
        )
        .map_err(|e| format!("this kernel ({kernel}) cannot create the user namespace sandbox: {e}"))?;
    if run.status.success() && run.stdout.trim() == "enabled" {
        return Ok(());
    }
    Err(format!(
        "this kernel ({}) cannot mount a private binfmt_misc instance in a user namespace \
         (needs Linux >= 6.7 with user namespaces enabled): {}",
        kernel,
        run.stderr.trim()
    ))
}

/// The sandbox runs as host uid 100000: the built binary and the fixtures must be reachable
/// by it, which fails when the checkout sits under a private directory such as /root.
fn visible() -> Result<(), String> {
    let run = Sandbox::unchecked()
        .run_script("for p in \"$BINFMTD\" \"$FIXTURES\"; do [ -r \"$p\" ] || echo \"$p\"; done");
    match run.stdout.trim() {
        "" if run.status.success() => Ok(()),
        unreadable => Err(format!(
            "the sandbox (host uid {}) cannot read {unreadable}. Hint: a directory above it is private \
             (mode 0700, like /root or a `mktemp -d` directory): give its parent directories o+x, clone \
             elsewhere (/tmp, /srv), or let tests/run.sh build in /var/tmp; {}",
            super::sandbox::HOST_ID,
            run.stderr.trim()
        )),
    }
}
