//! `binfmtd explain` against a REAL binfmt_misc instance (the private sandbox of
//! tests/common), each verdict checked by actually executing the file in the same state.

mod common;

use binfmtd::arch;
use common::fixtures::{qemu_cached_in_sandbox, qemu_in_sandbox};
use common::{register_cmd, Busybox, Sandbox, NATIVE_I386};
use serde_json::Value;

/// Shell that runs `explain --json ARGS`, then prints `NAME-exit=<code>` and the JSON line.
fn explain_step(name: &str, args: &str) -> String {
    format!(
        "rc=0; \"$BINFMTD\" explain --json {args} >/tmp/{name}.json || rc=$?\n\
         echo \"{name}-exit=$rc\"; cat /tmp/{name}.json\n"
    )
}

/// The exit code and JSON document printed by `explain_step(name, ..)`.
fn step(stdout: &str, name: &str) -> (i32, Value) {
    let mut lines = stdout.lines();
    let marker = format!("{name}-exit=");
    lines
        .find(|l| l.starts_with(&marker))
        .unwrap_or_else(|| panic!("no {marker} in {stdout}"));
    let code = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&marker))
        .unwrap()
        .parse()
        .unwrap();
    let json =
        serde_json::from_str(lines.next().unwrap()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, json)
}

fn verdict(j: &Value) -> &Value {
    &j["files"][0]["verdict"]
}

#[test]
fn arm64_busybox_runs_emulated_after_install() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = Busybox::by_debian("arm64");
    let path = bb.host_path();
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{before}\
             \"$BINFMTD\" install --arch arm64 --interpreter-dir \"$QEMU_DIR\" --probe-dir /tmp >&2\n\
             {after}\
             echo \"ran=$({bb} uname -m)\"\n\
             echo \"qemu=$(\"$QEMU_DIR/qemu-aarch64-static\" --version | head -1)\"",
            before = explain_step("before", &path.display().to_string()),
            after = explain_step("after", &path.display().to_string()),
            bb = path.display(),
        ))
        .success();
    let (code, j) = step(&run.stdout, "before");
    assert_eq!(code, 1, "{run}");
    assert_eq!(j["node"]["binfmt_misc"]["state"], "available");
    let problem = &verdict(&j)["problems"][0];
    assert_eq!(problem["code"], "no-emulator", "{run}");
    assert!(problem["message"]
        .as_str()
        .unwrap()
        .contains("binfmtd install --arch aarch64"));

    let (code, j) = step(&run.stdout, "after");
    assert_eq!(code, 0, "{run}");
    let v = verdict(&j);
    assert_eq!(v["outcome"], "emulated", "{run}");
    let entry = &v["entry"];
    assert_eq!(entry["name"], "binfmtd-aarch64");
    assert!(entry["flags"].as_str().unwrap().contains('F'), "{entry}");
    assert_eq!(entry["interpreter"], qemu_cached_in_sandbox("aarch64"));
    // The version is the one the registered emulator itself prints.
    let qemu = entry["qemu_version"].as_str().unwrap_or_default();
    let printed = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("qemu="))
        .unwrap();
    assert!(
        !qemu.is_empty() && printed.ends_with(&format!(" version {qemu}")),
        "{entry} vs {printed}"
    );
    assert!(v["summary"]
        .as_str()
        .unwrap()
        .contains(&format!("qemu {qemu}")));
    // And the verdict is true: the kernel runs it.
    assert!(run.stdout.contains(&format!("ran={}\n", bb.uname)), "{run}");
}

/// A dynamic arm64 dash in a chroot: explain --root predicts what chroot then does, with
/// and without the libc6 package in that root.
#[test]
fn dash_root_verdict_matches_chroot() {
    let Some(sb) = Sandbox::new() else { return };
    let aarch64 = arch::lookup("arm64").unwrap();
    let fixtures = common::fixtures::dir();
    let (dash, libc) = (
        fixtures.join("bookworm/arm64/dash"),
        fixtures.join("bookworm/arm64/libc6"),
    );
    assert!(
        dash.is_dir() && libc.is_dir(),
        "run `bash tests/fixtures/fetch.sh` first"
    );
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{reg}\n\
             mkdir /tmp/bare /tmp/full\n\
             cp -a --no-preserve=ownership {dash}/. /tmp/bare/; cp -a --no-preserve=ownership {dash}/. {libc}/. /tmp/full/\n\
             {bare}{full}\
             chroot /tmp/full /bin/dash -c 'echo full-ran'\n\
             if chroot /tmp/bare /bin/dash -c 'echo bare-ran' 2>/tmp/err; then :; else echo bare-failed; fi\n\
             cat /tmp/err >&2",
            reg = register_cmd(aarch64, &qemu_in_sandbox("aarch64"), "F"),
            dash = dash.display(),
            libc = libc.display(),
            bare = explain_step("bare", "--root /tmp/bare /tmp/bare/bin/dash"),
            full = explain_step("full", "--root /tmp/full /tmp/full/bin/dash"),
        ))
        .success();
    let (code, j) = step(&run.stdout, "full");
    assert_eq!(
        (code, verdict(&j)["outcome"].as_str()),
        (0, Some("emulated")),
        "{run}"
    );
    assert!(run.stdout.contains("full-ran\n"), "{run}");
    let (code, j) = step(&run.stdout, "bare");
    assert_eq!(code, 1, "{run}");
    let codes: Vec<&str> = verdict(&j)["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["loader-missing", "libc-missing"], "{run}");
    assert_eq!(verdict(&j)["entry"]["name"], "binfmtd-aarch64");
    assert!(
        run.stdout.contains("bare-failed\n") && !run.stdout.contains("bare-ran"),
        "{run}"
    );
}

/// binfmt_misc is consulted before the native loader: an i386 entry on x86_64 takes i386
/// programs away from the CPU. explain says so, and `uname -m` shows it.
#[test]
fn entry_for_a_native_arch_is_reported_as_hijacking() {
    let Some(sb) = Sandbox::new() else { return };
    let bb = NATIVE_I386.host_path();
    let i386 = arch::lookup("i386").unwrap();
    let run = sb
        .with_qemu(&["i386"])
        .run_script(&format!(
            "{native}echo \"native=$({bb} uname -m)\"\n{reg}\n{hijacked}echo \"emulated=$({bb} uname -m)\"",
            native = explain_step("native", &bb.display().to_string()),
            reg = register_cmd(i386, &qemu_in_sandbox("i386"), "F"),
            hijacked = explain_step("hijacked", &bb.display().to_string()),
            bb = bb.display(),
        ))
        .success();
    let (_, j) = step(&run.stdout, "native");
    assert_eq!(verdict(&j)["outcome"], "native", "{run}");
    let (_, j) = step(&run.stdout, "hijacked");
    let v = verdict(&j);
    assert_eq!(v["outcome"], "emulated", "{run}");
    assert_eq!(v["entry"]["hijacks_native"], true);
    assert!(v["summary"]
        .as_str()
        .unwrap()
        .contains("hijacks a format this CPU runs natively"));
    assert!(
        run.stdout.contains("native=x86_64\n") && run.stdout.contains("emulated=i686\n"),
        "{run}"
    );
}
