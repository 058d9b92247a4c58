//! install.sh edits an admin's machine: it changes only its own line of /etc/default/binfmtd, and a
//! --prefix that sed, the unit's ExecStart or --root would misread is refused before anything happens.

use std::os::unix::fs::PermissionsExt;

use crate::install_sh::{install, staging, Host};
use crate::{assert_success, snapshot, text};

const ADMIN_ENV: &str = "# proxy for the mirrors, set by the admin\n\
                         HTTPS_PROXY=http://proxy.internal:3128\n\
                         BINFMTD_ARGS=\"--arch arm64\"\n\
                         NO_PROXY=169.254.169.254,10.0.0.0/8";

#[test]
fn a_rerun_changes_only_the_binfmtd_args_line_of_etc_default_binfmtd() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let env = root.path().join("etc/default/binfmtd");
    std::fs::create_dir_all(env.parent().unwrap()).unwrap();
    std::fs::write(&env, ADMIN_ENV).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = ["--root", &root_arg, "--arches", "riscv64,s390x"];
    assert_success("install.sh", &install(&host, "x86_64", &args));
    let want = ADMIN_ENV.replace("--arch arm64", "--arch riscv64,s390x") + "\n";
    assert_eq!(std::fs::read_to_string(&env).unwrap(), want);
    let mode = std::fs::metadata(&env).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the admin's mode (proxy credentials) was widened"
    );
    let before = snapshot(root.path());
    let again = assert_success("install.sh re-run", &install(&host, "x86_64", &args));
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(snapshot(root.path()), before);
    // A file without the line gets it appended; nothing else moves.
    std::fs::write(&env, "HTTPS_PROXY=http://p:1\n").unwrap();
    assert_success("install.sh", &install(&host, "x86_64", &args));
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "HTTPS_PROXY=http://p:1\nBINFMTD_ARGS=\"--arch riscv64,s390x\"\n"
    );
}

#[test]
fn refuses_a_prefix_that_is_relative_or_needs_quoting_and_installs_nothing() {
    let host = Host::new();
    for prefix in [
        "/opt/a&b",
        "/opt/a b",
        "opt/binfmtd",
        "/opt/x#\ns#.*#ExecStartPre=/tmp/evil#",
        "/opt/../../../tmp",
        "/opt/a\"b",
    ] {
        let (root, root_arg) = staging();
        let out = install(&host, "x86_64", &["--root", &root_arg, "--prefix", prefix]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{prefix:?}: {msg}");
        assert!(msg.contains("--prefix"), "{prefix:?}: {msg}");
        assert!(
            snapshot(root.path()).is_empty(),
            "{prefix:?}: something was installed"
        );
    }
    assert!(
        host.server.requests().is_empty(),
        "downloaded despite a bad --prefix: {:?}",
        host.server.requests()
    );
}

#[test]
fn a_safe_prefix_is_used_for_the_binary_and_the_unit() {
    let host = Host::new();
    let (root, root_arg) = staging();
    let args = ["--root", &root_arg, "--prefix", "/opt/binfmtd-1.0+x/"];
    assert_success("install.sh --prefix", &install(&host, "x86_64", &args));
    assert!(root.path().join("opt/binfmtd-1.0+x/bin/binfmtd").is_file());
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/binfmtd.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/opt/binfmtd-1.0+x/bin/binfmtd "),
        "{unit}"
    );
}
