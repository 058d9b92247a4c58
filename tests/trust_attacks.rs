//! The trust rule under attack: an ordinary user (uid 1000, mapped in the private sandbox)
//! tries to get binfmtd, running as root, to run or register a file that user controls:
//! through a `kind = "local"` source, through `--interpreter` with a directory swap between
//! the checks and the registration, through an interpreter upgraded in place, and through
//! another tool's entry that `status` and `explain` would ask for its version.
//!
//! The attacker's program is a static wrapper that appends `uid=N ARG1` to a log and then
//! execs the real qemu: an empty log proves root never ran it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use binfmtd::entry::{Flags, Registration};
use binfmtd::interp::sha256_file;
use common::fixtures::register_raw_cmd;
use common::report::{json, status_row};
use common::{sections, with_exit, Busybox, Sandbox};

/// Where the wrapper logs (a directory everyone may write, not sticky: root appends too).
const LOG: &str = "/run/attack/log";

/// The attacker's program (compiled with LOG and REAL defined).
const WRAPPER_C: &str = include_str!("data/attack/wrapper.c");
/// `swap FILE A B`: exchanges directories A and B the moment FILE is closed after a read.
const SWAP_C: &str = include_str!("data/attack/swap.c");

/// The helpers, compiled once per test binary as static executables.
struct Helpers {
    /// Logs, then execs /run/qemu/qemu-aarch64-static.
    wrapper: PathBuf,
    swap: PathBuf,
    /// Debian's qemu-aarch64 with its version string changed: a different build of it.
    qemu_upgraded: PathBuf,
}

fn helpers() -> &'static Helpers {
    static H: OnceLock<Helpers> = OnceLock::new();
    H.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trust-attacks");
        std::fs::create_dir_all(&dir).unwrap();
        let real = format!("\"{}/qemu-aarch64-static\"", common::QEMU_DIR);
        let wrapper = compile(
            &dir,
            "wrapper",
            WRAPPER_C,
            &[("LOG", &format!("\"{LOG}\"")), ("REAL", &real)],
        );
        let swap = compile(&dir, "swap", SWAP_C, &[]);
        let mut qemu = std::fs::read("/usr/bin/qemu-aarch64-static").unwrap();
        let (old, new) = (b"7.2.22 (Debian", b"7.2.99 (Debian");
        let at = qemu
            .windows(old.len())
            .position(|w| w == old)
            .expect("Debian's qemu-aarch64-static 7.2.22 (tests/deps.sh installs it)");
        qemu[at..at + new.len()].copy_from_slice(new);
        let qemu_upgraded = dir.join("qemu-aarch64-upgraded");
        std::fs::write(&qemu_upgraded, qemu).unwrap();
        Helpers {
            wrapper,
            swap,
            qemu_upgraded,
        }
    })
}

