//! Acceptance tests of the BUILT binfmtd binary (`install`, `uninstall` and their refusals)
//! against a real, private binfmt_misc instance, real qemu and real foreign binaries.
//! Every foreign arch end to end: core_arches.rs; re-runs, rollback, failing foreign
//! entries, argv[0] and selftest: core_lifecycle.rs.

mod common;

use binfmtd::arch;
use binfmtd::entry::{parse_entry, Flags, Registration};
use common::fixtures::{qemu_in_sandbox, register_raw_cmd};
use common::report::INSTALL;
use common::{sections, with_exit, Busybox, Sandbox, NATIVE_I386};

/// A Debian-style entry (qemu-user-binfmt's name and flags) belongs to another tool:
/// install leaves it alone, uninstall removes only binfmtd's entries, and the foreign
/// entry reads back byte for byte the same throughout.
#[test]
fn foreign_entry_survives_install_and_uninstall_byte_for_byte() {
    let Some(sb) = Sandbox::new() else { return };
    let a64 = arch::lookup("arm64").unwrap();
    let debian = Registration {
        name: "qemu-aarch64".into(),
        magic: a64.magic.to_vec(),
        mask: a64.mask.to_vec(),
        interpreter: qemu_in_sandbox("aarch64").into(),
        flags: Flags::parse("OPF").unwrap(),
    };
    let run = sb
        .with_qemu(&["aarch64", "s390x"])
        .run_script(&format!(
            "{reg}\n\
             cat /proc/sys/fs/binfmt_misc/qemu-aarch64 > /tmp/before\n\
             section install; code {INSTALL} --arch arm64,s390x\n\
             section after-install; entries; cmp /tmp/before /proc/sys/fs/binfmt_misc/qemu-aarch64 && echo same\n\
             section uninstall; code $BINFMTD uninstall --all\n\
             section after-uninstall; entries; cmp /tmp/before /proc/sys/fs/binfmt_misc/qemu-aarch64 && echo same\n\
             {bb} uname -m\n\
             section foreign; cat /tmp/before",
            reg = register_raw_cmd(&debian),
            bb = Busybox::by_debian("arm64").host_path().display(),
        ))
        .success();
    let s = sections(&run.stdout);
    let entry = parse_entry("qemu-aarch64", &s["foreign"]).unwrap();
    assert!(debian.is_realised_by(&entry), "{entry:?}");
    assert!(
        s["after-install"].ends_with("qemu-aarch64\nsame\n"),
        "{run}"
    );
    assert_eq!(with_exit(&s["uninstall"]).1, 0, "{run}");
    assert_eq!(
        s["after-uninstall"], "qemu-aarch64\nsame\naarch64\n",
        "{run}"
    );
    // README "Install semantics": a foreign F entry that passes the probe is used as it is,
    // so binfmtd adds an entry for s390x only, and uninstall has only that to remove.
    assert_eq!(with_exit(&s["install"]).1, 0, "{run}");
    assert_eq!(
        s["after-install"], "binfmtd-s390x\nqemu-aarch64\nsame\n",
        "{run}"
    );
    assert_eq!(s["uninstall"], "removed binfmtd-s390x\nexit=0\n", "{run}");
}

/// `--arch all` with qemu for i386 and x86_64 at hand must still register neither: both
/// run natively here and an entry would hijack every native binary of that format.
#[test]
fn install_all_registers_no_native_format() {
    let Some(sb) = Sandbox::new() else { return };
    assert_eq!(
        arch::host().qemu,
        "x86_64",
        "this test is written for x86_64 hosts"
    );
    let mut targets: Vec<&str> = common::FOREIGN_BUSYBOX
        .iter()
        .map(|b| b.qemu_target())
        .collect();
    targets.extend(["i386", "x86_64"]);
    let run = sb
        .with_qemu(&targets)
        .run_script(&format!(
            "section install; code {INSTALL} --arch all\n\
             section native; {i386} uname -m\n\
             section entries; for e in $(entries); do echo \"--- $e\"; cat /proc/sys/fs/binfmt_misc/$e; done",
            i386 = NATIVE_I386.host_path().display(),
        ))
        .success();
    let s = sections(&run.stdout);
    // qemu-i386 reports i686; the native i386 busybox sees the real x86_64 kernel.
    assert_eq!(s["native"], "x86_64\n", "native i386 was hijacked: {run}");
    let i386 = std::fs::read(NATIVE_I386.host_path()).unwrap();
    let x86_64 = std::fs::read(env!("CARGO_BIN_EXE_binfmtd")).unwrap();
    let mut names = Vec::new();
    for block in s["entries"].split("--- ").filter(|b| !b.is_empty()) {
        let (name, text) = block.split_once('\n').unwrap();
        let e = parse_entry(name, text).unwrap();
        assert!(
            !e.matches_header(&i386),
            "{name} claims native i386 binaries: {text}"
        );
        assert!(
            !e.matches_header(&x86_64),
            "{name} claims native x86_64 binaries: {text}"
        );
        names.push(name.to_string());
    }
    for bb in common::FOREIGN_BUSYBOX {
        let want = format!("binfmtd-{}", bb.arch().qemu);
        assert!(
            names.contains(&want),
            "{want} missing from {names:?}: {run}"
        );
    }
    let (_, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "{run}");
}

