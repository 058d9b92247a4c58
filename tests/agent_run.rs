//! Acceptance tests of `binfmtd run` (the BUILT binary) in the private sandbox: it becomes
//! ready, repairs every kind of drift, reloads, exits cleanly, refuses a second instance,
//! detects a fight, answers /healthz /readyz /metrics, and keeps its status file valid.

mod common;

use common::report::json;
use common::{sections, with_exit, Busybox, Sandbox};

/// Shell helpers for the scripts below (after the prelude).
const AGENT: &str = r#"
STATUS=/run/binfmtd/status.json
BM=/proc/sys/fs/binfmt_misc
# start_agent ARGS...: run the agent in the background; wait until its status file says ready.
start_agent() {
    $BINFMTD run --interpreter-dir $QEMU_DIR "$@" 2>>/tmp/agent.log & AGENT=$!
    wait_for ready
}
ready() { [ -s $STATUS ] && [ "$(jq -r '.daemon.arches | map(.state == "working") | all' $STATUS)" = true ]; }
# wait_for CMD...: poll CMD every 20 ms for up to 10 s.
wait_for() {
    _n=0
    until "$@"; do
        _n=$((_n + 1))
        if [ $_n -gt 500 ]; then echo "timed out waiting for: $*"; cat /tmp/agent.log; return 1; fi
        sleep 0.02
    done
}
has() { [ -e $BM/$1 ]; }
hasnt() { ! [ -e $BM/$1 ]; }
enabled() { head -n1 $BM/$1 | grep -qx enabled; }
alive() { kill -0 $AGENT 2>/dev/null; }
dead() { ! kill -0 $AGENT 2>/dev/null; }
state() { jq -r ".daemon.arches.$1.state" $STATUS; }
repairs() { jq -r ".daemon.arches.$1 | \"\(.repairs) \(.last_reason)\"" $STATUS; }
# repaired ARCH "N REASON": wait until the status file counts N repairs, the last for REASON.
repaired() { _a=$1 _w=$2; wait_for eval '[ "$(repairs $_a)" = "$_w" ]'; }
"#;

fn script(body: &str) -> String {
    format!("{AGENT}\n{body}")
}

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
             kill $AGENT; wait $AGENT || true\n\
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
