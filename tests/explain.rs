//! `binfmtd explain` on real Debian binaries, checked against independent tools (`file`,
//! `readelf`, `getconf`, `dpkg-deb`).
//! The emulated verdict against a real binfmt_misc instance is in tests/explain_sandbox.rs,
//! parser robustness in tests/explain_parser.rs.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A fixture path; fails with the fix when tests/fixtures/fetch.sh has not run.
fn fixture(rel: &str) -> PathBuf {
    let p = common::fixtures::dir().join(rel);
    assert!(
        p.exists(),
        "fixture {} is missing: run `bash tests/fixtures/fetch.sh` (tests/run.sh does) first",
        p.display()
    );
    p
}

const ARM64_BUSYBOX: &str = "bookworm/arm64/busybox-static/bin/busybox";
const I386_BUSYBOX: &str = "bookworm/i386/busybox-static/bin/busybox";
const ARM64_DASH: &str = "bookworm/arm64/dash/bin/dash";
const TRIXIE_HELLO: &str = "trixie/amd64/hello/usr/bin/hello";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Run the binary. binfmt_misc is pointed at an empty directory, so every run sees the
/// same "binfmt_misc unavailable" node whatever the host has registered. Native arches are
/// detected by the real probes (i386 must prove native on this x86_64 machine).
fn explain(args: &[&str]) -> Out {
    let nowhere = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .arg("explain")
        .arg("--binfmt-misc")
        .arg(nowhere.path())
        // Native-arch probes run in a scratch directory of the test's own.
        .arg("--cache-dir")
        .arg(state.path())
        .args(args)
        .output()
        .unwrap();
    let o = Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    o
}

