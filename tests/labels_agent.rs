//! `binfmtd run --node-labels` (the BUILT binary) in the private sandbox, publishing to the
//! HTTPS test API server: labels appear with the right values, stale ones go, foreign ones
//! stay byte for byte, steady state sends nothing, a format that stops working loses its
//! label, and a 403 is logged with the RBAC hint while emulation keeps being repaired.

mod common;
mod support;

use common::{sections, Busybox, Sandbox};
use support::apiserver::ApiServer;

const SA: &str = "system:serviceaccount:kube-system:binfmtd";

/// Shell helpers (after the prelude): the agent, and reads of the node through curl with
/// an observer's token (its requests are told apart from the agent's in the server log).
const HELPERS: &str = r#"
STATUS=/run/binfmtd/status.json
BM=/proc/sys/fs/binfmt_misc
printf '%s' "$KUBECONFIG_TEXT" > /run/kubeconfig
printf '%s' "$CA_PEM" > /run/ca.pem
obs() { curl -sf --cacert /run/ca.pem -H 'Authorization: Bearer observer' "$@"; }
node() { obs "$API/api/v1/nodes/n1${1:-}"; }
label() { node | jq -r --arg k "binfmtd.io/$1" '.metadata.labels[$k] // "none"'; }
is() { [ "$(label "$1")" = "$2" ]; }
put() { printf '%s\n' "$1" > /tmp/c.new; mv /tmp/c.new /tmp/c.toml; }
WAIT_SECS=30
"#;

