//! The docs and packaged files say what the binary does: every `--flag` they pass to a
//! `binfmtd <command>` must be one that command's `--help` lists. A flag renamed or dropped in
//! the binary fails here, not on a node.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const COMMANDS: &[&str] = &[
    "install",
    "run",
    "uninstall",
    "status",
    "selftest",
    "explain",
    "fetch",
    "gc",
    "monitor",
    "place",
];

/// `binfmtd <cmd> --help` for every command (global options are listed there too).
fn helps() -> BTreeMap<&'static str, String> {
    COMMANDS
        .iter()
        .map(|c| {
            let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
                .args([c, "--help"])
                .output()
                .unwrap();
            assert!(out.status.success(), "binfmtd {c} --help failed");
            (*c, String::from_utf8(out.stdout).unwrap())
        })
        .collect()
}

/// The `--flags` of one invocation text (stops at a shell comment or a closing backtick).
fn flags(invocation: &str) -> Vec<String> {
    let end = invocation
        .find(" #")
        .into_iter()
        .chain(invocation.find('`'))
        .min()
        .unwrap_or(invocation.len());
    invocation[..end]
        .split_whitespace()
        .filter(|t| t.starts_with("--") && t.len() > 2)
        .map(|t| {
            let t = t.split('=').next().unwrap();
            t.trim_end_matches([',', ')', '"', '\'', '.', ';', ':'])
                .to_string()
        })
        .collect()
}

/// Every `binfmtd <command> ...` in `text`: (line number, command, flags).
fn invocations(text: &str) -> Vec<(usize, &'static str, Vec<String>)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("binfmtd ") {
            let rest = &line[at + "binfmtd ".len()..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let Some(cmd) = COMMANDS.iter().find(|c| **c == word) else {
                continue;
            };
            out.push((n + 1, *cmd, flags(&rest[cmd.len()..])));
        }
    }
    out
}

fn unknown(helps: &BTreeMap<&str, String>, cmd: &str, flags: &[String]) -> Vec<String> {
    flags
        .iter()
        .filter(|f| {
            !helps[cmd]
                .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .any(|w| w == f.as_str())
        })
        .cloned()
        .collect()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn flags_in_the_docs_and_packaging_exist_in_the_binary() {
    let helps = helps();
    let mut bad = Vec::new();
    let files = [
        "README.md",
        "packaging/README.md",
        "packaging/config.example.toml",
        "packaging/binfmtd.env",
        "packaging/cloud-init/user-data.yaml",
        "packaging/cloud-init/eks-al2023-user-data.mime",
        "systemd/binfmtd.service",
    ];
    let mut seen = 0;
    for f in files {
        for (line, cmd, fl) in invocations(&read(f)) {
            seen += 1;
            for u in unknown(&helps, cmd, &fl) {
                bad.push(format!("{f}:{line}: `binfmtd {cmd}` has no {u}"));
            }
        }
    }
    assert!(
        seen > 40,
        "only {seen} invocations found: the scan is broken"
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// BINFMTD_ARGS (the unit's `binfmtd run $BINFMTD_ARGS`) and the arguments the cloud-init
/// one-liners hand to install.sh after `--` are `run` arguments.
#[test]
fn the_units_arguments_and_the_one_liners_are_run_flags() {
    let helps = helps();
    let env = read("packaging/binfmtd.env");
    let args = env
        .lines()
        .find_map(|l| l.strip_prefix("BINFMTD_ARGS="))
        .expect("binfmtd.env sets BINFMTD_ARGS");
    assert!(
        read("systemd/binfmtd.service").contains("ExecStart=/usr/bin/binfmtd run $BINFMTD_ARGS")
    );
    let mut bad = unknown(&helps, "run", &flags(args));
    for f in [
        "packaging/cloud-init/user-data.yaml",
        "packaging/cloud-init/eks-al2023-user-data.mime",
    ] {
        for l in read(f)
            .lines()
            .filter(|l| l.contains("install.sh | sh -s --"))
        {
            let passed = l.rsplit_once(" -- ").map(|(_, a)| a).unwrap_or("");
            bad.extend(unknown(&helps, "run", &flags(passed)));
        }
    }
    assert!(bad.is_empty(), "not `binfmtd run` options: {bad:?}");
}

#[test]
fn the_scan_catches_a_renamed_flag() {
    let helps = helps();
    let found = invocations("x `binfmtd run --arch all --no-such-flag` y");
    assert_eq!(found.len(), 1);
    assert_eq!(unknown(&helps, found[0].1, &found[0].2), ["--no-such-flag"]);
}
