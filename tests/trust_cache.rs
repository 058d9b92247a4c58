//! The cache and the probe directory against a non-root user (uid 1000 in the private
//! sandbox) and against faults: planted symlinks, a permissive umask, swapped probe
//! directories, an object written over, a sweep from another pid namespace, a cache
//! reached through a symlink, and an interpreter that writes without end.

mod common;

use binfmtd::arch::lookup;
use binfmtd::entry::{Flags, Registration};
use binfmtd::interp::sha256_file;
use common::fixtures::register_raw_cmd;
use common::report::{json, status_row};
use common::{sections, with_exit, Busybox, Sandbox};

/// Run a command as the sandbox's unprivileged uid 1000.
const AS_1000: &str = "setpriv --reuid=1000 --regid=1000 --clear-groups";

fn sha(cpu: &str) -> String {
    sha256_file(std::path::Path::new(&format!("/usr/bin/qemu-{cpu}-static")))
        .unwrap()
        .0
}

/// A hermetic config: aarch64 from a local file, pinned.
fn config(path: &str, sha256: &str) -> String {
    format!(
        "embedded-default = false\n[[source]]\nname = \"local\"\nkind = \"local\"\n\
         host = \"{host}\"\ntargets = [\"aarch64\"]\npath = \"{path}\"\n\
         member-sha256 = {{ aarch64 = \"{sha256}\" }}\n",
        host = binfmtd::arch::host().qemu
    )
}

/// Another tool's entry for `qemu` whose interpreter is `interpreter` (no F: opened at
/// each exec, so a script works).
fn foreign_entry(qemu: &str, interpreter: &str) -> String {
    let arch = lookup(qemu).unwrap();
    let mut reg = Registration::own(arch, interpreter.into(), Flags::parse("").unwrap());
    reg.name = format!("othertool-{qemu}");
    register_raw_cmd(&reg)
}

/// uid 1000 pre-creates the cache directory with symlinks into root's files: every run
/// refuses it, naming it, and nothing outside it changes.
#[test]
fn a_cache_dir_planted_by_another_user_is_refused_and_nothing_outside_touched() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .env("CFG", config("/run/qemu/qemu-aarch64-static", &sha("aarch64")))
        .run_script(&format!(
            "printf '%s' \"$CFG\" > /run/cfg.toml\n\
             mkdir -m 0755 /run/victimdir && echo keep > /run/victimdir/file\n\
             mkdir -m 0700 /run/secret\n\
             {AS_1000} sh -c 'mkdir /tmp/c && ln -s /run/victimdir /tmp/c/archives && \
               ln -s /run/secret /tmp/c/index && ln -s /run/shadow /tmp/c/interpreter-sums.json.tmp && \
               ln -s /run/nologin /tmp/c/.lock && ln -s /run/victimdir /tmp/c/sha256'\n\
             for cmd in 'install --arch arm64' 'fetch --arch arm64' gc; do\n\
               section \"$cmd\"; code $BINFMTD $cmd --config /run/cfg.toml --cache-dir /tmp/c 2>&1\n\
             done\n\
             section status; code $BINFMTD status --cache-dir /tmp/c 2>&1\n\
             section after\n\
             ls -A /run/victimdir; stat -c '%a' /run/secret; ls -A /run/secret\n\
             ls /run/shadow /run/nologin 2>&1 || true\n\
             section entries; entries"
        ))
        .success();
    let s = sections(&run.stdout);
    for cmd in ["install --arch arm64", "fetch --arch arm64", "gc"] {
        let (text, code) = with_exit(&s[cmd]);
        assert_ne!(code, 0, "{cmd} must fail: {run}");
        assert!(
            text.contains("/tmp/c") && text.contains("owned by uid 1000"),
            "{cmd}: the message names the directory and why: {run}"
        );
    }
    let (_, code) = with_exit(&s["status"]);
    assert!(code <= 1, "status still reports: {run}");
    let after: Vec<&str> = s["after"].lines().collect();
    assert_eq!(after[0], "file", "victimdir untouched: {run}");
    assert_eq!(after[1], "700", "secret keeps its mode: {run}");
    assert!(
        s["after"].contains("'/run/shadow': No such file")
            && s["after"].contains("'/run/nologin': No such file"),
        "{run}"
    );
    assert_eq!(s["after"].lines().count(), 4, "secret stays empty: {run}");
    assert_eq!(s["entries"], "", "nothing registered: {run}");
}

