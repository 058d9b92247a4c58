//! packaging/install.sh (as released: stamped with the version) under /bin/sh, downloading from a loopback
//! HTTP server laid out like the release host: <base>/v<version>/<artifact>.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::http::Server;
use crate::{artifact, assert_success, dist, run, snapshot, text, VERSION};

/// A release host: a copy of the dist directory under v<version>/, possibly tampered with.
pub(crate) struct Host {
    _dir: tempfile::TempDir,
    files: PathBuf,
    pub(crate) server: Server,
}

impl Host {
    pub(crate) fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join(format!("v{VERSION}"));
        std::fs::create_dir(&files).unwrap();
        for entry in std::fs::read_dir(dist()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), files.join(entry.file_name())).unwrap();
        }
        let server = Server::start(dir.path());
        Host {
            _dir: dir,
            files,
            server,
        }
    }
}

/// Run the released install.sh with `uname -m` answering `cpu` (a stand-in `uname` first on PATH).
pub(crate) fn install(host: &Host, cpu: &str, args: &[&str]) -> Output {
    let fake = tempfile::tempdir().unwrap();
    let uname = fake.path().join("uname");
    std::fs::write(
        &uname,
        format!("#!/bin/sh\n[ \"$1\" = -m ] && echo {cpu} || exec /bin/uname \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&uname, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap()
    );
    run(Command::new("sh")
        .arg(dist().join("install.sh"))
        .args(args)
        .env("PATH", path)
        .env("BINFMTD_BASE_URL", &host.server.url))
}

pub(crate) fn staging() -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let arg = root.path().to_str().unwrap().to_string();
    (root, arg)
}

/// What a successful install into `root` must have put there for `arch`.
fn assert_installed(root: &Path, arch: &str, args: &str) {
    let bin = root.join("usr/local/bin/binfmtd");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(artifact(arch)).unwrap(),
        "{} is not the {arch} artifact",
        bin.display()
    );
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/binfmtd.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/binfmtd run $BINFMTD_ARGS\n"),
        "unit ExecStart not adjusted:\n{unit}"
    );
    let env = std::fs::read_to_string(root.join("etc/default/binfmtd")).unwrap();
    assert!(
        env.contains(&format!("\nBINFMTD_ARGS=\"{args}\"\n")),
        "env file:\n{env}"
    );
    let wants = root.join("etc/systemd/system/multi-user.target.wants/binfmtd.service");
    let link = std::fs::read_link(&wants)
        .unwrap_or_else(|e| panic!("{}: {e}: unit not enabled", wants.display()));
    assert!(link.ends_with("binfmtd.service"), "{}", link.display());
    if dist().join("config.toml").exists() {
        assert!(
            root.join("etc/binfmtd/config.toml").is_file(),
            "default config not installed"
        );
    }
}

#[test]
fn installs_x86_64_into_a_staging_root_and_a_rerun_changes_nothing() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let args = [
        "--root",
        &root_arg,
        "--arches",
        "arm64,riscv64",
        "--label-prefix",
        "binfmtd.io",
    ];
    let first = assert_success("install.sh (x86_64)", &install(&host, "x86_64", &args));
    assert!(first.contains("verified"), "{first}");
    assert_installed(
        root.path(),
        "x86_64",
        "--arch arm64,riscv64 --label-prefix binfmtd.io",
    );
    assert!(
        host.server
            .requests()
            .iter()
            .any(|r| r.ends_with("-x86_64-linux-musl")),
        "{:?}",
        host.server.requests()
    );

    let before = snapshot(root.path());
    let again = assert_success("install.sh re-run", &install(&host, "x86_64", &args));
    assert_eq!(
        snapshot(root.path()),
        before,
        "a re-run with the same options changed the staging root"
    );
    assert!(again.contains("nothing changed"), "{again}");
    assert!(!again.contains("installed /"), "{again}");

    // An upgrade-style re-run without binfmtd arguments keeps the configured ones.
    let bare = assert_success(
        "install.sh without arguments",
        &install(&host, "amd64", &["--root", &root_arg]),
    );
    assert!(bare.contains("kept /etc/default/binfmtd"), "{bare}");
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn installs_aarch64_from_uname_or_from_the_arch_override() {
    let host = Host::new();
    for (cpu, extra) in [
        ("aarch64", None),
        ("x86_64", Some("arm64")),
        ("arm64", None),
    ] {
        let (root, root_arg) = staging();
        let mut args = vec![
            "--root",
            &root_arg,
            "--version",
            VERSION,
            "--",
            "--arch",
            "s390x",
        ];
        if let Some(arch) = extra {
            args.splice(0..0, ["--arch", arch]);
        }
        assert_success(
            &format!("install.sh (uname {cpu}, {extra:?})"),
            &install(&host, cpu, &args),
        );
        assert_installed(root.path(), "aarch64", "--arch s390x");
    }
}

