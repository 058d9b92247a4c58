//! Acceptance tests of `binfmtd run` (the BUILT binary) in the private sandbox: it becomes
//! ready, repairs every kind of drift, reloads, exits cleanly, refuses a second instance,
//! detects a fight, answers /healthz /readyz /metrics, and keeps its status file valid.

mod common;

use common::agent::script;
use common::report::json;
use common::{sections, with_exit, Busybox, Sandbox};

#[test]
fn becomes_ready_and_repairs_every_kind_of_drift() {
    let Some(sb) = Sandbox::new() else { return };
    let s390x = Busybox::by_debian("s390x").host_path();
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .run_script(&script(&format!(
            "start_agent --arch s390x,riscv64 --log-format json\n\
             section ready; entries; {bb} uname -m; jq -c .summary.working $STATUS\n\
             echo -1 > $BM/binfmtd-s390x; repaired s390x '2 removed'\n\
             section removed; entries; {bb} uname -m\n\
             echo 0 > $BM/binfmtd-s390x; repaired s390x '3 disabled'\n\
             section disabled; enabled binfmtd-s390x && {bb} uname -m\n\
             echo -1 > $BM/status; repaired s390x '4 flushed'; repaired riscv64 '2 flushed'\n\
             section flushed; entries; {bb} uname -m\n\
             umount $BM; repaired s390x '5 unmounted'; repaired riscv64 '3 unmounted'\n\
             section unmounted; entries; {bb} uname -m\n\
             section alive; alive && echo yes\n\
             section status; $BINFMTD status --json | jq -r \".daemon.pid == $AGENT\"\n\
             $BINFMTD status | grep -E '^(agent: pid|  s390x: working)' | cut -d' ' -f1-4\n\
             kill $AGENT; wait $AGENT || true\n\
             section stale; $BINFMTD status --json | jq 'has(\"daemon\")'\n\
             section log; cat /tmp/agent.log",
            bb = s390x.display()
        )))
        .success();
    let s = sections(&run.stdout);
    let both = "binfmtd-riscv64\nbinfmtd-s390x\ns390x\n";
    assert!(s["ready"].starts_with(both), "{run}");
    let working: Vec<String> = serde_json::from_str(s["ready"].lines().last().unwrap()).unwrap();
    assert!(
        working.contains(&"s390x".into()) && working.contains(&"riscv64".into()),
        "{run}"
    );
    for drift in ["removed", "flushed", "unmounted"] {
        assert_eq!(s[drift], both, "after {drift}: {run}");
    }
    assert_eq!(s["disabled"], "s390x\n", "{run}");
    assert_eq!(s["alive"], "yes\n", "{run}");
    // `status` adds the running agent's view, and drops it once the agent is gone.
    let status: Vec<&str> = s["status"].lines().collect();
    assert_eq!(status[0], "true", "{run}");
    assert!(
        status[1].starts_with("agent: pid ") && status[1].ends_with(" since"),
        "{run}"
    );
    assert_eq!(status[2], "  s390x: working", "{run}");
    assert_eq!(s["stale"], "false\n", "{run}");
    // --log-format json: every line is one JSON object; each repair is logged once.
    let lines: Vec<serde_json::Value> = s["log"].lines().map(json).collect();
    let repaired = |reason: &str| {
        lines
            .iter()
            .filter(|l| l["fields"]["reason"] == reason && l["fields"]["arch"] == "s390x")
            .count()
    };
    for reason in ["removed", "disabled", "flushed", "unmounted"] {
        assert_eq!(repaired(reason), 1, "{reason} logged once: {run}");
    }
}