/// uid 1000's attack on probe directories: next to each new `binfmtd-probe.*` it makes a
/// directory holding its own `probe`, and swaps the two in one renameat2(RENAME_EXCHANGE).
const SWAP: &str = r#"
import ctypes, os, shutil
libc = ctypes.CDLL(None, use_errno=True)
P = "/run/cache/probe"
while not os.path.exists("/tmp/stop"):
    try:
        names = os.listdir(P)
    except OSError:
        continue
    for n in names:
        if not n.startswith("binfmtd-probe.") or n.endswith(".x"):
            continue
        d = os.path.join(P, n)
        try:
            os.mkdir(d + ".x")
            shutil.copy("/tmp/evil", d + ".x/probe")
        except OSError:
            pass
        libc.renameat2(-100, d.encode(), -100, (d + ".x").encode(), 2)
"#;

/// Under umask 000 the cache, its areas and the probe directory are still 0755 (so no
/// other user can swap a probe directory), while uid 1000 tries exactly that (`SWAP`)
/// during repeated `status` runs: its program never runs as root.
#[test]
fn umask_000_keeps_probe_dirs_private_and_a_swap_loop_never_runs_as_root() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .env("CFG", config("/run/qemu/qemu-aarch64-static", &sha("aarch64")))
        .env("SWAP", SWAP)
        .run_script(&format!(
            "printf '%s' \"$CFG\" > /run/cfg.toml\n\
             umask 000\n\
             printf '#!/bin/sh\\nid -u >> /tmp/pwned\\n' > /tmp/evil && chmod 0755 /tmp/evil\n\
             $BINFMTD install --config /run/cfg.toml --cache-dir /run/cache --arch arm64 > /dev/null\n\
             section modes; stat -c '%a %n' /run/cache /run/cache/probe /run/cache/sha256 /run/cache/index /run/cache/archives\n\
             printf '%s' \"$SWAP\" > /tmp/swap.py\n\
             {AS_1000} python3 /tmp/swap.py &\n\
             for i in $(seq 1 30); do $BINFMTD status --cache-dir /run/cache > /dev/null 2>&1 || true; done\n\
             touch /tmp/stop; wait\n\
             section pwned; cat /tmp/pwned 2>/dev/null || true"
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["pwned"], "", "uid 1000's program ran: {run}");
    for line in s["modes"].lines() {
        assert!(line.starts_with("755 "), "{line}: {run}");
    }
}

/// `dd` over an installed object: the next install notices (sha256 on reuse), fetches
/// the file again and works; `fetch` reports the real hash of what it leaves in place.
/// (Written while unregistered: an F entry holds the file open for exec, and the kernel
/// refuses writes to it with ETXTBSY.)
#[test]
fn an_object_written_over_is_fetched_again() {
    let Some(sb) = Sandbox::new() else { return };
    let good = sha("aarch64");
    let bb = Busybox::by_debian("arm64").host_path();
    let run = sb
        .with_qemu(&["aarch64"])
        .env("CFG", config("/run/qemu/qemu-aarch64-static", &good))
        .run_script(&format!(
            "printf '%s' \"$CFG\" > /run/cfg.toml\n\
             I=\"$BINFMTD install --config /run/cfg.toml --cache-dir /run/cache --arch arm64\"\n\
             O=/run/cache/sha256/{good}\n\
             spoil() {{ dd if=/dev/urandom of=$O bs=4096 seek=64 count=64 conv=notrunc status=none; }}\n\
             section first; code $I\n\
             $BINFMTD uninstall --all > /dev/null; spoil\n\
             section second; code $I\n\
             section run; {bb} uname -m\n\
             section object; sha256sum < $O | cut -d' ' -f1\n\
             $BINFMTD uninstall --all > /dev/null; spoil\n\
             section fetch; code $BINFMTD fetch --config /run/cfg.toml --cache-dir /run/cache --arch arm64\n\
             section object-after-fetch; sha256sum < $O | cut -d' ' -f1",
            bb = bb.display()
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(with_exit(&s["first"]).1, 0, "{run}");
    let (text, code) = with_exit(&s["second"]);
    assert_eq!(code, 0, "install after dd must work: {run}");
    assert!(text.contains("aarch64: ok"), "{run}");
    assert_eq!(s["run"], "aarch64\n", "{run}");
    assert_eq!(s["object"].trim(), good, "{run}");
    let (text, code) = with_exit(&s["fetch"]);
    assert_eq!(code, 0, "{run}");
    assert!(text.contains(&good), "{run}");
    assert_eq!(
        s["object-after-fetch"].trim(),
        good,
        "fetch printed ok for an object whose bytes it did not check: {run}"
    );
}

/// A probe runs slowly (its interpreter waits); meanwhile `status` from another pid
/// namespace sweeps the shared probe directory. The running probe's directory stays.
#[test]
fn a_sweep_from_another_pid_namespace_leaves_a_live_probe_alone() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "printf '#!/bin/sh\\ntouch /tmp/started\\nsleep 3\\nexec /run/qemu/qemu-aarch64-static \"$@\"\\n' > /run/slow\n\
             chmod 0755 /run/slow\n\
             {reg}\n\
             $BINFMTD status --json --cache-dir /run/cache > /tmp/a.json 2>/tmp/a.err & a=$!\n\
             for i in $(seq 1 200); do [ -e /tmp/started ] && break; sleep 0.05; done\n\
             section before; ls /run/cache/probe\n\
             unshare --pid --fork --mount --mount-proc sh -c \"$BINFMTD status --cache-dir /run/cache\" > /dev/null 2>&1 || true\n\
             section after; ls /run/cache/probe\n\
             wait $a || true\n\
             section status; cat /tmp/a.json",
            reg = foreign_entry("aarch64", "/run/slow")
        ))
        .success();
    let s = sections(&run.stdout);
    let before = s["before"].trim();
    assert!(before.starts_with("binfmtd-probe."), "{run}");
    assert!(
        s["after"].lines().any(|l| l == before),
        "the live probe directory was swept: {run}"
    );
    let status = json(&s["status"]);
    assert_eq!(status_row(&status, "aarch64")["probe"]["ok"], true, "{run}");
}

