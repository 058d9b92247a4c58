//! Build the kustomizations with the real kustomize (`kubectl kustomize`) and read the output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run a tool that tests/deps.sh installs; a missing one fails the test and says so.
pub fn tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (tests/deps.sh installs it)"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// `kubectl kustomize DIR` (relative to the repository), as YAML; built once per test binary.
pub fn kustomize(dir: &str) -> String {
    static BUILT: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(yaml) = built.get(dir) {
        return yaml.clone();
    }
    let out = tool("kubectl", &["kustomize", dir], None);
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    built.insert(dir.to_string(), yaml.clone());
    yaml
}

/// The objects of a YAML stream, parsed by PyYAML (no YAML parser among the crate's deps).
pub fn objects(yaml: &str) -> Vec<Value> {
    let script = repo().join("tests/daemonset/yaml2json.py");
    let out = tool(
        "python3",
        &[script.to_str().unwrap()],
        Some(yaml.as_bytes()),
    );
    assert!(
        out.status.success(),
        "yaml2json.py: {} (tests/deps.sh installs PyYAML)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one object of this kind and name.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let hits: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one {kind} {name}, found {}",
        hits.len()
    );
    hits[0]
}

/// The DaemonSet's agent container.
pub fn agent(objects: &[Value]) -> &Value {
    &find(objects, "DaemonSet", "binfmtd")["spec"]["template"]["spec"]["containers"][0]
}

/// The base and every overlay, by directory.
pub const BUILDS: &[&str] = &[
    "daemonset",
    "daemonset/overlays/eks",
    "daemonset/overlays/bundled",
];

pub fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