/// SIGHUP with a changed arch list converges to it (dropped arches unregistered); so does
/// a change of the file alone; a config that fails validation is refused and the running
/// state kept.
#[test]
fn reloads_the_config_on_sighup_and_on_change() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .run_script(&script(
            "put() { printf '%s\\n' \"$1\" > /tmp/c.new; mv /tmp/c.new /tmp/c.toml; }\n\
             put 'arches = [\"s390x\"]'\n\
             start_agent --config /tmp/c.toml\n\
             section start; entries\n\
             put 'arches = [\"riscv64\"]'; kill -HUP $AGENT\n\
             wait_for has binfmtd-riscv64; wait_for hasnt binfmtd-s390x\n\
             section sighup; entries\n\
             put 'arches = [\"riscv64\", \"s390x\"]'\n\
             wait_for has binfmtd-s390x\n\
             section changed; entries\n\
             put 'arches = [\"vax\"]'\n\
             wait_for grep -q 'config refused' /tmp/agent.log\n\
             kill -HUP $AGENT; sleep 0.3\n\
             section invalid; entries; alive && echo alive\n\
             section log; grep -c 'config refused' /tmp/agent.log; grep -c 'SIGHUP' /tmp/agent.log\n\
             grep -o 'arches: unknown arch[^.]*' /tmp/agent.log | head -n1",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["start"], "binfmtd-s390x\n", "{run}");
    assert_eq!(s["sighup"], "binfmtd-riscv64\n", "{run}");
    assert_eq!(s["changed"], "binfmtd-riscv64\nbinfmtd-s390x\n", "{run}");
    assert_eq!(
        s["invalid"], "binfmtd-riscv64\nbinfmtd-s390x\nalive\n",
        "{run}"
    );
    let log: Vec<&str> = s["log"].lines().collect();
    assert_eq!(log[..2], ["2", "2"], "refused twice, two SIGHUPs: {run}");
    assert!(log[2].contains("vax"), "{run}");
}

/// SIGTERM exits 0 within a second leaving every entry; a second instance refuses,
/// naming the holder; --uninstall-on-exit removes binfmtd's entries and only those.
#[test]
fn exits_cleanly_and_runs_once_per_node() {
    let Some(sb) = Sandbox::new() else { return };
    let foreign = common::register_cmd(
        binfmtd::arch::lookup("riscv64").unwrap(),
        &common::fixtures::qemu_in_sandbox("riscv64"),
        "F",
    )
    .replace("binfmtd-riscv64", "qemu-riscv64");
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .run_script(&script(&format!(
            "{foreign}\n\
             start_agent --arch s390x\n\
             section second; code $BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x 2>/tmp/second\n\
             section holder; echo $AGENT; cat /tmp/second\n\
             t0=$(date +%s%N); kill -TERM $AGENT; rc=0; wait $AGENT || rc=$?\n\
             section term; echo $rc; echo $(( ($(date +%s%N) - t0) / 1000000 )); entries\n\
             start_agent --arch s390x --uninstall-on-exit\n\
             kill -INT $AGENT; rc=0; wait $AGENT || rc=$?\n\
             section uninstall; echo $rc; entries",
        )))
        .success();
    let s = sections(&run.stdout);
    let (_, code) = with_exit(&s["second"]);
    assert_eq!(code, 3, "{run}");
    let (pid, message) = s["holder"].split_once('\n').unwrap();
    assert!(
        message.contains(&format!("pid {pid}")) && message.contains("only one agent"),
        "{run}"
    );
    let term: Vec<&str> = s["term"].lines().collect();
    assert_eq!(term[0], "0", "{run}");
    let ms: u64 = term[1].parse().unwrap();
    assert!(ms < 1000, "SIGTERM took {ms} ms: {run}");
    assert_eq!(term[2..], ["binfmtd-s390x", "qemu-riscv64"], "{run}");
    assert_eq!(s["uninstall"], "0\nqemu-riscv64\n", "{run}");
}

