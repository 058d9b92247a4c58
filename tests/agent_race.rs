//! Concurrent converge passes on one node (the cloud-init one-liner and the unit at boot):
//! two `install`s started together must both exit 0 with one working entry per arch, every
//! time, and an `install` waits for whoever holds the node's converge lock.

mod common;

use common::report::INSTALL;
use common::{sections, with_exit, Busybox, Sandbox};

const ROUNDS: usize = 25;

#[test]
fn racing_installs_both_succeed_every_time() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("riscv64").host_path();
    let run = sb
        .with_qemu(&["aarch64", "s390x", "riscv64"])
        .run_script(&format!(
            "for i in $(seq {ROUNDS}); do\n\
               $BINFMTD uninstall --all >/dev/null\n\
               {INSTALL} --arch arm64,s390x,riscv64 >/tmp/a 2>&1 & a=$!\n\
               {INSTALL} --arch arm64,s390x,riscv64 >/tmp/b 2>&1 & b=$!\n\
               ra=0; wait $a || ra=$?; rb=0; wait $b || rb=$?\n\
               echo \"round $i: $ra $rb $(entries | tr '\\n' ' ')\"\n\
               if [ $ra$rb != 00 ]; then cat /tmp/a /tmp/b; fi\n\
             done\n\
             section run; {bb} uname -m",
            bb = bb.display(),
        ))
        .success();
    let want = "binfmtd-aarch64 binfmtd-riscv64 binfmtd-s390x ";
    let rounds: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("round "))
        .collect();
    assert_eq!(rounds.len(), ROUNDS, "{run}");
    for (i, line) in rounds.iter().enumerate() {
        assert_eq!(*line, format!("round {}: 0 0 {want}", i + 1), "{run}");
    }
    assert_eq!(sections(&run.stdout)["run"], "riscv64\n", "{run}");
}

/// While another (root) process holds the converge lock, `install` waits (and says for whom)
/// instead of interleaving with it, then converges. (The holder says when it has the lock: a
/// fixed sleep lost the race on a loaded machine.)
#[test]
fn install_waits_for_the_converge_lock() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&format!(
            "mkdir -p /run/binfmtd\n\
             flock /run/binfmtd/binfmt_misc-$(mountpoint -d /proc/sys/fs/binfmt_misc).lock sh -c 'touch /run/held; sleep 1.5' & holder=$!\n\
             wait_for test -e /run/held\n\
             start=$(date +%s%N)\n\
             section install; code env RUST_LOG=info {INSTALL} --arch s390x\n\
             section waited; echo $(( ($(date +%s%N) - start) / 1000000 ))\n\
             section holder; echo $holder; wait"
        ))
        .success();
    let s = sections(&run.stdout);
    let (_, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "{run}");
    let waited: u64 = s["waited"].trim().parse().unwrap();
    assert!(
        waited >= 1000,
        "install did not wait for the lock ({waited} ms): {run}"
    );
    // The holder is named as what it is: not binfmtd.
    let holder = format!("holder=process {} (flock)", s["holder"].trim());
    assert!(
        run.stderr.contains("waiting for the lock") && run.stderr.contains(&holder),
        "no message about the wait naming {holder:?}: {run}"
    );
}
