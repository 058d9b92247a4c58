//! Helpers shared by the explain tests that build roots from Debian packages and check
//! each verdict by executing the program there (tests/explain_libraries.rs,
//! tests/explain_loader_rules.rs).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::common::{self, Sandbox};

/// A fixture package tree; fails with the fix when tests/fixtures/fetch.sh has not run.
pub fn package(rel: &str) -> PathBuf {
    let p = common::fixtures::dir().join(rel);
    assert!(
        p.is_dir(),
        "fixture {} is missing: run `bash tests/fixtures/fetch.sh` first",
        p.display()
    );
    p
}

pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-euc").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh root under the target dir (the sandbox mounts its own /tmp), merged-/usr like
/// Debian's, with the package trees copied in; world-readable for the sandbox's uid.
pub fn root(name: &str, pkgs: &[&str]) -> PathBuf {
    let r = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("explain-roots/{name}"));
    let _ = fs::remove_dir_all(&r);
    let q = common::sh_quote(r.to_str().unwrap());
    let mut script = format!(
        "mkdir -p {q}/usr/lib {q}/usr/bin {q}/usr/sbin {q}/usr/lib64 {q}/etc\n\
         for d in lib bin sbin lib64; do ln -s usr/$d {q}/$d; done\n"
    );
    for p in pkgs {
        let src = common::sh_quote(package(p).to_str().unwrap());
        script += &format!("tar -C {src} -cf - . | tar -C {q} -xf - --keep-directory-symlink\n");
    }
    sh(&script);
    r
}

pub fn chmod_readable(root: &Path) {
    sh(&format!(
        "chmod -R a+rX {}",
        common::sh_quote(root.to_str().unwrap())
    ));
}

/// `explain --json --root ROOT ROOT/PROGRAM` with binfmt_misc pointed at an empty directory.
pub fn explain(root: &Path, program: &str) -> (i32, Value) {
    let nowhere = tempfile::tempdir().unwrap();
    let host_path = root.join(program.trim_start_matches('/'));
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["explain", "--json", "--binfmt-misc"])
        .arg(nowhere.path())
        .arg("--cache-dir")
        .arg(nowhere.path())
        .arg("--root")
        .arg(root)
        .arg(&host_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), j["files"][0].clone())
}

/// Execute PROGRAM ARGS chrooted into ROOT inside the sandbox: (exit code, stderr).
pub fn execute(root: &Path, program: &str, args: &str) -> Option<(i32, String)> {
    let sb = Sandbox::new()?;
    chmod_readable(root);
    // A container has /proc; glibc needs /proc/self/exe to expand the program's $ORIGIN.
    fs::create_dir_all(root.join("proc")).unwrap();
    let run = sb.run_script(&format!(
        "mount -t proc proc {r}/proc\n\
         rc=0; chroot {r} {program} {args} >/dev/null 2>/tmp/err || rc=$?\n\
         echo \"exit=$rc\"; cat /tmp/err",
        r = common::sh_quote(root.to_str().unwrap())
    ));
    let code = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("exit="))
        .unwrap_or_else(|| panic!("{run}"))
        .parse()
        .unwrap();
    let err = run.stdout.split_once('\n').map(|x| x.1).unwrap_or("");
    Some((code, err.to_string()))
}

/// Explain and execute; the verdict must agree with the execution. Returns both.
pub fn judge(root: &Path, program: &str, args: &str) -> Option<(Value, i32, String)> {
    let (code, f) = explain(root, program);
    let (exit, err) = execute(root, program, args)?;
    let runs = f["verdict"]["outcome"] == "native";
    assert_eq!(
        runs,
        exit == 0,
        "explain says {:#} but executing it exited {exit}: {err}",
        f["verdict"]
    );
    assert_eq!(code, if runs { 0 } else { 1 }, "explain's exit code");
    Some((f, exit, err))
}

pub fn problem<'a>(f: &'a Value, code: &str) -> &'a Value {
    f["verdict"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {f:#}"))
}
