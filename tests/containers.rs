//! Real container runtimes inside the sandbox: an arm64 (and riscv64) container built from
//! a busybox-only rootfs fails with "exec format error" until an F entry exists, then runs.
//! Nothing of qemu is inside the container; the kernel pinned it at registration.

mod common;

use common::containerd::{image_script, SETUP as CONTAINERD_SETUP};
use common::fixtures::qemu_in_sandbox;
use common::{register_cmd, Busybox, Sandbox};

/// Shell that makes an OCI bundle at /tmp/bundle from the busybox rootfs, and the runtime
/// layout the notes describe: crun 1.8 refuses the host's hybrid cgroup layout, so the v2
/// mount is hidden and cgroups are left alone (this sandbox cannot delegate them anyway).
fn bundle_script(bb: &Busybox) -> String {
    format!(
        "mkrootfs /tmp/bundle/rootfs {bb} {q}\n\
         cd /tmp/bundle && runc spec --rootless && cd /\n\
         sed -i 's/\"terminal\": true/\"terminal\": false/' /tmp/bundle/config.json\n\
         if [ -d /sys/fs/cgroup/unified ]; then mount -t tmpfs none /sys/fs/cgroup/unified; fi\n",
        bb = bb.host_path().display(),
        q = qemu_in_sandbox(bb.qemu_target()),
    )
}

/// The container's process is `sh` reading commands from stdin (the spec's default args).
fn container_runs_after_registration(runtime: &str, options: &str, debian: &str) {
    let bb = Busybox::by_debian(debian);
    let reg = register_cmd(bb.arch(), &qemu_in_sandbox(bb.qemu_target()), "F");
    container_runs_after(runtime, options, bb, &reg);
}

/// `register` is the shell that makes the format work (a raw entry, or binfmtd itself).
fn container_runs_after(runtime: &str, options: &str, bb: Busybox, reg: &str) {
    let Some(sb) = Sandbox::new() else { return };
    let run_ctr = |id: &str| {
        format!(
            "echo 'uname -m; find / -xdev -name \"qemu*\"; echo searched' | \
             {runtime} {options} --root /run/{runtime} run --bundle /tmp/bundle {id}"
        )
    };
    let run = sb
        .with_qemu(&[bb.qemu_target()])
        .run_script(&format!(
            "{bundle}\
             if {before} 2>/tmp/err; then echo ran-unregistered; else echo failed; fi\n\
             cat /tmp/err >&2\n\
             {reg}\n\
             {after}",
            bundle = bundle_script(&bb),
            before = run_ctr("before"),
            after = run_ctr("after"),
        ))
        .success();
    assert_eq!(
        run.stdout,
        format!("failed\n{}\nsearched\n", bb.uname),
        "{run}"
    );
    assert!(
        run.stderr.to_lowercase().contains("exec format error"),
        "without an entry the runtime must report the seed failure: {run}"
    );
}

#[test]
fn crun_runs_an_arm64_container() {
    container_runs_after_registration("crun", "--cgroup-manager=disabled", "arm64");
}

#[test]
fn crun_runs_a_riscv64_container() {
    container_runs_after_registration("crun", "--cgroup-manager=disabled", "riscv64");
}

#[test]
fn crun_runs_an_arm64_container_after_binfmtd_install() {
    let install = "$BINFMTD install --arch linux/arm64 --interpreter-dir $QEMU_DIR >&2";
    container_runs_after(
        "crun",
        "--cgroup-manager=disabled",
        Busybox::by_debian("arm64"),
        install,
    );
}

#[test]
fn runc_runs_an_arm64_container() {
    container_runs_after_registration("runc", "", "arm64");
}

/// containerd + ctr, the runtime EKS nodes use: an arm64 OCI image (built with umoci from the
/// busybox rootfs) is selected by platform and run through the runc shim, with crun doing
/// the work (cgroups cannot be delegated into this sandbox).
#[test]
fn containerd_runs_an_arm64_image() {
    let bb = Busybox::by_debian("arm64");
    let reg = register_cmd(bb.arch(), &qemu_in_sandbox("aarch64"), "F");
    containerd_runs_image_after(bb, &reg);
}

#[test]
fn containerd_runs_an_arm64_image_after_binfmtd_install() {
    let install = "$BINFMTD install --arch linux/arm64 --interpreter-dir $QEMU_DIR >&2";
    containerd_runs_image_after(Busybox::by_debian("arm64"), install);
}

/// `register` is the shell that makes the format work (a raw entry, or binfmtd itself).
fn containerd_runs_image_after(bb: Busybox, reg: &str) {
    let Some(sb) = Sandbox::new() else { return };
    let ctr_run = |id: &str| {
        format!(
            "code ctr -a /run/ctd/sock run --rm --platform linux/arm64 --runc-binary /run/ctd/runc \
             --snapshotter native test.invalid/busybox:latest {id} uname -m"
        )
    };
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{setup}\n{image}\n\
             section before; {before}\n\
             {reg}\n\
             section after; {after}\n\
             kill $ctd; wait $ctd || true",
            setup = CONTAINERD_SETUP,
            image = image_script(&bb),
            before = ctr_run("before"),
            after = ctr_run("after"),
        ))
        .success();
    let s = common::sections(&run.stdout);
    assert_eq!(s["before"], "exit=1\n", "{run}");
    assert!(run.stderr.contains("Exec format error"), "{run}");
    assert_eq!(s["after"], format!("{}\nexit=0\n", bb.uname), "{run}");
}
