//! Kernel-level tests of the sandbox itself: it is private, it cannot reach the host's
//! binfmt_misc, and foreign binaries behave in it as they would on a real node.

mod common;

use binfmtd::arch;
use binfmtd::entry::{Flags, Registration};
use common::fixtures::{qemu_in_sandbox, register_raw_cmd};
use common::{host, register_cmd, Sandbox};

#[test]
fn private_instance_starts_empty_and_dies_with_the_sandbox() {
    let Some(sb) = Sandbox::new() else { return };
    let aarch64 = arch::lookup("arm64").unwrap();
    let reg = register_cmd(aarch64, "/bin/true", "");
    let run = sb
        .run_script(&format!(
            "echo before=$(entries | wc -l)\ncat /proc/sys/fs/binfmt_misc/status\n{reg}\nentries"
        ))
        .success();
    assert_eq!(run.stdout, "before=0\nenabled\nbinfmtd-aarch64\n");
    // The same registration again in a new sandbox: no EEXIST, the old instance is gone.
    let again = sb.run_script(&format!("{reg}\nentries")).success();
    assert_eq!(again.stdout, "binfmtd-aarch64\n");
}

#[test]
fn entries_read_back_as_written() {
    let Some(sb) = Sandbox::new() else { return };
    let a = arch::lookup("riscv64").unwrap();
    let reg = Registration::own(
        a,
        "/run/qemu/qemu-riscv64-static".into(),
        Flags::parse("POF").unwrap(),
    );
    let run = sb
        .with_qemu(&["riscv64"])
        .run_script(&format!(
            "{}\ncat /proc/sys/fs/binfmt_misc/binfmtd-riscv64",
            register_raw_cmd(&reg)
        ))
        .success();
    let entry = binfmtd::entry::parse_entry("binfmtd-riscv64", &run.stdout).unwrap();
    assert!(reg.is_realised_by(&entry), "{entry:?} != {reg:?}\n{run}");
    assert!(run.stdout.contains("flags: POF"), "{run}");
}

/// A register write made inside the sandbox before the private mount goes to whatever
/// /proc/sys/fs/binfmt_misc the host has. Root here is host uid 100000, so it must fail.
#[test]
fn host_register_is_refused_before_the_private_mount() {
    let Some(sb) = Sandbox::new() else { return };
    let reg = register_cmd(arch::lookup("arm64").unwrap(), "/bin/true", "F");
    let before = host::snapshot();
    let run = sb
        .bare()
        .run_script(&format!(
            "if ( {reg} ) 2>/tmp/err.$$; then echo WRITTEN; else echo refused; fi\n\
             cat /tmp/err.$$ >&2; rm -f /tmp/err.$$"
        ))
        .success();
    assert_eq!(run.stdout, "refused\n", "{run}");
    match before {
        host::Snapshot::Mounted(_) => assert!(
            run.stderr.contains("Permission denied"),
            "the host instance must refuse uid 100000 with EACCES: {run}"
        ),
        host::Snapshot::NotMounted => eprintln!(
            "note: the host has no binfmt_misc mounted, so there was no host instance to write to; \
             checked that the write failed and the host still has none. \
             nested_unprivileged_root_cannot_write_the_parent_instance covers the refusal itself"
        ),
    }
    assert_eq!(host::snapshot(), before);
}

/// The same property one level down, where an instance to attack always exists: the
/// sandbox mounts its instance, then a child user namespace whose root is the sandbox's
/// unprivileged uid 1000 tries to register through the inherited mount and is refused.
/// The control — a child namespace whose root IS the sandbox root — does land there,
/// which is exactly why the sandbox's own root maps to uid 100000 and not to host root.
#[test]
fn nested_unprivileged_root_cannot_write_the_parent_instance() {
    let Some(sb) = Sandbox::new() else { return };
    let a = arch::lookup("s390x").unwrap();
    let reg = common::sh_quote(&register_cmd(a, "/bin/true", ""));
    let run = sb
        .run_script(&format!(
            "if setpriv --reuid=1000 --regid=1000 --clear-groups \
                 unshare --user --map-root-user --mount sh -c {reg} 2>/tmp/err; then echo WRITTEN; else echo refused; fi\n\
             cat /tmp/err >&2\n\
             echo after-unprivileged=$(entries | wc -l)\n\
             unshare --user --map-root-user --mount sh -c {reg}\n\
             echo after-root-mapped=$(entries)"
        ))
        .success();
    assert_eq!(
        run.stdout, "refused\nafter-unprivileged=0\nafter-root-mapped=binfmtd-s390x\n",
        "{run}"
    );
    assert!(run.stderr.contains("Permission denied"), "{run}");
}

#[test]
fn qemu_copies_are_owned_by_sandbox_root_and_host_files_are_not() {
    let Some(sb) = Sandbox::new() else { return };
    let q = qemu_in_sandbox("aarch64");
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "stat -c '%u %a' {q} $QEMU_DIR\nstat -c %u /usr/bin/qemu-aarch64-static\nid -u"
        ))
        .success();
    assert_eq!(run.stdout, "0 755\n0 755\n65534\n0\n", "{run}");
}
