//! The argv[0] verdicts against the real kernel: an aarch64 probe run through a
//! binfmt_misc entry in a private instance (a user + mount namespace whose root is host
//! uid 100000, so nothing can reach the host's instance), once per way of registering.
//! Needs Linux >= 6.7 (binfmt_misc instances per user namespace), util-linux (setpriv,
//! unshare), bash and qemu-user-static.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use binfmtd::arch::{lookup, Arch};
use binfmtd::entry::{Flags, Registration};
use binfmtd::probe::{self, parse_output, Argv0Mode, PROBE_ARGS, PROBE_ARGV0};

/// Host uid/gid that the sandbox's root maps to: unprivileged on the host.
const SANDBOX_BASE: u32 = 100_000;
const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// Runs in the sandbox: wait until the parent has written the id maps, mount a fresh
/// binfmt_misc instance, register, then exec the probe with argv[0] = $5 and one argument.
const SANDBOX_SCRIPT: &str = r#"set -eu
read -r _ < "$1"
mount -t binfmt_misc binfmt_misc "$2"
printf '%s' "$3" > "$2/register"
exec -a "$5" "$4" "$6"
"#;

fn kernel_has_binfmt_instances() -> Result<(), String> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    if (major, minor) >= (6, 7) {
        Ok(())
    } else {
        Err(format!(
            "kernel {release} predates per-user-namespace binfmt_misc (6.7)"
        ))
    }
}

/// Skip only where the kernel cannot do it; in CI a skip is a failure.
fn skip_unless_supported() -> bool {
    match kernel_has_binfmt_instances() {
        Ok(()) => false,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and this machine cannot run the test: {why}")
        }
        Err(why) => {
            eprintln!("SKIP: {why}");
            true
        }
    }
}

fn user_ns(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/user")).ok()
}

/// Start the script as host uid 100000 in new user + mount namespaces, map its ids, and
/// let it go. Returns the child with stdout piped.
fn start_sandbox(dir: &Path, register: &str, probe_file: &Path) -> Child {
    let fifo = dir.join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let id = SANDBOX_BASE.to_string();
    let mut child = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .args(["unshare", "--user", "--mount", "--fork", "--kill-child"])
        .args(["bash", "-c", SANDBOX_SCRIPT, "sandbox"])
        .arg(&fifo)
        .arg(&mnt)
        .arg(register)
        .arg(probe_file)
        .args([PROBE_ARGV0, PROBE_ARGS[0]])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv and unshare from util-linux");
    // setpriv execs unshare in place, so the pid is unshare's; wait for its new user ns.
    let ours = user_ns(std::process::id());
    let start = Instant::now();
    while user_ns(child.id()) == ours || user_ns(child.id()).is_none() {
        if start.elapsed() > Duration::from_secs(10) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "sandbox did not enter a user namespace: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let map = format!("0 {SANDBOX_BASE} 65536\n");
    for file in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{file}", child.id()), &map).unwrap();
    }
    fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    child
}

/// A world-readable directory: the sandbox's root is an unprivileged host uid.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn exe(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Register `interpreter` for aarch64 with `flags` in a private instance and run the probe
/// through it; return the verdict the probe's output gives.
fn verdict(interpreter: &str, flags: Flags, dir: &Path) -> Argv0Mode {
    let a: &Arch = lookup("aarch64").unwrap();
    let probe_file = exe(dir, "probe", &probe::program(a).unwrap());
    let reg = Registration {
        name: "probe-test".into(),
        magic: a.magic.to_vec(),
        mask: a.mask.to_vec(),
        interpreter: PathBuf::from(interpreter),
        flags,
    };
    let register = String::from_utf8(reg.encode().unwrap()).unwrap();
    let out = start_sandbox(dir, &register, &probe_file)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let report = parse_output(&out.stdout).unwrap_or_else(|e| panic!("{e}; stderr: {stderr}"));
    assert_eq!(report.arch, "aarch64");
    report.argv0_mode(PROBE_ARGV0, PROBE_ARGS.len())
}

fn flags(p: bool, f: bool) -> Flags {
    Flags {
        preserve_argv0: p,
        fix_binary: f,
        ..Flags::default()
    }
}

#[test]
fn p_flag_understood_preserves_argv0() {
    if skip_unless_supported() {
        return;
    }
    let dir = shared_dir();
    assert_eq!(
        verdict(QEMU, flags(true, true), dir.path()),
        Argv0Mode::Preserved
    );
}

#[test]
fn no_p_flag_replaces_argv0_with_the_path() {
    if skip_unless_supported() {
        return;
    }
    let dir = shared_dir();
    assert_eq!(
        verdict(QEMU, flags(false, true), dir.path()),
        Argv0Mode::Replaced
    );
}

/// A wrapper script re-execs qemu, so qemu never sees AT_FLAGS_PRESERVE_ARGV0: exactly an
/// interpreter that does not understand P.
#[test]
fn p_flag_not_understood_shifts_arguments() {
    if skip_unless_supported() {
        return;
    }
    let dir = shared_dir();
    let wrapper = exe(
        dir.path(),
        "wrapper",
        format!("#!/bin/sh\nexec {QEMU} \"$@\"\n").as_bytes(),
    );
    let got = verdict(wrapper.to_str().unwrap(), flags(true, false), dir.path());
    assert_eq!(got, Argv0Mode::Shifted);
}