/// `--cache-dir` through a symlink: after a rollback (the index names the new, broken
/// object; the kernel still runs the previous one) gc keeps the registered file.
#[test]
fn gc_keeps_the_registered_object_when_the_cache_dir_is_a_symlink() {
    let Some(sb) = Sandbox::new() else { return };
    let good = sha("aarch64");
    let run = sb
        .with_qemu(&["aarch64", "riscv64"])
        .env("GOOD", config("/run/qemu/qemu-aarch64-static", &good))
        .env("BAD", config("/run/bad/qemu-aarch64", &sha("riscv64")))
        .run_script(&format!(
            "mkdir /run/bad && cp $QEMU_DIR/qemu-riscv64-static /run/bad/qemu-aarch64\n\
             printf '%s' \"$GOOD\" > /run/good.toml; printf '%s' \"$BAD\" > /run/bad.toml\n\
             mkdir -m 0755 /run/real && ln -s /run/real /run/link\n\
             I=\"$BINFMTD install --cache-dir /run/link --arch arm64\"\n\
             section good; code $I --config /run/good.toml\n\
             section bad; code $I --config /run/bad.toml\n\
             section gc; code $BINFMTD gc --config /run/bad.toml --cache-dir /run/link\n\
             section entry; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             section object; ls /run/real/sha256/{good}"
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(with_exit(&s["good"]).1, 0, "{run}");
    assert!(s["bad"].contains("(rollback)"), "{run}");
    assert_eq!(with_exit(&s["gc"]).1, 0, "{run}");
    assert!(s["entry"].contains(&good), "{run}");
    assert_eq!(
        s["object"].trim(),
        format!("/run/real/sha256/{good}"),
        "gc removed the registered interpreter: {run}"
    );
}

/// Another tool's entry whose interpreter writes without end: `status` finishes, the
/// probe is reported failing, and the probe directory never grows past its program.
#[test]
fn an_interpreter_that_writes_without_end_neither_hangs_status_nor_fills_the_disk() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .run_script(&format!(
            "printf '#!/bin/sh\\nexec yes flood\\n' > /run/flood && chmod 0755 /run/flood\n\
             {reg}\n\
             mkdir -m 0755 /run/cache && mount -t tmpfs -o size=64m,mode=0755 tmpfs /run/cache\n\
             echo 0 > /tmp/peak; (peak=0; while [ ! -e /tmp/stop ]; do k=$(du -sk /run/cache | cut -f1); \
               [ $k -gt $peak ] && peak=$k && echo $peak > /tmp/peak; sleep 0.02; done) &\n\
             section status; code timeout 60 $BINFMTD status --json --probe-timeout 5 --cache-dir /run/cache\n\
             touch /tmp/stop; wait\n\
             section peak; cat /tmp/peak",
            reg = foreign_entry("riscv64", "/run/flood")
        ))
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["status"]);
    assert_ne!(code, 124, "status hung: {run}");
    let status = json(text);
    let row = status_row(&status, "riscv64");
    assert_eq!(row["probe"]["ok"], false, "{row}");
    let peak: u64 = s["peak"].trim().parse().unwrap();
    assert!(peak < 1024, "the probe directory grew to {peak} KiB: {run}");
}