/// Run `setup`, then `cmd`; it must exit with `exit`, say every one of `says` (stdout and
/// stderr together) and leave the instance with no entries at all.
fn refused(setup: &str, cmd: &str, exit: i32, says: &[&str]) {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{setup}\nsection cmd; code {cmd}\n\
             mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\n\
             section entries; entries"
        ))
        .success();
    let s = sections(&run.stdout);
    let (_, code) = with_exit(&s["cmd"]);
    assert_eq!(code, exit, "{run}");
    let said = format!("{}{}", s["cmd"], run.stderr);
    for want in says {
        assert!(said.contains(want), "output lacks {want:?}: {run}");
    }
    assert_eq!(
        s["entries"], "",
        "a refused install registered something: {run}"
    );
}

#[test]
fn refuses_an_interpreter_built_for_another_cpu() {
    let bb = Busybox::by_debian("arm64").host_path();
    let setup = format!(
        "mkdir /tmp/q && cp {} /tmp/q/qemu-aarch64-static",
        bb.display()
    );
    let says = [
        "aarch64",
        "/tmp/q/qemu-aarch64-static",
        "built for aarch64 CPUs but this host is x86_64",
    ];
    refused(
        &setup,
        "$BINFMTD install --arch arm64 --interpreter-dir /tmp/q",
        1,
        &says,
    );
}

#[test]
fn refuses_a_dynamically_linked_interpreter() {
    let setup = "mkdir /tmp/q && cp /bin/true /tmp/q/qemu-aarch64-static";
    let says = [
        "/tmp/q/qemu-aarch64-static",
        "dynamically linked",
        "statically linked qemu",
    ];
    refused(
        setup,
        "$BINFMTD install --arch arm64 --interpreter-dir /tmp/q",
        1,
        &says,
    );
}

#[test]
fn refuses_a_world_writable_interpreter() {
    let setup = "mkdir /tmp/q && cp $QEMU_DIR/qemu-aarch64-static /tmp/q/ && chmod 0777 /tmp/q/qemu-aarch64-static";
    let says = [
        "/tmp/q/qemu-aarch64-static",
        "writable by group or others",
        "chmod go-w",
    ];
    refused(
        setup,
        "$BINFMTD install --arch arm64 --interpreter-dir /tmp/q",
        1,
        &says,
    );
}

/// A qemu owned by an ordinary user (uid 1000, mapped in the sandbox) in a root-owned directory.
#[test]
fn refuses_an_interpreter_not_owned_by_root() {
    let setup = "mkdir /tmp/q && cp $QEMU_DIR/qemu-aarch64-static /tmp/q/ && chown 1000:1000 /tmp/q/qemu-aarch64-static";
    let cmd = "$BINFMTD install --arch arm64 --interpreter /tmp/q/qemu-aarch64-static";
    let says = ["/tmp/q/qemu-aarch64-static", "owned by uid 1000, not root"];
    refused(setup, cmd, 1, &says);
}

#[test]
fn refuses_an_unknown_arch_name() {
    let says = ["unknown architecture \"arm65\"", "arm64"];
    refused("", &format!("{INSTALL} --arch arm65"), 2, &says);
}

#[test]
fn refuses_the_native_arch() {
    let says = ["x86_64 runs natively", "nothing was registered"];
    refused("", &format!("{INSTALL} --arch amd64,arm64"), 2, &says);
}

#[test]
fn refuses_without_cap_sys_admin() {
    let cmd =
        format!("setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin {INSTALL} --arch arm64");
    refused("", &cmd, 3, &["needs CAP_SYS_ADMIN", "nothing was changed"]);
}

/// Root of a child user namespace that does not own the mount namespace: binfmt_misc is
/// not mounted and cannot be, which is what a restricted container sees.
#[test]
fn refuses_when_binfmt_misc_is_unavailable() {
    let setup = "umount /proc/sys/fs/binfmt_misc";
    let cmd = format!("unshare --user --map-root-user {INSTALL} --arch arm64");
    let says = [
        "binfmt_misc is not available at /proc/sys/fs/binfmt_misc",
        "EPERM",
        "Hint:",
    ];
    refused(setup, &cmd, 3, &says);
}

#[test]
fn uninstall_by_arch_removes_only_that_entry() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["aarch64", "s390x"])
        .run_script(&format!(
            "{INSTALL} --arch arm64,s390x >/dev/null\n\
             section uninstall; code $BINFMTD uninstall --arch s390x\n\
             section left; entries; {a64} uname -m\n\
             section again; code $BINFMTD uninstall --arch s390x",
            a64 = Busybox::by_debian("arm64").host_path().display(),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["uninstall"], "removed binfmtd-s390x\nexit=0\n", "{run}");
    assert_eq!(s["left"], "binfmtd-aarch64\naarch64\n", "{run}");
    assert_eq!(
        s["again"], "no binfmtd entries to remove\nexit=0\n",
        "{run}"
    );
}
