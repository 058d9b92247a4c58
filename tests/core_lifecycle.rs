//! Acceptance tests of the BUILT binary over time: a failing foreign entry beside ours,
//! re-running install, argv[0] for busybox under emulation, rollback to the previous
//! registration when a new interpreter fails, and selftest before and after uninstall.
//! All against a private binfmt_misc instance, real qemu and real foreign binaries.

mod common;

use std::collections::BTreeMap;

use binfmtd::arch;
use binfmtd::entry::{parse_entry, Flags, Registration};
use common::fixtures::{qemu_cached_in_sandbox, qemu_in_sandbox, register_cmd, register_raw_cmd};
use common::report::{json, status_row, INSTALL};
use common::{sections, with_exit, Busybox, Sandbox};

/// Another tool's entry for `debian`'s format, as Debian's qemu-user-binfmt names it.
fn foreign(debian: &str, interpreter: &str, flags: &str) -> Registration {
    let a = arch::lookup(debian).unwrap();
    Registration {
        name: format!("qemu-{}", a.qemu),
        magic: a.magic.to_vec(),
        mask: a.mask.to_vec(),
        interpreter: interpreter.into(),
        flags: Flags::parse(flags).unwrap(),
    }
}

/// Two failing foreign entries: `qemu-aarch64` names an interpreter that does not exist
/// (registered without F, so the kernel accepts it), `qemu-riscv64` pins (F) a qemu for
/// the wrong guest. Install must leave both byte for byte alone, add its own entries beside
/// them, make both arches work, and status must name the foreign entries.
/// `--replace-foreign` then removes them.
#[test]
fn failing_foreign_entries_are_left_alone_and_binfmtd_works_beside_them() {
    let Some(sb) = Sandbox::new() else { return };
    let missing = foreign("arm64", "/nonexistent/qemu-aarch64-static", "OP");
    let broken = foreign("riscv64", "/run/broken/qemu-riscv64-static", "OPF");
    let (a64, rv) = (Busybox::by_debian("arm64"), Busybox::by_debian("riscv64"));
    let run = sb
        .with_qemu(&["aarch64", "riscv64"])
        .run_script(&format!(
            "mkdir /run/broken && cp $QEMU_DIR/qemu-aarch64-static /run/broken/qemu-riscv64-static\n\
             {reg_missing}\n{reg_broken}\n\
             mkdir /tmp/before && cp /proc/sys/fs/binfmt_misc/qemu-* /tmp/before/\n\
             section status-before; code $BINFMTD status --json\n\
             section install; code {INSTALL} --arch arm64,riscv64 --json\n\
             section after-install; entries; for e in qemu-aarch64 qemu-riscv64; do \
               cmp /tmp/before/$e /proc/sys/fs/binfmt_misc/$e && echo \"$e same\"; done\n\
             section run; {a64} uname -m; {rv} uname -m\n\
             section status; code $BINFMTD status --json\n\
             section replace; code {INSTALL} --arch arm64,riscv64 --replace-foreign\n\
             section after-replace; entries; {a64} uname -m; {rv} uname -m\n\
             section foreign-aarch64; cat /tmp/before/qemu-aarch64\n\
             section foreign-riscv64; cat /tmp/before/qemu-riscv64",
            reg_missing = register_raw_cmd(&missing),
            reg_broken = register_raw_cmd(&broken),
            a64 = a64.host_path().display(),
            rv = rv.host_path().display(),
        ))
        .success();
    let s = sections(&run.stdout);
    // The entries the test compares against are the ones it registered.
    for reg in [&missing, &broken] {
        let text = &s[&format!("foreign-{}", &reg.name["qemu-".len()..])];
        let entry = parse_entry(&reg.name, text).unwrap();
        assert!(reg.is_realised_by(&entry), "{entry:?}: {run}");
    }
    assert_failing_foreign_before(&s["status-before"], &run);
    assert_working_beside_foreign(&s, &run);
    let (text, code) = with_exit(&s["replace"]);
    assert_eq!(code, 0, "{run}");
    assert!(text.contains("aarch64: ok: kept binfmtd-aarch64"), "{run}");
    assert_eq!(
        s["after-replace"], "binfmtd-aarch64\nbinfmtd-riscv64\naarch64\nriscv64\n",
        "--replace-foreign removes the foreign entries: {run}"
    );
}