fn compile(dir: &Path, name: &str, source: &str, defines: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-static", "-O1", "-o"]).arg(&out).arg(&src);
    for (k, v) in defines {
        cmd.arg(format!("-D{k}={v}"));
    }
    let o = cmd.output().expect("a C compiler (cc) with static libc");
    assert!(
        o.status.success(),
        "cc {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Shell prelude: the log directory, and `as_user CMD...` to run as uid 1000.
fn attack_prelude() -> String {
    let h = helpers();
    format!(
        "mkdir -m 0777 /run/attack && : > {LOG} && chmod 0666 {LOG}\n\
         as_user() {{ setpriv --reuid=1000 --regid=1000 --clear-groups \"$@\"; }}\n\
         WRAPPER={w}; SWAP={s}; UPGRADED={u}\n",
        w = h.wrapper.display(),
        s = h.swap.display(),
        u = h.qemu_upgraded.display(),
    )
}

/// Registers another tool's aarch64 entry (Debian's name, F) for `interpreter`.
fn foreign_aarch64(interpreter: &str) -> String {
    let a = binfmtd::arch::lookup("arm64").unwrap();
    register_raw_cmd(&Registration {
        name: "qemu-aarch64".into(),
        magic: a.magic.to_vec(),
        mask: a.mask.to_vec(),
        interpreter: interpreter.into(),
        flags: Flags::parse("F").unwrap(),
    })
}

fn log_of(s: &std::collections::BTreeMap<String, String>) -> &str {
    s.get("log")
        .map(String::as_str)
        .unwrap_or("<no log section>")
}

/// Item 2: a `kind = "local"` source that uid 1000 can change (its file, or its directory)
/// is refused by `fetch` and by `install`, before anything runs it.
#[test]
fn local_sources_other_users_can_change_are_refused_before_anything_runs() {
    let Some(sb) = Sandbox::new() else { return };
    let config = |path: &str| {
        format!(
            "embedded-default = false\n[[source]]\nname = \"local\"\nkind = \"local\"\nhost = \"{}\"\ntargets = [\"aarch64\"]\npath = \"{path}\"\n",
            binfmtd::arch::host().qemu
        )
    };
    let run = sb
        .with_qemu(&["aarch64"])
        .env("OWNED", config("/run/src/qemu-aarch64"))
        .env("OPEN_DIR", config("/run/open/qemu-aarch64"))
        .run_script(&format!(
            "{prelude}\
             mkdir -m 0755 /run/src /run/open && chmod 0777 /run/open\n\
             cp $WRAPPER /run/src/qemu-aarch64 && chown 1000:1000 /run/src/qemu-aarch64 && chmod 0666 /run/src/qemu-aarch64\n\
             cp $WRAPPER /run/open/qemu-aarch64\n\
             printf '%s' \"$OWNED\" > /run/owned.toml; printf '%s' \"$OPEN_DIR\" > /run/open.toml\n\
             C='--cache-dir /run/cache --arch arm64'\n\
             section fetch-owned; code $BINFMTD fetch $C --config /run/owned.toml\n\
             section install-owned; code $BINFMTD install $C --config /run/owned.toml\n\
             section fetch-open; code $BINFMTD fetch $C --config /run/open.toml\n\
             section install-open; code $BINFMTD install $C --config /run/open.toml\n\
             section entries; entries\n\
             section objects; ls /run/cache/sha256\n\
             section log; cat {LOG}",
            prelude = attack_prelude(),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(log_of(&s), "", "root ran the attacker's file: {run}");
    let cases = [
        ("fetch-owned", "it is owned by uid 1000, not root"),
        ("install-owned", "it is owned by uid 1000, not root"),
        (
            "fetch-open",
            "directory /run/open is writable by group or others",
        ),
        (
            "install-open",
            "directory /run/open is writable by group or others",
        ),
    ];
    for (step, why) in cases {
        let (text, code) = with_exit(&s[step]);
        assert_eq!(code, 1, "{step}: {run}");
        assert!(
            text.contains("source local: refused the interpreter") && text.contains(why),
            "{step} does not say {why:?}: {run}"
        );
    }
    assert_eq!(s["entries"], "", "{run}");
    assert_eq!(s["objects"], "", "nothing enters the cache: {run}");
}

/// Item 3, simple case: a root-owned qemu below a directory uid 1000 owns is refused, and
/// the message names that directory.
#[test]
fn an_interpreter_below_a_user_owned_directory_is_refused() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(
            "mkdir -p /tmp/x/d && chown 1000:1000 /tmp/x && cp $QEMU_DIR/qemu-aarch64-static /tmp/x/d/\n\
             section install; code $BINFMTD install --arch arm64 --interpreter /tmp/x/d/qemu-aarch64-static\n\
             section entries; entries",
        )
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["install"]);
    assert_eq!(code, 1, "{run}");
    assert!(
        text.contains("directory /tmp/x is owned by uid 1000, not root"),
        "{run}"
    );
    assert_eq!(s["entries"], "", "{run}");
}

/// Item 3, the race: uid 1000 owns /tmp/x, which holds a root-owned `d/qemu-aarch64-static`
/// and its own `e/` with the wrapper under the same name. The moment binfmtd closes the
/// real file after reading it, the attacker exchanges `d` and `e`. In no attempt may the
/// wrapper be registered or run.
#[test]
fn swapping_a_directory_after_the_checks_never_registers_the_swapped_in_file() {
    let Some(sb) = Sandbox::new() else { return };
    const ATTEMPTS: usize = 10;
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{prelude}\
             F=/tmp/x/d/qemu-aarch64-static\n\
             for i in $(seq {ATTEMPTS}); do\n\
               rm -rf /tmp/x; mkdir -p /tmp/x/d /tmp/x/e\n\
               cp $QEMU_DIR/qemu-aarch64-static /tmp/x/d/\n\
               cp $WRAPPER /tmp/x/e/qemu-aarch64-static\n\
               chown -R 1000:1000 /tmp/x/e && chown 1000:1000 /tmp/x\n\
               as_user $SWAP $F /tmp/x/d /tmp/x/e > /tmp/swap.out & swapper=$!\n\
               until grep -q ready /tmp/swap.out 2>/dev/null; do sleep 0.01; done\n\
               section attempt-$i; code $BINFMTD install --arch arm64 --interpreter $F\n\
               kill $swapper 2>/dev/null || true; wait $swapper 2>/dev/null || true\n\
               section swapped-$i; cat /tmp/swap.out\n\
               section entry-$i; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64 2>/dev/null || true\n\
               $BINFMTD uninstall --all >/dev/null\n\
             done\n\
             section log; cat {LOG}",
            prelude = attack_prelude(),
        ))
        .success();
    let s = sections(&run.stdout);
    let wrapper = sha256_file(&helpers().wrapper).unwrap().0;
    let registered = (1..=ATTEMPTS)
        .filter(|i| {
            s[&format!("entry-{i}")].contains(&wrapper)
                || s[&format!("attempt-{i}")].contains("ok: registered")
        })
        .count();
    assert_eq!(
        registered, 0,
        "registered in {registered} of {ATTEMPTS} attempts: {run}"
    );
    assert_eq!(log_of(&s), "", "root ran the attacker's file: {run}");
    for i in 1..=ATTEMPTS {
        let (text, code) = with_exit(&s[&format!("attempt-{i}")]);
        assert_eq!(code, 1, "attempt {i}: {run}");
        assert!(
            text.contains("directory /tmp/x is owned by uid 1000, not root"),
            "attempt {i}: {run}"
        );
    }
}

