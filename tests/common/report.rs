//! Reading what the built binary printed: `install --json`, `status --json`, and files
//! handed to a sandbox script byte for byte.

use serde_json::Value;

use super::with_exit;

/// `binfmtd install` reading interpreters from the sandbox's qemu copies.
pub const INSTALL: &str = "$BINFMTD install --interpreter-dir $QEMU_DIR";

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `status --json` row for a qemu arch name.
pub fn status_row<'a>(status: &'a Value, qemu: &str) -> &'a Value {
    status["formats"]
        .as_array()
        .expect("status has a formats array")
        .iter()
        .find(|f| f["arch"] == qemu)
        .unwrap_or_else(|| panic!("status has no row for {qemu}: {status}"))
}

/// `install --json` exited 0 and says each arch works through binfmtd's own entry.
pub fn assert_installed(section: &str, arches: &[&str]) {
    let (text, code) = with_exit(section);
    assert_eq!(code, 0, "install failed: {section}");
    let installed = json(text);
    assert_eq!(
        installed.as_array().map(Vec::len),
        Some(arches.len()),
        "one outcome per requested arch: {installed}"
    );
    for (i, qemu) in arches.iter().enumerate() {
        let row = &installed[i];
        assert_eq!(row["arch"], *qemu, "{installed}");
        assert_eq!(row["working"], true, "{installed}");
        assert_eq!(row["entry"], format!("binfmtd-{qemu}"), "{installed}");
    }
}

/// `status --json` proves each arch works through binfmtd's entry with F and a P that
/// qemu understands (argv[0] arrived preserved), and exits 0.
pub fn assert_status_working(section: &str, arches: &[&str]) {
    let (text, code) = with_exit(section);
    let status = json(text);
    for qemu in arches {
        let row = status_row(&status, qemu);
        assert_eq!(row["state"], "emulated-working", "{qemu}: {row}");
        assert_eq!(row["working"], true, "{qemu}: {row}");
        assert_eq!(row["owner"], "binfmtd", "{qemu}: {row}");
        assert_eq!(row["entry"], format!("binfmtd-{qemu}"), "{qemu}: {row}");
        let flags = row["flags"].as_str().unwrap_or_default();
        assert!(flags.contains('F') && flags.contains('P'), "{qemu}: {row}");
        assert_eq!(row["probe"]["ok"], true, "{qemu}: {row}");
        assert_eq!(row["probe"]["argv0"], "preserved", "{qemu}: {row}");
    }
    assert_eq!(
        code, 0,
        "status exits 0 when everything registered works: {section}"
    );
}

/// Shell that writes `bytes` to `path` (mode 0755) exactly: every byte as a printf octal
/// escape, so NULs and quotes survive the trip through the script.
pub fn write_file_cmd(path: &str, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    format!("printf '{escaped}' > {path} && chmod 0755 {path}")
}
