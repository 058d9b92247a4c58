//! Acceptance item 1, for EVERY foreign arch binfmtd has a probe for: before `install` the
//! foreign binary fails with ENOEXEC; after it, it runs directly and, from a separate mount
//! namespace, in a chroot whose root holds nothing but that binary (the F flag pinned qemu
//! at registration), and `status --json` reports the arch working through binfmtd's entry.
//!
//! Arches with a Debian busybox fixture run busybox; the others run binfmtd's own probe
//! program for the arch, a static ELF that prints how argc and argv[0] arrived. One sandbox
//! per group keeps the run short on small CI machines.

mod common;

use std::time::Duration;

use binfmtd::arch::Arch;
use binfmtd::probe;
use common::fixtures::qemu_in_sandbox;
use common::report::{assert_installed, assert_status_working, write_file_cmd, INSTALL};
use common::{sections, Busybox, Sandbox, FOREIGN_BUSYBOX};

/// Arches with a probe that this host does not run natively, decided the way binfmtd
/// decides it: by executing the native probe variants here.
fn foreign_probed() -> Vec<&'static Arch> {
    let scratch = tempfile::tempdir().expect("a scratch directory for native probes");
    let prover = binfmtd::prover::exec_prover(scratch.path().into(), Duration::from_secs(10));
    let native = binfmtd::prover::native_arches(prover.as_ref());
    let foreign: Vec<&'static Arch> = probe::supported()
        .filter(|a| !native.iter().any(|n| n.qemu == a.qemu))
        .collect();
    // A sanity floor, so a broken native check cannot shrink the test to nothing.
    assert!(foreign.len() >= 10, "too few foreign arches: {foreign:?}");
    foreign
}

fn has_busybox(a: &Arch) -> bool {
    FOREIGN_BUSYBOX.iter().any(|b| b.arch().qemu == a.qemu)
}

/// One line per arch: the exit code of running `cmd` with `$a` set to each name.
fn each(names: &[&str], cmd: &str) -> String {
    format!("for a in {}; do {cmd}; done", names.join(" "))
}

