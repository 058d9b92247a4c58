//! Kernel-level tests of the sandbox itself: it is private, it cannot reach the host's
//! binfmt_misc, and foreign binaries behave in it as they would on a real node.

mod common;

use binfmtd::arch;
use binfmtd::entry::{Flags, Registration};
use common::fixtures::{qemu_in_sandbox, register_raw_cmd};
use common::{host, register_cmd, Busybox, Sandbox, FOREIGN_BUSYBOX, NATIVE_I386};

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

/// Run a foreign busybox: ENOEXEC with no entry; with an F entry it runs directly and
/// inside a chroot that holds nothing but busybox (the kernel pinned the interpreter).
fn foreign_runs_only_once_registered(debian: &str) {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian(debian);
    let (path, q) = (bb.host_path(), qemu_in_sandbox(bb.qemu_target()));
    let reg = register_cmd(bb.arch(), &q, "F");
    let run = sb
        .with_qemu(&[bb.qemu_target()])
        .run_script(&format!(
            "bb={path}\n\
             if $bb uname -m 2>/tmp/err; then echo ran-unregistered; else echo rc=$?; fi\n\
             cat /tmp/err >&2\n\
             mkrootfs /tmp/rootfs $bb {q}\n\
             {reg}\n\
             $bb uname -m\n\
             chroot /tmp/rootfs /bin/sh -c 'uname -m; find / -name \"qemu*\"; echo searched'",
            path = path.display()
        ))
        .success();
    // No pipelines inside the chroot: without P, busybox sh's re-exec of itself loses the
    // applet name (p_flag_preserves_busybox_argv0 shows it).
    let want = format!("rc=126\n{u}\n{u}\nsearched\n", u = bb.uname);
    assert_eq!(run.stdout, want, "{run}");
    assert!(run.stderr.contains("Exec format error"), "{run}");
}

macro_rules! foreign_arch_tests {
    ($($name:ident => $debian:literal),* $(,)?) => {
        $(#[test]
        fn $name() {
            foreign_runs_only_once_registered($debian)
        })*

        #[test]
        fn every_foreign_fixture_has_a_test() {
            let tested = [$($debian),*];
            for bb in FOREIGN_BUSYBOX {
                assert!(tested.contains(&bb.debian), "no foreign_arch_tests! line for {}", bb.debian);
            }
        }
    };
}

foreign_arch_tests! {
    arm64_busybox_runs_only_once_registered => "arm64",
    armhf_busybox_runs_only_once_registered => "armhf",
    mips64el_busybox_runs_only_once_registered => "mips64el",
    ppc64el_busybox_runs_only_once_registered => "ppc64el",
    s390x_busybox_runs_only_once_registered => "s390x",
    riscv64_busybox_runs_only_once_registered => "riscv64",
}

/// The control for every "ENOEXEC before" above: the i386 busybox runs natively on this
/// x86_64 host with an empty instance, and reports the host's machine.
#[test]
fn native_i386_busybox_runs_with_no_entry() {
    let Some(sb) = Sandbox::new() else { return };
    if arch::host().qemu != "x86_64" {
        panic!(
            "this control needs an x86_64 host, not {}",
            arch::host().qemu
        );
    }
    let path = NATIVE_I386.host_path();
    let run = sb
        .run_script(&format!(
            "echo $(entries | wc -l)\n{} uname -m",
            path.display()
        ))
        .success();
    assert_eq!(run.stdout, "0\nx86_64\n", "{run}");
}

/// Without F the kernel looks the interpreter up at exec time, in the caller's root: a
/// chroot with no qemu in it cannot run the foreign binary, while the host side can.
#[test]
fn without_f_a_chroot_cannot_find_the_interpreter() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64");
    let q = qemu_in_sandbox("aarch64");
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "mkrootfs /tmp/rootfs {bb} {q}\n{reg}\n\
             /tmp/rootfs/bin/busybox uname -m\n\
             if chroot /tmp/rootfs /bin/sh -c true 2>/tmp/err; then echo ran; else echo rc=$?; fi\n\
             cat /tmp/err >&2",
            bb = bb.host_path().display(),
            reg = register_cmd(bb.arch(), &q, "")
        ))
        .success();
    assert_eq!(run.stdout, "aarch64\nrc=127\n", "{run}");
    assert!(run.stderr.contains("No such file or directory"), "{run}");
}