/// Item 7: a local interpreter replaced by a newer build under the same path (as a package
/// upgrade does: new file, rename) is registered anew on the next install, proven before
/// the old entry goes; status and the kernel then agree on the new build.
#[test]
fn a_local_interpreter_upgraded_in_place_is_replaced() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64").host_path();
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{prelude}\
             mkdir -m 0755 /run/q && cp $QEMU_DIR/qemu-aarch64-static /run/q/\n\
             I=\"$BINFMTD install --arch arm64 --interpreter-dir /run/q\"\n\
             section first; code $I\n\
             section entry-first; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             cp $UPGRADED /run/q/.new && chmod 0755 /run/q/.new && mv /run/q/.new /run/q/qemu-aarch64-static\n\
             section second; code $I\n\
             section entry-second; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             section entries; entries\n\
             section status; code $BINFMTD status --json\n\
             {bb} sleep 5 & pid=$!; sleep 0.5\n\
             section exe; readlink /proc/$pid/exe; sha256sum < /proc/$pid/exe\n\
             kill $pid",
            prelude = attack_prelude(),
            bb = bb.display(),
        ))
        .success();
    let s = sections(&run.stdout);
    let old = sha256_file(Path::new("/usr/bin/qemu-aarch64-static"))
        .unwrap()
        .0;
    let new = sha256_file(&helpers().qemu_upgraded).unwrap().0;
    assert_eq!(with_exit(&s["first"]).1, 0, "{run}");
    assert!(
        s["entry-first"].contains(&format!("interpreter /var/lib/binfmtd/sha256/{old}")),
        "{run}"
    );
    let (text, code) = with_exit(&s["second"]);
    assert_eq!(code, 0, "{run}");
    assert!(text.contains("aarch64: ok: replaced"), "{run}");
    let object = format!("/var/lib/binfmtd/sha256/{new}");
    assert!(
        s["entry-second"].contains(&format!("interpreter {object}")),
        "{run}"
    );
    assert_eq!(s["entries"], "binfmtd-aarch64\n", "{run}");
    let (text, code) = with_exit(&s["status"]);
    assert_eq!(code, 0, "{run}");
    let status = json(text);
    let row = status_row(&status, "aarch64");
    assert_eq!(row["sha256"], new.as_str(), "{row}");
    assert!(
        row["qemu_version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("7.2.99"),
        "{row}"
    );
    // What the kernel runs for an arm64 process is the new build, not a deleted old file.
    assert_eq!(s["exe"], format!("{object}\n{new}  -\n"), "{run}");
}