/// Two tools claiming one format (binfmtd with --replace-foreign, and a script that keeps
/// removing binfmtd's entry and registering its own) is a fight: reported with the other
/// tool's entry name, logged once, and the daemon holds off (its CPU time stays low).
#[test]
fn a_fight_is_detected_and_costs_little() {
    let Some(sb) = Sandbox::new() else { return };
    let other = common::register_cmd(
        binfmtd::arch::lookup("s390x").unwrap(),
        &common::fixtures::qemu_in_sandbox("s390x"),
        "F",
    )
    .replace("binfmtd-s390x", "other-s390x");
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&script(&format!(
            "start_agent --arch s390x --replace-foreign\n\
             ( while true; do\n\
                 [ -e $BM/other-s390x ] || {other} || true\n\
                 ! [ -e $BM/binfmtd-s390x ] || echo -1 > $BM/binfmtd-s390x || true\n\
                 sleep 0.05\n\
               done ) & FIGHTER=$!\n\
             wait_for eval '[ \"$(state s390x)\" = fighting ]'\n\
             cpu() {{ awk '{{print $14 + $15}}' /proc/$AGENT/stat; }}\n\
             c0=$(cpu); sleep 3; c1=$(cpu)\n\
             section fight; jq -c '.daemon.arches.s390x | [.state, .fighting_with]' $STATUS\n\
             echo $((c1 - c0)); alive && echo alive\n\
             kill $FIGHTER; wait $FIGHTER || true\n\
             section log; grep -c 'another tool keeps changing' /tmp/agent.log",
        )))
        .success();
    let s = sections(&run.stdout);
    let fight: Vec<&str> = s["fight"].lines().collect();
    assert_eq!(fight[0], r#"["fighting",["other-s390x"]]"#, "{run}");
    // Clock ticks (1/100 s) over 3 s of fighting: under 5% of one core.
    let ticks: u64 = fight[1].parse().unwrap();
    assert!(ticks < 15, "{ticks} ticks of CPU in 3 s of fighting: {run}");
    assert_eq!(fight[2], "alive", "{run}");
    assert_eq!(s["log"], "1\n", "the fight is logged once: {run}");
}

/// --listen: /healthz, /readyz (503 naming the arch that does not work) and /metrics. An
/// arch without an interpreter fails, is retried once at once, then backs off.
#[test]
fn health_and_metrics_answer_as_documented() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&script(
            "$BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x,mips64el --listen 127.0.0.1:0 2>>/tmp/agent.log & AGENT=$!\n\
             wait_for grep -q 'bound=' /tmp/agent.log\n\
             wait_for eval '[ \"$(state mips64el 2>/dev/null)\" = backoff ]'\n\
             addr=$(grep -o 'bound=[0-9.:]*' /tmp/agent.log | head -n1 | cut -d= -f2)\n\
             get() { curl -s -w '\\n%{http_code}\\n' http://$addr$1; }\n\
             section healthz; get /healthz\n\
             section readyz; get /readyz\n\
             section metrics; get /metrics\n\
             section missing; get /nothing | tail -n1\n\
             section state; state mips64el",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["healthz"], "ok\n\n200\n", "{run}");
    assert!(s["readyz"].starts_with("not ready\nmips64el: "), "{run}");
    assert!(s["readyz"].ends_with("\n503\n"), "{run}");
    let m = &s["metrics"];
    for line in [
        "binfmtd_arch_working{arch=\"s390x\"} 1",
        "binfmtd_arch_working{arch=\"mips64el\"} 0",
        "binfmtd_repairs_total{arch=\"s390x\",reason=\"start\"} 1",
        "binfmtd_fetch_failures_total{arch=\"mips64el\"} 2",
        "# TYPE binfmtd_probe_duration_seconds histogram",
        "# TYPE binfmtd_last_reconcile_timestamp_seconds gauge",
        "# TYPE binfmtd_fights counter",
    ] {
        assert!(
            m.lines().any(|l| l == line),
            "no {line:?} in /metrics: {run}"
        );
    }
    assert!(m.ends_with("# EOF\n\n200\n"), "{run}");
    assert_eq!(s["missing"], "404\n", "{run}");
    assert_eq!(s["state"], "backoff\n", "{run}");
}

