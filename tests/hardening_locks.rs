//! Locks and the status file under attack from an ordinary user (uid 1000 in the private
//! sandbox) while binfmtd runs as root: holding the converge lock to stall every repair,
//! holding `binfmtd.lock` to keep the agent from restarting, planting a symlink where the
//! status file is written, and handing binfmtd a terminal as an interpreter path.

mod common;

use common::agent::script;
use common::{sections, with_exit, Sandbox};

/// `$AS_USER CMD...` runs CMD as uid 1000, the attacker (a plain command, so `$!` of
/// `$AS_USER CMD &` is CMD's pid); `lock_of` names the converge lock of the instance.
const AS_USER: &str = "AS_USER='setpriv --reuid=1000 --regid=1000 --clear-groups'\n\
                       lock_of() { echo /run/binfmtd/binfmt_misc-$(mountpoint -d $BM).lock; }\n";

fn attack(body: &str) -> String {
    script(&format!("{AS_USER}{body}"))
}

/// Issue 15, defect 1: uid 1000 runs `flock -x` on the binfmt_misc directory (the old
/// converge lock, which anyone can open). A flush is still repaired at once, a root
/// `install` beside the agent does not wait, and the new lock file is root's alone.
#[test]
fn a_user_cannot_stall_repairs_by_holding_the_converge_lock() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .run_script(&attack(
            "start_agent --arch s390x\n\
             $AS_USER flock -x -o $BM sleep 60 & HOLD=$!\n\
             wait_for grep -q \"FLOCK .* $HOLD \" /proc/locks\n\
             echo -1 > $BM/status\n\
             WAIT_SECS=5 wait_for has binfmtd-s390x\n\
             section repaired; entries\n\
             t0=$(date +%s)\n\
             inst() { timeout 30 $BINFMTD install --interpreter-dir $QEMU_DIR --arch riscv64 >/dev/null; }\n\
             section install; code inst\n\
             section took; echo $(( $(date +%s) - t0 ))\n\
             section lockfile; stat -c '%a %u %F' $(lock_of)\n\
             section user; code $AS_USER flock -x -n $(lock_of) true 2>&1\n\
             section log; cat /tmp/agent.log",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["repaired"], "binfmtd-s390x\n", "{run}");
    assert_eq!(s["install"], "exit=0\n", "{run}");
    assert!(s["took"].trim().parse::<u64>().unwrap() < 10, "{run}");
    assert_eq!(s["lockfile"], "600 0 regular empty file\n", "{run}");
    let (err, code) = with_exit(&s["user"]);
    assert_ne!(code, 0, "uid 1000 opened the converge lock: {run}");
    assert!(err.contains("Permission denied"), "{run}");
    assert!(!s["log"].contains("another binfmtd"), "{run}");
}