#[test]
fn every_busybox_arch_runs_after_install_directly_in_a_chroot_and_after_pivot_root() {
    let Some(sb) = Sandbox::new() else { return };
    let foreign = foreign_probed();
    let bbs: Vec<Busybox> = FOREIGN_BUSYBOX
        .iter()
        .copied()
        .filter(|b| foreign.iter().any(|a| a.qemu == b.arch().qemu))
        .collect();
    assert_eq!(
        bbs.len(),
        FOREIGN_BUSYBOX.len(),
        "every fixture has a probe"
    );
    let qemus: Vec<&str> = bbs.iter().map(|b| b.arch().qemu).collect();
    let targets: Vec<&str> = bbs.iter().map(|b| b.qemu_target()).collect();
    // Each rootfs holds only /bin/busybox: nothing of qemu, no shell but busybox itself.
    // Every copy keeps the name busybox: with P, argv[0] arrives intact and busybox picks
    // its applet from it.
    let copies: String = bbs
        .iter()
        .map(|b| {
            let q = b.arch().qemu;
            format!(
                "mkdir -p /tmp/bb/{q} /tmp/root-{q}/bin\n\
                 cp {p} /tmp/bb/{q}/busybox; cp {p} /tmp/root-{q}/bin/busybox\n",
                p = b.host_path().display()
            )
        })
        .collect();
    let a64 = Busybox::by_debian("arm64");
    let pivot = "mount --bind /tmp/rootfs /tmp/rootfs && cd /tmp/rootfs && mkdir old && \
                 pivot_root . old && exec /bin/sh -c \"umount -l /old && rmdir /old && uname -m\"";
    let run = sb
        .with_qemu(&targets)
        .run_script(&format!(
            "{copies}\
             mkrootfs /tmp/rootfs {a64} {q}\n\
             section before; {before}\n\
             section install; code {INSTALL} --arch {list} --json\n\
             section entries; entries\n\
             section direct; {direct}\n\
             section chroot; unshare --mount sh -c '{chroot}'\n\
             section pivot; unshare --mount sh -c '{pivot}'\n\
             section status; code $BINFMTD status --json",
            a64 = a64.host_path().display(),
            q = qemu_in_sandbox(a64.qemu_target()),
            before = each(&qemus, "code /tmp/bb/$a/busybox true"),
            list = qemus.join(","),
            direct = each(&qemus, "/tmp/bb/$a/busybox uname -m"),
            chroot = each(&qemus, "chroot /tmp/root-$a /bin/busybox uname -m"),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(
        s["before"],
        "exit=126\n".repeat(bbs.len()),
        "ENOEXEC before install: {run}"
    );
    assert_eq!(
        run.stderr.matches("Exec format error").count(),
        bbs.len(),
        "{run}"
    );
    assert_installed(&s["install"], &qemus);
    let mut want_entries: Vec<String> = qemus.iter().map(|q| format!("binfmtd-{q}\n")).collect();
    want_entries.sort();
    assert_eq!(s["entries"], want_entries.concat(), "{run}");
    let unames: String = bbs.iter().map(|b| format!("{}\n", b.uname)).collect();
    assert_eq!(s["direct"], unames, "{run}");
    assert_eq!(s["chroot"], unames, "F: no qemu in the chroots: {run}");
    assert_eq!(s["pivot"], format!("{}\n", a64.uname), "{run}");
    assert_status_working(&s["status"], &qemus);
}

/// The probe's line for `arch` when it ran with `argc` arguments and argv[0] starting with
/// `argv0`.
fn probe_line(arch: &str, argc: u8, argv0: u8) -> String {
    format!(
        "{} argc={argc:02x} argv0={argv0:02x} arch={arch}\n",
        probe::MARKER
    )
}

#[test]
fn every_other_probed_arch_runs_its_probe_after_install_directly_and_in_a_chroot() {
    let Some(sb) = Sandbox::new() else { return };
    let arches: Vec<&'static Arch> = foreign_probed()
        .into_iter()
        .filter(|a| !has_busybox(a))
        .collect();
    let qemus: Vec<&str> = arches.iter().map(|a| a.qemu).collect();
    let targets: Vec<&str> = arches.iter().map(|a| a.interpreter).collect();
    let programs: String = arches
        .iter()
        .map(|a| {
            let bytes = probe::program(a).expect("supported arches have a probe");
            let q = a.qemu;
            format!(
                "mkdir -p /tmp/root-{q}\n{}\n{}\n",
                write_file_cmd(&format!("/tmp/p/{q}"), &bytes),
                write_file_cmd(&format!("/tmp/root-{q}/probe"), &bytes),
            )
        })
        .collect();
    let run = sb
        .with_qemu(&targets)
        .run_script(&format!(
            "mkdir -p /tmp/p\n{programs}\
             section before; {before}\n\
             section install; code {INSTALL} --arch {list} --json\n\
             section entries; entries\n\
             section direct; {direct}\n\
             section chroot; unshare --mount sh -c '{chroot}'\n\
             section status; code $BINFMTD status --json",
            // bash, not sh: `exec -a` sets argv[0], and bash does not retry an ELF it
            // cannot exec as a shell script.
            before = each(&qemus, "code bash -c 'exec -a @probe /tmp/p/$0 x' $a"),
            list = qemus.join(","),
            direct = each(&qemus, "bash -c 'exec -a @probe /tmp/p/$0 x' $a"),
            chroot = each(&qemus, "chroot /tmp/root-$a /probe x y"),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(
        s["before"],
        "exit=126\n".repeat(arches.len()),
        "ENOEXEC before install: {run}"
    );
    assert_eq!(
        run.stderr.matches("Exec format error").count(),
        arches.len(),
        "{run}"
    );
    assert_installed(&s["install"], &qemus);
    let mut want_entries: Vec<String> = qemus.iter().map(|q| format!("binfmtd-{q}\n")).collect();
    want_entries.sort();
    assert_eq!(s["entries"], want_entries.concat(), "{run}");
    // Directly: argv[0] "@probe" and one argument arrive as given (P works).
    let direct: String = qemus.iter().map(|q| probe_line(q, 2, b'@')).collect();
    assert_eq!(s["direct"], direct, "{run}");
    // In a chroot holding only the probe: chroot(1) passes "/probe" and two arguments.
    let chroot: String = qemus.iter().map(|q| probe_line(q, 3, b'/')).collect();
    assert_eq!(s["chroot"], chroot, "F: no qemu in the chroots: {run}");
    assert_status_working(&s["status"], &qemus);
}