/// Readers of the status file always see a whole, valid file while the daemon rewrites it
/// after every repair (written beside it, then renamed over it).
#[test]
fn status_file_is_valid_and_replaced_atomically() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .run_script(&script(
            "start_agent --arch s390x,riscv64\n\
             ( for i in $(seq 30); do echo -1 > $BM/status; sleep 0.1; done ) & FLUSHER=$!\n\
             bad=0; reads=0\n\
             while kill -0 $FLUSHER 2>/dev/null; do\n\
                 jq -e '.schema == \"binfmtd.status/v1\" and (.daemon.pid | type) == \"number\"' $STATUS >/dev/null || bad=$((bad + 1))\n\
                 reads=$((reads + 1))\n\
             done\n\
             section reads; echo $bad; [ $reads -gt 10 ] && echo many\n\
             section files; ls /run/binfmtd | sed \"s/^binfmt_misc-$(mountpoint -d $BM)\\.lock$/binfmt_misc-DEV.lock/\"\n\
             section repairs; wait_for ready; jq -r .daemon.arches.s390x.repairs $STATUS",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["reads"], "0\nmany\n", "{run}");
    assert_eq!(
        s["files"], "binfmt_misc-DEV.lock\nbinfmtd.lock\nstatus.json\n",
        "{run}"
    );
    let repairs: u32 = s["repairs"].trim().parse().unwrap();
    assert!(repairs > 5, "{run}");
}

/// Bad values are refused before anything happens, with exit code 2.
#[test]
fn bad_values_are_refused_up_front() {
    let bin = env!("CARGO_BIN_EXE_binfmtd");
    for args in [
        &["install", "--arch", "s390x", "--probe-timeout", "0"][..],
        &["run", "--arch", "s390x", "--interval", "0s"],
        &["run", "--arch", "s390x", "--reproof-interval", "10"],
        &["run", "--arch", "s390x", "--listen", "localhost"],
        &["run", "--arch", "s390x", "--log-format", "xml"],
    ] {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error: invalid value"), "{args:?}: {err}");
        assert!(!err.contains('\u{1b}'), "colour codes into a pipe: {err}");
    }
}