#[test]
fn refuses_an_unknown_cpu_and_installs_nothing() {
    let host = Host::new();
    for (cpu, args) in [("riscv64", vec![]), ("x86_64", vec!["--arch", "mips64"])] {
        let (root, root_arg) = staging();
        let mut all = vec!["--root", root_arg.as_str()];
        all.extend(args);
        let out = install(&host, cpu, &all);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        let named = if cpu == "riscv64" {
            "riscv64"
        } else {
            "mips64"
        };
        assert!(
            msg.contains(&format!("unsupported CPU '{named}'")) && msg.contains("x86_64"),
            "{msg}"
        );
        assert!(
            snapshot(root.path()).is_empty(),
            "something was installed for {named}"
        );
    }
    assert!(
        host.server.requests().is_empty(),
        "downloaded for an unknown CPU: {:?}",
        host.server.requests()
    );
}

#[test]
fn a_bad_checksum_installs_nothing() {
    let host = Host::new();
    let bin = host
        .files
        .join(format!("binfmtd-{VERSION}-x86_64-linux-musl"));
    let mut bytes = std::fs::read(&bin).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&bin, bytes).unwrap();
    let (root, root_arg) = staging();
    let out = install(&host, "x86_64", &["--root", &root_arg]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("checksum mismatch")
            && msg.contains("binfmtd-")
            && msg.contains("nothing was installed"),
        "{msg}"
    );
    assert!(
        snapshot(root.path()).is_empty(),
        "files installed despite a bad checksum"
    );
}

/// Minimal images may carry wget but no curl: a PATH holding only the tools install.sh uses, minus curl.
#[test]
fn falls_back_to_wget_without_curl() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let tools = tempfile::tempdir().unwrap();
    let needed = [
        "sh",
        "uname",
        "mktemp",
        "rm",
        "sha256sum",
        "cut",
        "cmp",
        "mkdir",
        "dirname",
        "cp",
        "chmod",
        "mv",
        "sed",
        "systemctl",
        "wget",
    ];
    for tool in needed {
        let real = run(Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}")));
        let real = String::from_utf8(real.stdout).unwrap();
        assert!(
            !real.trim().is_empty(),
            "{tool} is not installed (tests/deps.sh installs it)"
        );
        std::os::unix::fs::symlink(real.trim(), tools.path().join(tool)).unwrap();
    }
    let out = run(Command::new(tools.path().join("sh"))
        .arg(dist().join("install.sh"))
        .args(["--root", &root_arg, "--arch", "x86_64"])
        .env("PATH", tools.path())
        .env("BINFMTD_BASE_URL", &host.server.url));
    assert_success("install.sh with wget only", &out);
    // No binfmtd arguments and no earlier file: the default list.
    assert_installed(root.path(), "x86_64", "--arch amd64,arm64 --skip-native");
}

#[test]
fn dry_run_verifies_but_writes_nothing() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let out = assert_success(
        "install.sh --dry-run",
        &install(&host, "x86_64", &["--dry-run", "--root", &root_arg]),
    );
    assert!(
        out.contains("verified") && out.contains("would install /usr/local/bin/binfmtd"),
        "{out}"
    );
    assert!(
        snapshot(root.path()).is_empty(),
        "--dry-run wrote into the root"
    );
}

#[test]
fn rejects_binfmtd_arguments_that_would_need_quoting() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let out = install(
        &host,
        "x86_64",
        &["--root", &root_arg, "--kubeconfig", "/x\"; rm -rf /"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("/etc/default/binfmtd"),
        "{}",
        text(&out)
    );
    assert!(snapshot(root.path()).is_empty());
}
