//! The supply chain through `binfmtd install`, against a private binfmt_misc instance:
//! interpreters from pinned config sources via the cache, `status` naming their source and
//! version, rollback when a pin moves to a broken interpreter, and crash safety: SIGKILL at
//! 24 points spread over an install (copy into the cache, verification, registration,
//! probes), each followed by a run that must converge.

mod common;

use binfmtd::interp::sha256_file;
use common::report::{json, status_row};
use common::{sections, with_exit, Busybox, Sandbox};

/// A config whose only sources are local files in the sandbox, pinned by sha256; the
/// embedded (network) default is off, so the test is hermetic.
fn config(sources: &[(&str, &str, String)]) -> String {
    let mut out = String::from("embedded-default = false\n");
    for (arch, path, sha) in sources {
        out.push_str(&format!(
            "\n[[source]]\nname = \"local-{arch}\"\nkind = \"local\"\nhost = \"{host}\"\n\
             targets = [\"{arch}\"]\npath = \"{path}\"\nmember-sha256 = {{ {arch} = \"{sha}\" }}\n",
            host = binfmtd::arch::host().qemu,
        ));
    }
    out
}

fn sha(cpu: &str) -> String {
    sha256_file(std::path::Path::new(&format!("/usr/bin/qemu-{cpu}-static")))
        .unwrap()
        .0
}

/// `install` from a pinned config: the entry points into the content-addressed cache and
/// `status --json` shows where the interpreter came from and which qemu it is. Then the pin
/// moves to a broken interpreter (a qemu for another guest, under aarch64's name): the
/// previous registration stays, exit 1, and the reason says so.
#[test]
fn install_from_pinned_sources_and_roll_back_a_bad_pin() {
    let Some(sb) = Sandbox::new() else { return };
    let good = config(&[("aarch64", "/run/qemu/qemu-aarch64-static", sha("aarch64"))]);
    let bad = config(&[("aarch64", "/run/bad/qemu-aarch64", sha("riscv64"))]);
    let bb = Busybox::by_debian("arm64").host_path();
    let run = sb
        .with_qemu(&["aarch64", "riscv64"])
        .env("GOOD", good)
        .env("BAD", bad)
        .run_script(&format!(
            "mkdir /run/bad && cp $QEMU_DIR/qemu-riscv64-static /run/bad/qemu-aarch64\n\
             printf '%s' \"$GOOD\" > /run/good.toml; printf '%s' \"$BAD\" > /run/bad.toml\n\
             I=\"$BINFMTD install --cache-dir /run/cache --arch arm64\"\n\
             section install; code $I --config /run/good.toml\n\
             section entry; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             section status; code $BINFMTD status --json --cache-dir /run/cache\n\
             section bad; code $I --config /run/bad.toml\n\
             section entry-after; cat /proc/sys/fs/binfmt_misc/binfmtd-aarch64\n\
             section entries; entries\n\
             section run; {bb} uname -m",
            bb = bb.display()
        ))
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "{run}");
    assert!(
        text.contains("aarch64: ok: registered binfmtd-aarch64"),
        "{run}"
    );
    let object = format!("interpreter /run/cache/sha256/{}", sha("aarch64"));
    assert!(s["entry"].contains(&object), "{run}");
    let (text, code) = with_exit(&s["status"]);
    assert_eq!(code, 0, "{run}");
    let status = json(text);
    let row = status_row(&status, "aarch64");
    assert_eq!(row["state"], "emulated-working", "{row}");
    assert!(
        row["source"]
            .as_str()
            .unwrap_or_default()
            .contains("local-aarch64"),
        "{row}"
    );
    assert!(
        row["qemu_version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("7.2"),
        "{row}"
    );
    let (text, code) = with_exit(&s["bad"]);
    assert_eq!(code, 1, "a broken pin must fail: {run}");
    assert!(
        text.contains("kept previous binfmtd-aarch64") && text.contains("(rollback)"),
        "{run}"
    );
    assert_eq!(
        s["entry-after"], s["entry"],
        "the previous registration stays: {run}"
    );
    assert_eq!(
        s["entries"], "binfmtd-aarch64\n",
        "no candidate left behind: {run}"
    );
    assert_eq!(s["run"], "aarch64\n", "{run}");
}

