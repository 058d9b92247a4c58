//! The human table for `binfmtd status`.

use std::fmt::Write;

use super::Status;

/// One row per format that is not simply absent (absent ones are counted at the end).
pub fn table(s: &Status) -> String {
    let mut out = String::new();
    let bm = &s.binfmt_misc;
    let _ = writeln!(
        out,
        "host: {} ({}), native: {}",
        s.host.arch,
        s.host.platform.unwrap_or("-"),
        s.host.native.join(", ")
    );
    for (arch, why) in &s.host.native_unknown {
        let _ = writeln!(out, "native: {arch} UNKNOWN: {why}");
    }
    match (&bm.error, bm.enabled) {
        (Some(err), _) => {
            let _ = writeln!(out, "binfmt_misc: {} unavailable: {err}", bm.path);
        }
        (None, Some(false)) => {
            let _ = writeln!(
                out,
                "binfmt_misc: {} DISABLED (echo 1 > {}/status)",
                bm.path, bm.path
            );
        }
        _ => {
            let _ = writeln!(out, "binfmt_misc: {}", bm.path);
        }
    }
    let header = [
        "ARCH",
        "PLATFORM",
        "STATE",
        "OWNER",
        "FLAGS",
        "INTERPRETER",
        "SHA256",
        "QEMU",
        "PROBE",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
    let mut absent = 0;
    for f in &s.formats {
        if f.state == super::State::Absent {
            absent += 1;
            continue;
        }
        let dash = || "-".to_string();
        rows.push([
            f.arch.to_string(),
            f.platform.unwrap_or("-").to_string(),
            f.state.as_str().to_string(),
            f.owner.unwrap_or("-").to_string(),
            f.flags
                .clone()
                .filter(|x| !x.is_empty())
                .unwrap_or_else(dash),
            f.interpreter.clone().unwrap_or_else(dash),
            f.sha256
                .as_ref()
                .map(|h| h[..12.min(h.len())].to_string())
                .unwrap_or_else(dash),
            f.qemu_version
                .as_ref()
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("-")
                .to_string(),
            f.probe
                .as_ref()
                .map(|p| format!("{} ({} ms)", p.detail, p.millis))
                .unwrap_or_else(dash),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for f in s
        .formats
        .iter()
        .filter(|f| f.reason.is_some() && f.state != super::State::Absent)
    {
        let _ = write!(
            out,
            "{}: {}",
            f.arch,
            f.reason.as_deref().unwrap_or_default()
        );
        if let Some(h) = &f.hint {
            let _ = write!(out, ". Hint: {h}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{absent} other formats absent (`binfmtd status --json` lists every format)"
    );
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let labels = if labels.is_empty() {
        "none".to_string()
    } else {
        labels.join(" ")
    };
    let _ = writeln!(out, "node labels: {labels}");
    out
}