/// The EKS Amazon Linux 2023 trap: binfmt_misc is not mounted in the host's mount
/// namespace, and binfmtd runs in a container's. Without --mount-namespace it mounts a
/// private instance whose entries die with the container; with --mount-namespace
/// /proc/1/ns/mnt the instance is the host's, and the entries outlive binfmtd.
#[test]
fn mount_namespace_keeps_entries_in_the_host_namespace() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("s390x").host_path();
    let run = sb
        .bare()
        .with_qemu(&["s390x"])
        .run_script(&format!(
            "sandbox_dirs\n\
             sandbox_qemu\n\
             BM=/proc/sys/fs/binfmt_misc\n\
             mounted() {{ grep -c ' /proc/sys/fs/binfmt_misc binfmt_misc' /proc/self/mounts || true; }}\n\
             install='$BINFMTD install --interpreter-dir $QEMU_DIR --arch s390x'\n\
             section host; mounted\n\
             section control; code unshare --mount sh -c \"$install >/dev/null 2>/tmp/control.err; ls $BM | grep -c binfmtd\"\n\
             section after-control; mounted; unshare --mount sh -c \"mount -t binfmt_misc none $BM; ls $BM | grep -c binfmtd || true\"\n\
             section fixed; code unshare --mount sh -c \"$install --mount-namespace /proc/1/ns/mnt >/dev/null\"\n\
             section after-fixed; mounted; entries; {bb} uname -m\n\
             section control-stderr; cat /tmp/control.err",
            bb = bb.display()
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(
        s["host"], "0\n",
        "the host namespace starts without binfmt_misc: {run}"
    );
    assert_eq!(s["control"], "1\nexit=0\n", "{run}");
    assert_eq!(
        s["after-control"], "0\n0\n",
        "the private instance died with it: {run}"
    );
    assert_eq!(s["fixed"], "exit=0\n", "{run}");
    assert_eq!(s["after-fixed"], "1\nbinfmtd-s390x\ns390x\n", "{run}");
    // The warning about the private mount reaches a pipe without colour codes.
    let err = &s["control-stderr"];
    assert!(err.contains("other than the host's"), "{run}");
    assert!(!err.contains('\u{1b}'), "colour codes into a pipe: {run}");
}

/// A foreign entry an arch relied on is removed: binfmtd registers its own. binfmtd's entry
/// rewritten with other flags: binfmtd puts its own back.
#[test]
fn repairs_a_removed_foreign_entry_and_a_rewritten_one() {
    let Some(sb) = Sandbox::new() else { return };
    let riscv = binfmtd::arch::lookup("riscv64").unwrap();
    let foreign = common::register_cmd(riscv, &common::fixtures::qemu_in_sandbox("riscv64"), "F")
        .replace("binfmtd-riscv64", "qemu-riscv64");
    let bb = Busybox::by_debian("riscv64").host_path();
    let run = sb
        .with_qemu(&["riscv64"])
        .run_script(&script(&format!(
            "{foreign}\n\
             start_agent --arch riscv64\n\
             section foreign; entries; repairs riscv64\n\
             echo -1 > $BM/qemu-riscv64; repaired riscv64 '2 foreign-removed'\n\
             section own; entries; {bb} uname -m; grep flags $BM/binfmtd-riscv64\n\
             interp=$(sed -n 's/^interpreter //p' $BM/binfmtd-riscv64)\n\
             rewrite=$(printf '%s' '{rewrite}' | sed \"s#/INTERP#$interp#\")\n\
             echo -1 > $BM/binfmtd-riscv64; printf '%s' \"$rewrite\" > $BM/register\n\
             wait_for eval '[ \"$(jq -r .daemon.arches.riscv64.repairs $STATUS)\" = 3 ]'\n\
             section rewritten; grep flags $BM/binfmtd-riscv64; {bb} uname -m\n\
             jq -r .daemon.arches.riscv64.last_reason $STATUS",
            bb = bb.display(),
            rewrite = common::register_cmd(riscv, "/INTERP", "F")
                .split('\'')
                .nth(3)
                .unwrap(),
        )))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["foreign"], "qemu-riscv64\n1 start\n", "{run}");
    assert_eq!(s["own"], "binfmtd-riscv64\nriscv64\nflags: POF\n", "{run}");
    let rewritten: Vec<&str> = s["rewritten"].lines().collect();
    assert_eq!(rewritten[..2], ["flags: POF", "riscv64"], "{run}");
    // Removed and registered again within one poll: seen as a rewrite, or (if a poll fell
    // between the two writes) as a removal.
    assert!(["rewritten", "removed"].contains(&rewritten[2]), "{run}");
}

/// A format that stops working with no entry changing (here: the whole instance switched
/// off) is noticed by the periodic re-proof, reported, and converged again once it can be.
#[test]
fn periodic_reproof_notices_a_format_that_stopped_working() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&script(
            "start_agent --arch s390x --reproof-interval 1s\n\
             echo 0 > $BM/status\n\
             wait_for eval '[ \"$(state s390x)\" != working ]'\n\
             section broken; jq -r '.daemon.arches.s390x.last_reason' $STATUS\n\
             echo 1 > $BM/status\n\
             wait_for ready\n\
             section healed; state s390x; grep -c 'periodic re-proof failed' /tmp/agent.log",
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["broken"], "reproof\n", "{run}");
    assert_eq!(s["healed"], "working\n1\n", "{run}");
}