/// Issue 15, defect 2: `binfmtd.lock` left 0644 by an older binfmtd, held by uid 1000 who
/// opened it then, is replaced by a 0600 file; so uid 1000 can neither keep the agent from
/// starting nor queue `flock -x` on the new file to take it when the agent restarts. A
/// root process that holds it and is not binfmtd is named as what it is.
#[test]
fn a_user_cannot_keep_the_agent_from_restarting() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&attack(
            "LOCK=/run/binfmtd/binfmtd.lock\n\
             mkdir -p /run/binfmtd; echo 1 > $LOCK; chmod 0644 $LOCK\n\
             # uid 1000 took it while it was 0644, as under an older binfmtd, and keeps it.\n\
             $AS_USER flock -x -o $LOCK sleep 60 & OLD=$!\n\
             wait_for grep -q \"FLOCK .* $OLD \" /proc/locks\n\
             start_agent --arch s390x\n\
             section mode; stat -c '%a %u' $LOCK\n\
             $AS_USER flock -x -o $LOCK sleep 60 2>/tmp/user.err & HOLD=$!\n\
             kill -TERM $AGENT; wait $AGENT || true\n\
             # The attacker has the lock now, or has given up.\n\
             wait_for eval '! kill -0 $HOLD 2>/dev/null || grep -q \"FLOCK .* $HOLD \" /proc/locks'\n\
             rm $STATUS\n\
             $BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x 2>>/tmp/agent.log & AGENT=$!\n\
             wait_for eval 'ready || dead'\n\
             section restarted; alive && echo alive\n\
             section user; cat /tmp/user.err\n\
             section replaced; grep -c 'is not binfmtd: replacing it' /tmp/agent.log\n\
             kill -TERM $AGENT $HOLD $OLD 2>/dev/null || true; wait $AGENT || true\n\
             flock -x -o $LOCK sleep 60 & ROOT=$!\n\
             wait_for grep -q \"FLOCK .* $ROOT \" /proc/locks\n\
             section other; echo $ROOT; code $BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x 2>&1",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["mode"], "600 0\n", "{run}");
    assert_eq!(s["restarted"], "alive\n", "{run}");
    assert!(s["user"].contains("Permission denied"), "{run}");
    assert_eq!(s["replaced"], "1\n", "{run}");
    let (pid, rest) = s["other"].split_once('\n').unwrap();
    let (message, code) = with_exit(rest);
    assert_eq!(code, 3, "{run}");
    assert!(
        message.contains(&format!("process {pid} (flock) already holds"))
            && message.contains("is not binfmtd")
            && !message.contains("another binfmtd"),
        "{run}"
    );
}

/// Suspected in issue 15: the status file writer followed symlinks and did not check its
/// directory. uid 1000 owns the directory of `--status-file` and plants `status.json.tmp`
/// pointing at a root file: binfmtd refuses the directory and never writes the victim.
#[test]
fn the_status_file_is_not_written_through_a_planted_symlink() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&attack(
            "mkdir -m 0755 /run/attack; chown 1000:1000 /run/attack\n\
             echo precious > /run/victim\n\
             $AS_USER ln -s /run/victim /run/attack/status.json.tmp\n\
             $BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x --status-file /run/attack/status.json 2>/tmp/agent.log & AGENT=$!\n\
             wait_for eval 'dead || ! grep -qx precious /run/victim'\n\
             kill $AGENT 2>/dev/null || true; rc=0; wait $AGENT || rc=$?\n\
             section victim; cat /run/victim\n\
             section exit; echo $rc\n\
             section log; cat /tmp/agent.log",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["victim"], "precious\n", "{run}");
    assert_eq!(s["exit"], "3\n", "{run}");
    assert!(
        s["log"].contains("directory /run/attack is owned by uid 1000"),
        "{run}"
    );
}

/// Suspected in issue 15: `trust::open_file` lacked O_NOCTTY. A session leader without a
/// terminal (a systemd service) that opens a terminal device without it makes that
/// terminal its controlling one, and a hangup there signals it. Given a pty as its
/// interpreter, the agent refuses the file and keeps no controlling terminal.
#[test]
fn an_interpreter_path_naming_a_terminal_does_not_become_the_controlling_one() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&attack(
            "python3 -c 'import os, time; m, s = os.openpty(); print(os.ttyname(s), flush=True); time.sleep(120)' > /tmp/pty &\n\
             wait_for test -s /tmp/pty; PTY=$(cat /tmp/pty)\n\
             setsid $BINFMTD run --interpreter $PTY --arch s390x 2>/tmp/agent.log & AGENT=$!\n\
             wait_for grep -q 'not a regular file' /tmp/agent.log\n\
             # Fields 6 and 7 of /proc/PID/stat: the session and the controlling terminal.\n\
             section stat; echo $AGENT; awk '{print $6; print $7}' /proc/$AGENT/stat",
        ))
        .success();
    let s = sections(&run.stdout);
    let stat: Vec<&str> = s["stat"].lines().collect();
    assert_eq!(stat[0], stat[1], "the agent must lead its session: {run}");
    assert_eq!(
        stat[2], "0",
        "the agent took the pty as its terminal: {run}"
    );
}