/// After install: binfmtd registered its own entries, the foreign ones read back the same,
/// both arches run, and status names the foreign entries beside binfmtd's.
fn assert_working_beside_foreign(s: &BTreeMap<String, String>, run: &common::Run) {
    let (text, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "{run}");
    for (row, qemu) in json(text)
        .as_array()
        .unwrap()
        .iter()
        .zip(["aarch64", "riscv64"])
    {
        assert_eq!(row["arch"], qemu, "{run}");
        assert_eq!(row["action"], "registered", "{run}");
        assert_eq!(row["entry"], format!("binfmtd-{qemu}"), "{run}");
        assert_eq!(row["working"], true, "{run}");
    }
    assert_eq!(
        s["after-install"],
        "binfmtd-aarch64\nbinfmtd-riscv64\nqemu-aarch64\nqemu-riscv64\n\
         qemu-aarch64 same\nqemu-riscv64 same\n",
        "{run}"
    );
    assert_eq!(s["run"], "aarch64\nriscv64\n", "{run}");
    let (text, code) = with_exit(&s["status"]);
    let status = json(text);
    for qemu in ["aarch64", "riscv64"] {
        let row = status_row(&status, qemu);
        assert_eq!(row["state"], "emulated-working", "{row}");
        assert_eq!(row["entry"], format!("binfmtd-{qemu}"), "{row}");
        assert_eq!(
            row["other_entries"],
            json(&format!("[\"qemu-{qemu}\"]")),
            "{row}"
        );
    }
    assert_eq!(code, 0, "{run}");
}

/// Before install the foreign entries handle their formats and fail: status says so per
/// arch, with the reason and a hint, and exits 1.
fn assert_failing_foreign_before(section: &str, run: &common::Run) {
    let (text, code) = with_exit(section);
    let status = json(text);
    for (qemu, why) in [
        (
            "aarch64",
            "interpreter /nonexistent/qemu-aarch64-static does not exist",
        ),
        ("riscv64", "probe failed"),
    ] {
        let row = status_row(&status, qemu);
        assert_eq!(row["state"], "registered-failing", "{row}");
        assert_eq!(row["owner"], "foreign", "{row}");
        assert_eq!(row["entry"], format!("qemu-{qemu}"), "{row}");
        let reason = row["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{qemu}: reason {reason:?}");
        let hint = row["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains(&format!("binfmtd install --arch {qemu}"))
                && hint.contains("--replace-foreign"),
            "{qemu}: hint {hint:?}"
        );
    }
    assert_eq!(code, 1, "status exits 1 while a format fails: {run}");
}

/// The second install with the same arguments changes nothing: every entry file reads back
/// byte for byte the same, nothing is added, and the output says each entry was kept.
#[test]
fn reinstall_changes_nothing_and_says_kept() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64", "s390x"])
        .run_script(&format!(
            "section first; code {INSTALL} --arch arm64,s390x\n\
             mkdir /tmp/first && cp /proc/sys/fs/binfmt_misc/binfmtd-* /tmp/first/\n\
             section second; code {INSTALL} --arch arm64,s390x\n\
             section entries; entries\n\
             section same; for e in $(entries); do cmp /tmp/first/$e /proc/sys/fs/binfmt_misc/$e && echo \"$e same\"; done"
        ))
        .success();
    let s = sections(&run.stdout);
    let (first, code) = with_exit(&s["first"]);
    assert_eq!(code, 0, "{run}");
    for q in ["aarch64", "s390x"] {
        let want = format!(
            "{q}: ok: registered binfmtd-{q} (flags POF, {})",
            qemu_cached_in_sandbox(q)
        );
        assert!(first.contains(&want), "{want:?} missing: {run}");
    }
    let (second, code) = with_exit(&s["second"]);
    assert_eq!(code, 0, "a re-run does not error: {run}");
    let lines: Vec<&str> = second.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 2, "{run}");
    for (line, q) in lines.iter().zip(["aarch64", "s390x"]) {
        let want = format!(
            "{q}: ok: kept binfmtd-{q} (flags POF, {})",
            qemu_cached_in_sandbox(q)
        );
        assert!(line.starts_with(&want), "{line:?} is not {want:?}: {run}");
    }
    assert_eq!(s["entries"], "binfmtd-aarch64\nbinfmtd-s390x\n", "{run}");
    assert_eq!(
        s["same"], "binfmtd-aarch64 same\nbinfmtd-s390x same\n",
        "{run}"
    );
}