/// pivot_root, as container runtimes do it: the old root (and with it every qemu) is
/// detached, and the F entry still runs the foreign shell.
#[test]
fn f_entry_runs_after_pivot_root() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64");
    let q = qemu_in_sandbox("aarch64");
    let inner = "umount -l /old && rmdir /old && uname -m && echo \\$(ls /)";
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "mkrootfs /tmp/rootfs {bb} {q}\n{reg}\n\
             unshare --mount sh -c 'mount --bind /tmp/rootfs /tmp/rootfs && cd /tmp/rootfs && \
                 mkdir old && pivot_root . old && exec /bin/sh -c \"{inner}\"'",
            bb = bb.host_path().display(),
            reg = register_cmd(bb.arch(), &q, "F")
        ))
        .success();
    assert_eq!(run.stdout, "aarch64\nbin dev etc proc sys tmp\n", "{run}");
}

/// busybox is a multi-call binary: the applet is argv[0]. With P the kernel hands qemu the
/// original argv[0] and a nested `sh -c` sees `sh`; without P it sees the path the kernel
/// resolved (`/bin/sh`), which is what breaks applets that re-exec themselves.
#[test]
fn p_flag_preserves_busybox_argv0() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64");
    let q = qemu_in_sandbox("aarch64");
    let nested = r#"chroot /tmp/rootfs /bin/sh -c 'sh -c "echo \$0"'"#;
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "mkrootfs /tmp/rootfs {bb} {q}\n\
             {pf}\n{nested}\n\
             echo -1 > /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             {f}\n{nested}",
            bb = bb.host_path().display(),
            pf = register_cmd(bb.arch(), &q, "PF"),
            f = register_cmd(bb.arch(), &q, "F"),
        ))
        .success();
    assert_eq!(run.stdout, "sh\n/bin/sh\n", "{run}");
}

/// The skip rule itself: only a failed kernel probe skips, and never under CI=true.
#[test]
fn a_skip_fails_under_ci() {
    use common::support::{verdict, Verdict};
    let old_kernel = Err("this kernel (6.1) cannot mount a private binfmt_misc".to_string());
    assert_eq!(verdict(&Ok(()), Some("true")), Verdict::Run);
    assert_eq!(verdict(&Ok(()), None), Verdict::Run);
    assert!(matches!(verdict(&old_kernel, None), Verdict::Skip(r) if r.contains("6.1")));
    assert!(matches!(
        verdict(&old_kernel, Some("false")),
        Verdict::Skip(_)
    ));
    assert!(
        matches!(verdict(&old_kernel, Some("true")), Verdict::Fail(r) if r.contains("CI=true") && r.contains("6.1"))
    );
}

/// A dynamically linked arm64 program (Debian's dash with its libc) runs in a chroot that
/// holds its libraries, through an F entry; outside, qemu finds no arm64 loader.
#[test]
fn dynamic_arm64_dash_runs_in_a_chroot_with_its_libc() {
    let Some(sb) = Sandbox::new() else { return };
    let q = qemu_in_sandbox("aarch64");
    let reg = register_cmd(arch::lookup("arm64").unwrap(), &q, "F");
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "d=$FIXTURES/bookworm/arm64\n\
             mkdir /tmp/rootfs && cp -a --no-preserve=ownership $d/dash/. $d/libc6/. /tmp/rootfs/\n\
             {reg}\n\
             if $d/dash/bin/dash -c true 2>/tmp/err; then echo ran; else echo outside=$?; fi\n\
             cat /tmp/err >&2\n\
             chroot /tmp/rootfs /bin/dash -c 'echo inside $0'"
        ))
        .success();
    assert_eq!(run.stdout, "outside=255\ninside /bin/dash\n", "{run}");
    assert!(run.stderr.contains("ld-linux-aarch64.so.1"), "{run}");
}