/// SIGKILL `binfmtd install` at 24 points spread over the first 80% of an uninterrupted run. After
/// every kill no final cache path holds a partial or unverified file; the next run
/// converges to exactly binfmtd's three entries, all working, with nothing left over.
#[test]
fn install_killed_at_24_points_converges() {
    let Some(sb) = Sandbox::new() else { return };
    let cpus = ["aarch64", "riscv64", "s390x"];
    let sources: Vec<(&str, String, String)> = cpus
        .iter()
        .map(|c| (*c, format!("/run/qemu/qemu-{c}-static"), sha(c)))
        .collect();
    let cfg = config(
        &sources
            .iter()
            .map(|(a, p, s)| (*a, p.as_str(), s.clone()))
            .collect::<Vec<_>>(),
    );
    let run_bbs: Vec<String> = ["arm64", "riscv64", "s390x"]
        .iter()
        .map(|d| format!("{} uname -m", Busybox::by_debian(d).host_path().display()))
        .collect();
    let run = sb
        .with_qemu(&cpus)
        .env("CFG", cfg)
        .run_script(&format!(
            "printf '%s' \"$CFG\" > /run/cfg.toml\n\
             I=\"$BINFMTD install --config /run/cfg.toml --cache-dir /run/cache --arch arm64,riscv64,s390x\"\n\
             reset() {{ $BINFMTD uninstall --all >/dev/null; rm -rf /run/cache; }}\n\
             # Every file at a final path in the cache is complete: its content hashes to its name.\n\
             finals_ok() {{ for f in /run/cache/sha256/*; do [ -e \"$f\" ] || continue; \
               [ \"$(sha256sum < \"$f\" | cut -d' ' -f1)\" = \"$(basename \"$f\")\" ] || {{ echo \"partial $f\"; return 1; }}; done; \
               for f in /run/cache/index/*.json; do [ -e \"$f\" ] || continue; grep -q '\"sha256\"' \"$f\" || {{ echo \"partial $f\"; return 1; }}; done; }}\n\
             # The shortest of three uninterrupted runs, so the kill points land inside a run\n\
             # even when the machine is busy.\n\
             dur=0; for k in 1 2 3; do t=$(date +%s%N); $I > /dev/null; d=$(( $(date +%s%N) - t )); reset; \
               [ $dur -eq 0 ] || [ $d -lt $dur ] && dur=$d; done\n\
             section kills\n\
             for i in $(seq 1 24); do\n\
               delay=$(awk -v d=$dur -v i=$i 'BEGIN {{ printf \"%.6f\", d * i / 30 / 1e9 }}')\n\
               $I > /dev/null 2>&1 & pid=$!; sleep $delay; kill -9 $pid 2>/dev/null && killed=yes || killed=finished; wait $pid 2>/dev/null || true\n\
               finals_ok || exit 11\n\
               $I > /run/converge.out 2>&1 || {{ cat /run/converge.out; exit 12; }}\n\
               finals_ok || exit 13\n\
               echo \"$i $killed $(entries | tr '\\n' ' ')\"\n\
               {run0} >/dev/null && {run1} >/dev/null && {run2} >/dev/null || exit 14\n\
               [ -z \"$(ls -A /run/cache/probe 2>/dev/null)\" ] || {{ echo probe leftovers; exit 15; }}\n\
               reset\n\
             done",
            run0 = run_bbs[0],
            run1 = run_bbs[1],
            run2 = run_bbs[2],
        ))
        .success();
    let s = sections(&run.stdout);
    let lines: Vec<&str> = s["kills"].lines().collect();
    assert_eq!(lines.len(), 24, "{run}");
    let mut killed = 0;
    for l in &lines {
        assert!(
            l.ends_with("binfmtd-aarch64 binfmtd-riscv64 binfmtd-s390x "),
            "after a kill the next run must leave exactly binfmtd's entries: {l}\n{run}"
        );
        killed += usize::from(l.contains(" yes "));
    }
    // Kill points are spread up to 80% of the fastest baseline run; on a loaded machine a
    // later run can beat that baseline, so the last few may finish first. Two thirds is still
    // far more kill points inside a run than any one phase spans.
    assert!(
        killed >= 16,
        "only {killed} of 24 runs were killed mid-way: {run}"
    );
}