/// busybox re-executes itself for `sh -c`; with binfmtd's P flag argv[0] survives, so the
/// inner shell's $0 is `sh`. The control (same qemu, registered without P) shows what a
/// lost argv[0] looks like, so the assertion cannot pass by accident.
#[test]
fn busybox_keeps_argv0_under_emulation_after_install() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64");
    let q = qemu_in_sandbox("aarch64");
    let inner = r#"chroot /tmp/rootfs /bin/sh -c 'sh -c "echo \$0"'"#;
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "mkrootfs /tmp/rootfs {bb} {q}\n\
             section install; code {INSTALL} --arch arm64\n\
             section flags; grep ^flags /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             section argv0; {inner}\n\
             $BINFMTD uninstall --all >/dev/null\n\
             {control}\n\
             section control; {inner}",
            bb = bb.host_path().display(),
            control = register_cmd(bb.arch(), &q, "F"),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(with_exit(&s["install"]).1, 0, "{run}");
    assert_eq!(s["flags"], "flags: POF\n", "{run}");
    assert_eq!(s["argv0"], "sh\n", "{run}");
    assert_eq!(s["control"], "/bin/sh\n", "without P: {run}");
}

/// A new interpreter that fails its probe (a static x86_64 qemu for riscv64, renamed
/// qemu-aarch64-static: right host CPU, static, root-owned, wrong guest) must not replace
/// the working registration: the entry stays byte for byte, still pointing at dir A.
#[test]
fn failed_reinstall_keeps_the_previous_registration() {
    let Some(sb) = Sandbox::new() else { return };
    let a64 = Busybox::by_debian("arm64");
    let entry = "/proc/sys/fs/binfmt_misc/binfmtd-aarch64";
    let run = sb
        .with_qemu(&["aarch64", "riscv64"])
        .run_script(&format!(
            "mkdir -m 0755 /run/qemu-b && cp $QEMU_DIR/qemu-riscv64-static /run/qemu-b/qemu-aarch64-static\n\
             section first; code $BINFMTD install --arch arm64 --interpreter-dir $QEMU_DIR\n\
             cp {entry} /tmp/before\n\
             section second; code $BINFMTD install --arch arm64 --interpreter-dir /run/qemu-b\n\
             section entries; entries\n\
             section same; cmp /tmp/before {entry} && echo same; grep ^interpreter {entry} || echo \"no {entry}\"\n\
             section run; {bb} uname -m\n\
             section status; code $BINFMTD status --json",
            bb = a64.host_path().display(),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(with_exit(&s["first"]).1, 0, "{run}");
    let (second, code) = with_exit(&s["second"]);
    assert_eq!(code, 1, "a failed replacement is a failed arch: {run}");
    assert!(
        second.starts_with("aarch64: NOT WORKING: kept previous binfmtd-aarch64"),
        "{run}"
    );
    // Both are binfmtd's cache copies: /run/qemu-b's file is the riscv64 qemu's bytes.
    let want = format!(
        "new interpreter {} failed its probe, so the previous registration binfmtd-aarch64 stays (rollback)",
        qemu_cached_in_sandbox("riscv64")
    );
    assert!(second.contains(&want), "{run}");
    let kept = qemu_cached_in_sandbox("aarch64");
    assert_eq!(
        s["entries"], "binfmtd-aarch64\n",
        "no candidate left: {run}"
    );
    assert_eq!(s["same"], format!("same\ninterpreter {kept}\n"), "{run}");
    assert_eq!(s["run"], "aarch64\n", "{run}");
    let (text, code) = with_exit(&s["status"]);
    let row = status_row(&json(text), "aarch64").clone();
    assert_eq!(row["state"], "emulated-working", "{row}");
    assert_eq!(row["interpreter"], kept.as_str(), "{row}");
    assert_eq!(code, 0, "{run}");
}

#[test]
fn selftest_passes_after_install_and_fails_after_uninstall() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{INSTALL} --arch arm64 >/dev/null\n\
             section pass; code $BINFMTD selftest --arch arm64\n\
             $BINFMTD uninstall --all >/dev/null\n\
             section fail; code $BINFMTD selftest --arch arm64\n\
             section entries; entries"
        ))
        .success();
    let s = sections(&run.stdout);
    let (pass, code) = with_exit(&s["pass"]);
    assert_eq!(code, 0, "{run}");
    let words: Vec<&str> = pass.split_whitespace().collect();
    assert_eq!(words[..3], ["PASS", "aarch64", "emulated-working"], "{run}");
    assert_eq!(pass.lines().count(), 1, "{run}");
    let (fail, code) = with_exit(&s["fail"]);
    assert_eq!(code, 1, "{run}");
    let words: Vec<&str> = fail.split_whitespace().collect();
    assert_eq!(words[..3], ["FAIL", "aarch64", "absent"], "{run}");
    assert_eq!(s["entries"], "", "{run}");
}