fn only_file(j: &Value) -> &Value {
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{j:#}");
    &files[0]
}

fn codes(file: &Value) -> Vec<&str> {
    let problems = file["verdict"]["problems"].as_array().unwrap();
    problems
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect()
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} not runnable ({e}): tests/run.sh installs it"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `file`'s view of an ELF: (static?, interpreter).
fn file_says(path: &Path) -> (bool, Option<String>) {
    let s = tool("file", &["-b", path.to_str().unwrap()]);
    let interp = s
        .split(", ")
        .find_map(|part| part.strip_prefix("interpreter "))
        .map(str::to_string);
    (s.contains("statically linked"), interp)
}

/// The upstream glibc version of a fetched libc6 .deb (`2.36-9+deb12u14` -> `2.36`).
fn deb_glibc(deb: &str) -> String {
    let deb = fixture(&format!("debs/{deb}"));
    let v = tool("dpkg-deb", &["-f", deb.to_str().unwrap(), "Version"]);
    v.trim().split('-').next().unwrap().to_string()
}

/// Copy package trees into one root directory (symlinks kept), like dpkg unpacking them.
fn make_root(pkgs: &[&str], links: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for p in pkgs {
        let src = format!("{}/.", fixture(p).display());
        tool("cp", &["-a", &src, root.path().to_str().unwrap()]);
    }
    for (link, target) in links {
        std::os::unix::fs::symlink(target, root.path().join(link)).unwrap();
    }
    root
}

#[test]
fn arm64_static_busybox_cannot_run_without_an_emulator() {
    let path = fixture(ARM64_BUSYBOX);
    let out = explain(&["--json", path.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let j = out.json();
    let f = only_file(&j);
    assert_eq!(f["type"], "elf");
    assert_eq!(f["elf"]["arch"], "aarch64");
    assert_eq!(
        (f["elf"]["class"].as_str(), f["elf"]["endian"].as_str()),
        (Some("elf64"), Some("little"))
    );
    let (is_static, interp) = file_says(&path);
    assert!(is_static && interp.is_none());
    assert_eq!(f["elf"]["linkage"], "static");
    assert_eq!(f["elf"]["interpreter"], Value::Null);
    assert_eq!(f["verdict"]["outcome"], "cannot-run");
    assert_eq!(codes(f), ["binfmt-unavailable"]);
    let msg = f["verdict"]["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("binfmtd install --arch aarch64"), "{msg}");
    assert_eq!(j["node"]["binfmt_misc"]["state"], "unavailable");
    // The same verdict for people.
    let human = explain(&[path.to_str().unwrap()]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains(": cannot run\n"), "{}", human.stdout);
    assert!(
        human.stdout.contains("binfmtd install --arch aarch64"),
        "{}",
        human.stdout
    );
}

#[test]
fn native_x86_64_program_and_i386_busybox_run_natively() {
    let host = binfmtd::arch::host().qemu;
    assert_eq!(host, "x86_64", "these fixtures assume an x86_64 node");
    let native = Path::new("/usr/bin/true");
    let i386 = fixture(I386_BUSYBOX);
    let out = explain(&["--json", native.to_str().unwrap(), i386.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let j = out.json();
    let files = j["files"].as_array().unwrap();
    assert_eq!(files[0]["elf"]["arch"], "x86_64");
    assert_eq!(
        files[0]["elf"]["interpreter"].as_str(),
        file_says(native).1.as_deref()
    );
    assert_eq!(files[1]["elf"]["arch"], "i386");
    assert_eq!(files[1]["elf"]["class"], "elf32");
    for f in files {
        assert_eq!(f["verdict"]["outcome"], "native", "{f:#}");
        assert_eq!(codes(f), Vec::<&str>::new());
    }
    assert_eq!(j["summary"]["runnable"], 2);
}

#[test]
fn dynamic_arm64_dash_needs_its_loader_and_libc_in_the_root() {
    let dash = fixture(ARM64_DASH);
    let (_, interp) = file_says(&dash);
    let bare = make_root(&["bookworm/arm64/dash"], &[]);
    let out = explain(&[
        "--json",
        "--root",
        bare.path().to_str().unwrap(),
        dash.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1);
    let j = out.json();
    let f = only_file(&j);
    assert_eq!(f["elf"]["interpreter"].as_str(), interp.as_deref());
    assert_eq!(
        codes(f),
        ["binfmt-unavailable", "loader-missing", "libc-missing"]
    );
    assert!(f["verdict"]["problems"][1]["message"]
        .as_str()
        .unwrap()
        .contains("/lib/ld-linux-aarch64.so.1"));

    let full = make_root(&["bookworm/arm64/dash", "bookworm/arm64/libc6"], &[]);
    let out = explain(&[
        "--json",
        "--root",
        full.path().to_str().unwrap(),
        dash.to_str().unwrap(),
    ]);
    let j = out.json();
    let f = only_file(&j);
    // Loader and libc are there now: only the missing emulator stands in the way.
    assert_eq!(codes(f), ["binfmt-unavailable"]);
    let libc = &j["node"]["glibc"][0];
    assert_eq!(libc["machine"], 183);
    assert_eq!(
        libc["version"].as_str().unwrap(),
        deb_glibc("bookworm_libc6_arm64.deb")
    );
}

#[test]
fn newer_release_program_names_needed_and_available_glibc() {
    let hello = fixture(TRIXIE_HELLO);
    let needed = tool("readelf", &["-V", "--wide", hello.to_str().unwrap()])
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| binfmtd::explain::GlibcVersion::from_symbol_version(w.as_bytes()))
        .max()
        .unwrap();
    let host = tool("getconf", &["GNU_LIBC_VERSION"]);
    let host = host.trim().strip_prefix("glibc ").unwrap();
    assert!(
        needed > binfmtd::explain::GlibcVersion::parse(host).unwrap(),
        "fixture must need a newer glibc than the host's {host}"
    );

    let out = explain(&["--json", hello.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let j = out.json();
    let f = only_file(&j);
    assert_eq!(
        f["elf"]["glibc_needed"].as_str().unwrap(),
        needed.to_string()
    );
    assert_eq!(codes(f), ["glibc-too-old"]);
    let p = &f["verdict"]["problems"][0];
    assert_eq!(
        (
            p["needed"].as_str().unwrap(),
            p["available"].as_str().unwrap()
        ),
        (needed.to_string().as_str(), host)
    );
    let msg = p["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("needs glibc {needed} but root / has {host}")),
        "{msg}"
    );

    // In a trixie-like root (merged /usr, as base-files makes it) it runs.
    let root = make_root(
        &["trixie/amd64/libc6"],
        &[("lib64", "usr/lib64"), ("lib", "usr/lib")],
    );
    let out = explain(&[
        "--json",
        "--root",
        root.path().to_str().unwrap(),
        hello.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let j = out.json();
    assert_eq!(only_file(&j)["verdict"]["outcome"], "native");
    assert_eq!(
        j["node"]["glibc"][0]["version"].as_str().unwrap(),
        deb_glibc("trixie_libc6_amd64.deb")
    );
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn scripts_are_judged_by_their_interpreter_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let missing = script(dir.path(), "missing", "#!/no/such/interpreter -x\necho\n");
    let sh = script(dir.path(), "sh", "#!/bin/sh\necho hi\n");
    let out = explain(&["--json", missing.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let j = out.json();
    let f = only_file(&j);
    assert_eq!(
        (f["type"].as_str(), f["script"]["interpreter"].as_str()),
        (Some("script"), Some("/no/such/interpreter"))
    );
    assert_eq!(codes(f), ["interpreter-missing"]);
    assert_eq!(explain(&[sh.to_str().unwrap()]).code, 0);
    // No x bit: not an executable. Named directly that fails the run; found by a walk it
    // does not (a tree is full of modules and data).
    let module = dir.path().join("module.py");
    fs::write(&module, "#!/bin/sh\n").unwrap();
    let out = explain(&["--json", module.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let j = out.json();
    assert_eq!(only_file(&j)["verdict"]["outcome"], "not-executable");
    fs::remove_file(&missing).unwrap();
    let out = explain(&["--json", "--recursive", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["summary"]["not_executable"], 1);
    // In the arm64 dash root, /bin/sh is an arm64 program with no loader and no emulator.
    let root = make_root(&["bookworm/arm64/dash"], &[]);
    let out = explain(&[
        "--json",
        "--root",
        root.path().to_str().unwrap(),
        sh.to_str().unwrap(),
    ]);
    let j = out.json();
    let f = only_file(&j);
    assert_eq!(codes(f), ["interpreter-cannot-run"]);
    let msg = f["verdict"]["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("aarch64") && msg.contains("ld-linux-aarch64.so.1"),
        "{msg}"
    );
    let inner = &f["verdict"]["problems"][0]["problems"];
    assert_eq!(inner[1]["code"], "loader-missing", "{inner:#}");
    assert!(inner[1]["message"]
        .as_str()
        .unwrap()
        .contains("ld-linux-aarch64.so.1"));
}

#[test]
fn truncated_elf_is_a_per_file_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let whole = fs::read(fixture(ARM64_BUSYBOX)).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let half = write("half", &whole[..whole.len() / 2]);
    let stub = write("stub", &whole[..30]);
    let out = explain(&["--json", half.to_str().unwrap(), stub.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let j = out.json();
    for f in j["files"].as_array().unwrap() {
        assert_eq!(f["type"], "error", "{f:#}");
        assert!(
            f["error"]
                .as_str()
                .unwrap()
                .starts_with("truncated ELF: its "),
            "{f:#}"
        );
        assert_eq!(f["verdict"]["outcome"], "cannot-run");
    }
    assert!(j["files"][0]["error"]
        .as_str()
        .unwrap()
        .contains(&format!("only {} bytes", whole.len() / 2)));
}

#[test]
fn bad_input_is_exit_2_and_names_the_path() {
    let out = explain(&["/no/such/file"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/no/such/file"), "{}", out.stderr);
    let dir = fixture("bookworm/arm64");
    let out = explain(&[dir.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--recursive"), "{}", out.stderr);
}

#[test]
fn recursive_walk_reports_every_regular_file_once() {
    let dir = fixture("bookworm/arm64");
    let expected = tool("find", &[dir.to_str().unwrap(), "-type", "f"]);
    let mut expected: Vec<&str> = expected.lines().collect();
    expected.sort();
    let out = explain(&["--json", "--recursive", dir.to_str().unwrap()]);
    assert_eq!(out.code, 1, "arm64 programs cannot run here");
    let j = out.json();
    let mut seen: Vec<&str> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, expected);
    let s = &j["summary"];
    let sum = ["runnable", "cannot_run", "not_executable"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sum, expected.len() as u64);
    // Shared libraries and docs are not executables; a walk does not fail because of them.
    assert!(s["not_executable"].as_u64().unwrap() > 0 && s["cannot_run"].as_u64().unwrap() > 0);
}