#[test]
fn agent_publishes_node_labels_and_keeps_emulating_when_rbac_refuses() {
    let Some(sb) = Sandbox::new() else { return };
    let s = ApiServer::start();
    s.add_token("agent-token", SA);
    s.add_token("observer", "observer");
    s.add_node(
        "n1",
        &[
            ("kubernetes.io/arch", "amd64"),
            ("node.kubernetes.io/instance-type", "m7i.large"),
            ("team", "x"),
            ("binfmtd.io/mips", "emulated"),
        ],
    );
    let foreign_before = foreign_part(&s);
    let riscv64 = Busybox::by_debian("riscv64").host_path();
    let script = format!(
        r#"{HELPERS}
put 'arches = ["s390x", "riscv64"]'
$BINFMTD run --log-format json --config /tmp/c.toml --interpreter-dir $QEMU_DIR --node-labels --kubeconfig /run/kubeconfig \
    --node-name n1 2>>/tmp/agent.log & AGENT=$!
wait_for is s390x emulated; wait_for is riscv64 emulated; wait_for is mips none
section converged; node | jq -c '.metadata.labels | with_entries(select(.key | startswith("binfmtd.io/")))'
node '?mark=steady-start' >/dev/null; sleep 3; node '?mark=steady-end' >/dev/null

obs -X POST "$API/_test/deny?user={SA}&verb=patch" >/dev/null
put 'arches = ["riscv64"]'; kill -HUP $AGENT
wait_for eval '! [ -e $BM/binfmtd-s390x ]'
wait_for grep -q 'may not patch nodes' /tmp/agent.log
echo -1 > $BM/binfmtd-riscv64
wait_for test -e $BM/binfmtd-riscv64
section refused; label s390x; {bb} uname -m; kill -0 $AGENT && echo alive
obs -X POST "$API/_test/allow?user={SA}&verb=patch" >/dev/null
wait_for is s390x none
section allowed; label s390x; label riscv64

cp $QEMU_DIR/qemu-s390x-static $QEMU_DIR/wrong.new; mv $QEMU_DIR/wrong.new $QEMU_DIR/qemu-riscv64-static
echo -1 > $BM/binfmtd-riscv64
wait_for is riscv64 none
section failing; label riscv64; label amd64
kill $AGENT; wait $AGENT || true
section log; cat /tmp/agent.log
"#,
        bb = riscv64.display(),
    );
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .env("API", s.url())
        .env("KUBECONFIG_TEXT", s.kubeconfig("    token: agent-token"))
        .env("CA_PEM", s.ca_pem.clone())
        .run_script(&script)
        .success();
    let out = sections(&run.stdout);

    // Native and emulated values; the stale mips label is gone.
    let converged: serde_json::Value = serde_json::from_str(&out["converged"]).unwrap();
    assert_eq!(converged["binfmtd.io/amd64"], "native", "{run}");
    assert_eq!(converged["binfmtd.io/386"], "native", "{run}");
    assert_eq!(converged["binfmtd.io/s390x"], "emulated", "{run}");
    assert_eq!(converged["binfmtd.io/riscv64"], "emulated", "{run}");
    assert!(converged.get("binfmtd.io/mips").is_none(), "{run}");

    // Steady state: not one request from the agent between the marks.
    let log = s.log();
    let mark = |m: &str| {
        log.iter()
            .position(|r| r.query == format!("mark={m}"))
            .unwrap()
    };
    let between = &log[mark("steady-start")..mark("steady-end")];
    assert!(
        between.iter().all(|r| r.user.as_deref() != Some(SA)),
        "{between:?}"
    );

    // 403: the label stayed, the agent logged the RBAC rule, and kept emulating.
    assert_eq!(out["refused"], "emulated\nriscv64\nalive\n", "{run}");
    assert!(
        out["log"].contains(r#"verbs: [\"get\", \"patch\"]"#)
            || out["log"].contains(r#"verbs: ["get", "patch"]"#),
        "{run}"
    );
    assert!(out["log"].contains(SA), "{run}");
    assert_eq!(out["allowed"], "none\nemulated\n", "{run}");

    // A format that stops working loses its label (within 2 s of the agent noticing, by
    // its own log); the native ones stay.
    assert_eq!(out["failing"], "none\nnative\n", "{run}");
    let lines: Vec<serde_json::Value> = out["log"].lines().map(common::report::json).collect();
    let when = |l: &serde_json::Value| seconds_of_day(l["timestamp"].as_str().unwrap());
    // The first "not working" line: a failing arch is retried within a second and logged
    // again, so a later line can come after the label was already removed.
    let noticed = lines
        .iter()
        .find(|l| {
            l["fields"]["arch"] == "riscv64"
                && l["fields"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("not working")
        })
        .map(when)
        .expect("the agent logged riscv64 not working");
    let unlabelled = lines
        .iter()
        .filter(|l| {
            l["fields"]["patch"]
                .as_str()
                .is_some_and(|p| p.contains(r#""binfmtd.io/riscv64":null"#))
        })
        .map(when)
        .find(|t| (t - noticed).rem_euclid(86_400.0) < 43_200.0)
        .expect("the agent removed the riscv64 label after noticing");
    let took = (unlabelled - noticed).rem_euclid(86_400.0);
    assert!(
        (0.0..2.0).contains(&took),
        "label removed {took} s after the agent noticed: {run}"
    );

    // Nothing outside the prefix changed; every agent write was one merge patch.
    assert_eq!(foreign_part(&s), foreign_before);
    for r in log.iter().filter(|r| r.method == "PATCH") {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let labels = body["metadata"]["labels"].as_object().unwrap();
        assert!(
            labels.keys().all(|k| k.starts_with("binfmtd.io/")),
            "{body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
}

/// `2026-12-02T10:03:04.500487Z` -> seconds since midnight.
fn seconds_of_day(ts: &str) -> f64 {
    let time = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    time.split(':')
        .map(|p| p.parse::<f64>().unwrap())
        .fold(0.0, |acc, x| acc * 60.0 + x)
}

fn foreign_part(s: &ApiServer) -> String {
    let st = s.state.lock().unwrap();
    let mut node = st.nodes["n1"].clone();
    let meta = node["metadata"].as_object_mut().unwrap();
    meta.remove("resourceVersion");
    meta["labels"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("binfmtd.io/"));
    serde_json::to_string(&node).unwrap()
}

/// NFD mode: the same facts as a feature file (atomic, with an expiry), facts that stop
/// being true leave the file; and the two modes together are refused up front.
#[test]
fn agent_writes_the_same_facts_as_an_nfd_feature_file() {
    let Some(sb) = Sandbox::new() else { return };
    let script = format!(
        r#"{HELPERS}
section both; code $BINFMTD run --arch s390x --node-labels --nfd-features-dir 2>&1
$BINFMTD run --arch s390x --interpreter-dir $QEMU_DIR --nfd-features-dir /run/nfd 2>>/tmp/agent.log & AGENT=$!
wait_for grep -qx 'binfmtd.io/s390x=emulated' /run/nfd/binfmtd
section file; cat /run/nfd/binfmtd
section dir; ls -A /run/nfd
cp $QEMU_DIR/qemu-riscv64-static $QEMU_DIR/wrong.new; mv $QEMU_DIR/wrong.new $QEMU_DIR/qemu-s390x-static
echo -1 > $BM/binfmtd-s390x
wait_for eval '! grep -q s390x /run/nfd/binfmtd'
section after; grep -v '^#' /run/nfd/binfmtd
kill $AGENT; wait $AGENT || true
"#
    );
    let run = sb
        .with_qemu(&["s390x", "riscv64"])
        .env("API", "unused")
        .env("KUBECONFIG_TEXT", "")
        .env("CA_PEM", "")
        .run_script(&script)
        .success();
    let out = sections(&run.stdout);
    assert!(
        out["both"].contains("would both publish the labels under binfmtd.io/"),
        "{run}"
    );
    assert!(out["both"].ends_with("exit=2\n"), "{run}");

    let file = &out["file"];
    let expiry = file
        .lines()
        .find_map(|l| l.strip_prefix("# +expiry-time="))
        .unwrap_or_else(|| panic!("no expiry line: {run}"));
    assert!(
        expiry.len() == 20 && expiry.ends_with('Z') && expiry.as_bytes()[10] == b'T',
        "{expiry}"
    );
    let facts: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(facts.contains(&"binfmtd.io/amd64=native"), "{run}");
    assert!(facts.contains(&"binfmtd.io/s390x=emulated"), "{run}");
    assert!(facts.iter().all(|l| l.starts_with("binfmtd.io/")), "{run}");
    assert_eq!(out["dir"], "binfmtd\n", "no dot-file left behind: {run}");

    let after: Vec<&str> = out["after"].lines().collect();
    assert!(
        after.contains(&"binfmtd.io/amd64=native") && !out["after"].contains("s390x"),
        "{run}"
    );
}
