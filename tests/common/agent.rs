//! Shell helpers for sandbox scripts that drive `binfmtd run` (after the prelude).

pub const AGENT: &str = r#"
STATUS=/run/binfmtd/status.json
BM=/proc/sys/fs/binfmt_misc
# start_agent ARGS...: run the agent in the background; wait until its status file says ready.
start_agent() {
    $BINFMTD run --interpreter-dir $QEMU_DIR "$@" 2>>/tmp/agent.log & AGENT=$!
    wait_for ready
}
ready() { [ -s $STATUS ] && [ "$(jq -r '.daemon.arches | map(.state == "working") | all' $STATUS)" = true ]; }
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

/// `body` after the helpers above.
pub fn script(body: &str) -> String {
    format!("{AGENT}\n{body}")
}
