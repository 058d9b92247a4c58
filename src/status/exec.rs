//! `binfmtd status`'s lines for the agent's exec monitor (`run --exec-monitor`): the top
//! emulated programs per container and the recent exec format errors, rendered from the
//! status file's `daemon.exec_monitor` object (see agent::report). Pure: JSON in, text out.

use serde::Deserialize;
use serde_json::Value;

/// Containers and programs shown; the status file holds up to its own bounds.
const CONTAINERS_SHOWN: usize = 10;
const PROGRAMS_SHOWN: usize = 5;

pub fn exec_monitor_text(m: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "exec monitor: {} (exec format errors: {}); {} emulated execs, {} exec format errors\n",
        s(&m["state"]),
        s(&m["exec_format_errors"]),
        m["emulated_total"].as_u64().unwrap_or(0),
        m["exec_format_errors_total"].as_u64().unwrap_or(0),
    );
    let b = &m["bounds"];
    let containers = m["containers"].as_array().cloned().unwrap_or_default();
    if !containers.is_empty() {
        out.push_str(&format!(
            "  emulated programs, most-run first (kept: {} per container, {} containers):\n",
            b["programs_per_container"], b["containers"]
        ));
    }
    for c in containers.iter().take(CONTAINERS_SHOWN) {
        out.push_str(&format!(
            "    {}: {} emulated execs\n",
            who(c),
            c["emulated"].as_u64().unwrap_or(0)
        ));
        for p in c["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .take(PROGRAMS_SHOWN)
        {
            out.push_str(&format!(
                "      {:>6}  {:<10} {}\n",
                p["count"].as_u64().unwrap_or(0),
                p["arch"].as_str().unwrap_or("?"),
                s(&p["path"])
            ));
        }
    }
    let failures = m["recent_failures"].as_array().cloned().unwrap_or_default();
    if !failures.is_empty() {
        out.push_str(&format!(
            "  recent exec format errors, newest first (kept: {}):\n",
            b["failures"]
        ));
    }
    for f in &failures {
        let arch = f["arch"]
            .as_str()
            .map(|a| format!(" (a {a} file)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {} {}{arch} pid {}, {}\n      {}\n",
            crate::timefmt::rfc3339(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(f["at"].as_u64().unwrap_or(0))
            ),
            f["path"].as_str().unwrap_or("(path unknown)"),
            f["pid"],
            who(f),
            s(&f["hint"])
        ));
    }
    out
}

/// The owner as the agent described it (`Who::describe`), read back from the status file.
fn who(v: &Value) -> String {
    crate::monitor::tally::Who::deserialize(v).map_or_else(
        |_| "unknown (exited before attribution)".into(),
        |w| w.describe(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tally::Tally;
    use crate::monitor::{Event, Kind};

    #[test]
    fn renders_the_agents_tables() {
        let mut t = Tally::new(
            std::path::Path::new("/proc/sys/fs/binfmt_misc"),
            vec!["x86_64"],
        );
        let mut e = Event {
            kind: Kind::Emulated,
            arch: Some("aarch64"),
            path: Some("/usr/bin/node".into()),
            pid: 5,
            pod_uid: Some("u-1".into()),
            pod_namespace: None,
            pod_name: None,
            container_id: Some("abcdef0123456789".into()),
            unit: None,
        };
        t.record(&e, 0);
        t.record(&e, 1);
        e.kind = Kind::ExecFormatError;
        e.arch = Some("s390x");
        e.path = Some("/tmp/dl/tool".into());
        t.record(&e, 2);
        let m = serde_json::json!({
            "state": "watching", "exec_format_errors": "on",
        });
        let mut m = m.as_object().unwrap().clone();
        let view = serde_json::to_value(t.view()).unwrap();
        m.extend(view.as_object().unwrap().clone());
        let text = exec_monitor_text(&Value::Object(m));
        let want = [
            "exec monitor: watching (exec format errors: on); 2 emulated execs, 1 exec format errors",
            "kept: 16 per container, 64 containers",
            "    pod u-1 container abcdef012345: 2 emulated execs",
            "           2  aarch64    /usr/bin/node",
            "    1970-01-01T00:00:02Z /tmp/dl/tool (a s390x file) pid 5, pod u-1 container abcdef012345",
            "binfmtd install --arch s390x",
        ];
        // With the pod's name from the runtime, the name replaces the UID.
        e.pod_namespace = Some("shop".into());
        e.pod_name = Some("web-0".into());
        t.record(&e, 3);
        let view = serde_json::to_value(t.view()).unwrap();
        let named = exec_monitor_text(&view);
        assert!(
            named.contains("pid 5, pod shop/web-0 container abcdef012345"),
            "{named}"
        );
        for w in want {
            assert!(text.contains(w), "missing {w:?} in:\n{text}");
        }
    }
}