/// Item 14: another tool's entry whose interpreter lives in a directory uid 1000 owns:
/// `status` and `explain` report it and never run it (neither `--version` nor a probe).
#[test]
fn status_and_explain_never_run_an_untrusted_foreign_interpreter() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64").host_path();
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{prelude}\
             mkdir -m 0755 /tmp/u && cp $WRAPPER /tmp/u/qemu-aarch64 && chown -R 1000:1000 /tmp/u\n\
             {reg}\n\
             section status; code $BINFMTD status --json\n\
             section explain; code $BINFMTD explain --json {bb}\n\
             section log; cat {LOG}",
            prelude = attack_prelude(),
            reg = foreign_aarch64("/tmp/u/qemu-aarch64"),
            bb = bb.display(),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(log_of(&s), "", "root ran the foreign interpreter: {run}");
    let (text, code) = with_exit(&s["status"]);
    assert_eq!(code, 1, "{run}");
    let status = json(text);
    let row = status_row(&status, "aarch64");
    assert_eq!(row["state"], "registered-failing", "{row}");
    assert_eq!(row["qemu_version"], serde_json::Value::Null, "{row}");
    assert_eq!(row["probe"], serde_json::Value::Null, "{row}");
    let why = row["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("/tmp/u/qemu-aarch64")
            && why.contains("directory /tmp/u is owned by uid 1000"),
        "{row}"
    );
    let (text, _) = with_exit(&s["explain"]);
    assert!(text.contains("/tmp/u/qemu-aarch64"), "{run}");
}

/// Item 14 for `install`: beside another tool's entry whose interpreter uid 1000 owns,
/// install does not probe that entry (the kernel would run the wrapper as root to do so);
/// it registers its own, which the kernel prefers, and proves that one.
#[test]
fn install_never_probes_an_untrusted_foreign_entry() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64").host_path();
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{prelude}\
             mkdir -m 0755 /tmp/u && cp $WRAPPER /tmp/u/qemu-aarch64 && chown -R 1000:1000 /tmp/u\n\
             {reg}\n\
             section install; code $BINFMTD install --arch arm64 --interpreter-dir $QEMU_DIR\n\
             section entries; entries\n\
             section run; {bb} uname -m\n\
             section log; cat {LOG}",
            prelude = attack_prelude(),
            reg = foreign_aarch64("/tmp/u/qemu-aarch64"),
            bb = bb.display(),
        ))
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "{run}");
    assert!(
        text.contains("aarch64: ok: registered binfmtd-aarch64"),
        "{run}"
    );
    assert_eq!(s["entries"], "binfmtd-aarch64\nqemu-aarch64\n", "{run}");
    assert_eq!(s["run"], "aarch64\n", "{run}");
    assert_eq!(log_of(&s), "", "root ran the foreign interpreter: {run}");
}
