//! The .deb and .rpm packages and the systemd unit they carry.

use std::path::Path;
use std::process::Command;

use crate::{artifact, assert_success, dist, run, text, ARCHES, VERSION};

const DEB_FILES: [&str; 4] = [
    "./usr/bin/binfmtd",
    "./usr/lib/systemd/system/binfmtd.service",
    "./etc/default/binfmtd",
    "./usr/share/doc/binfmtd/copyright",
];

fn deb_arch(arch: &str) -> &'static str {
    if arch == "x86_64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// Words that would mean a package script touches binfmt_misc registrations or restarts the service.
fn assert_scripts_leave_binfmt_alone(what: &str, scripts: &str) {
    for word in [
        "binfmt_misc",
        "systemd-binfmt",
        "restart",
        "binfmtd uninstall",
        "> status",
        "-1",
    ] {
        let hits: Vec<&str> = scripts
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.contains("echo"))
            .filter(|l| l.contains(word))
            .collect();
        assert!(hits.is_empty(), "{what} scripts mention {word:?}: {hits:?}");
    }
}

#[test]
fn deb_lists_the_expected_files_and_scripts_leave_binfmt_alone() {
    for (arch, _) in ARCHES {
        let deb = dist().join(format!("binfmtd_{VERSION}_{}.deb", deb_arch(arch)));
        let listing = assert_success(
            "dpkg-deb -c",
            &run(Command::new("dpkg-deb").arg("-c").arg(&deb)),
        );
        for file in DEB_FILES {
            assert!(
                listing.lines().any(|l| l.ends_with(file)),
                "{}: no {file} in:\n{listing}",
                deb.display()
            );
        }
        let field = |name: &str| {
            let out = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
            assert_success("dpkg-deb -f", &out).trim().to_string()
        };
        assert_eq!(field("Architecture"), deb_arch(arch));
        assert_eq!(field("Version"), VERSION);
        let control = tempfile::tempdir().unwrap();
        assert_success(
            "dpkg-deb -e",
            &run(Command::new("dpkg-deb")
                .arg("-e")
                .arg(&deb)
                .arg(control.path())),
        );
        let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
        assert!(
            conffiles.lines().any(|l| l == "/etc/default/binfmtd"),
            "{conffiles}"
        );
        let scripts: String = ["postinst", "prerm", "postrm"]
            .iter()
            .map(|s| std::fs::read_to_string(control.path().join(s)).unwrap())
            .collect();
        assert_scripts_leave_binfmt_alone("deb", &scripts);
    }
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    // --force-script-chrootless: scripts run on the host with DPKG_ROOT set, the way image builders use it.
    let out = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-not-root",
            "--log=/dev/null",
        ])
        .args(args));
    assert_success(&format!("dpkg {args:?}"), &out)
}

#[test]
fn deb_installs_upgrades_and_removes_in_a_test_root() {
    let root = tempfile::tempdir().unwrap();
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "etc/systemd/system",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("var/lib/dpkg/status"), "").unwrap();
    let host_entries = super::common::host::snapshot();
    let deb = dist().join(format!("binfmtd_{VERSION}_amd64.deb"));
    let deb = deb.to_str().unwrap();
    let wants = root
        .path()
        .join("etc/systemd/system/multi-user.target.wants/binfmtd.service");

    dpkg(root.path(), &["--install", deb]);
    let bin = root.path().join("usr/bin/binfmtd");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(artifact("x86_64")).unwrap()
    );
    assert!(root.path().join("etc/default/binfmtd").is_file());
    assert!(
        wants.symlink_metadata().is_ok(),
        "postinst did not enable the unit in the root"
    );

    // Reinstalling (the upgrade path) keeps the admin's edit of the conffile and the enablement.
    std::fs::write(
        root.path().join("etc/default/binfmtd"),
        "BINFMTD_ARGS=\"--arch arm64\"\n",
    )
    .unwrap();
    dpkg(root.path(), &["--force-confold", "--install", deb]);
    let env = std::fs::read_to_string(root.path().join("etc/default/binfmtd")).unwrap();
    assert_eq!(env, "BINFMTD_ARGS=\"--arch arm64\"\n");
    assert!(wants.symlink_metadata().is_ok());

    let removed = dpkg(root.path(), &["--remove", "binfmtd"]);
    assert!(
        removed.contains("binfmtd uninstall"),
        "prerm should say how entries are removed:\n{removed}"
    );
    assert!(
        !bin.exists() && wants.symlink_metadata().is_err(),
        "remove left the binary or the enablement"
    );
    assert!(
        root.path().join("etc/default/binfmtd").exists(),
        "remove (not purge) must keep conffiles"
    );
    dpkg(root.path(), &["--purge", "binfmtd"]);
    assert!(
        !root.path().join("etc/default/binfmtd").exists(),
        "purge left the conffile"
    );
    assert_eq!(
        super::common::host::snapshot(),
        host_entries,
        "the package cycle changed the host's binfmt_misc entries"
    );
}

#[test]
fn rpm_carries_the_binary_unit_and_config_per_arch() {
    for (arch, _) in ARCHES {
        let rpm = dist().join(format!("binfmtd-{VERSION}-1.{arch}.rpm"));
        let q = |args: &[&str]| {
            assert_success(
                "rpm -qp",
                &run(Command::new("rpm").arg("-qp").args(args).arg(&rpm)),
            )
        };
        assert_eq!(
            q(&["--qf", "%{ARCH} %{VERSION}"]),
            format!("{arch} {VERSION}")
        );
        let files = q(&["--list"]);
        for file in [
            "/usr/bin/binfmtd",
            "/usr/lib/systemd/system/binfmtd.service",
            "/etc/default/binfmtd",
        ] {
            assert!(
                files.lines().any(|l| l == file),
                "{}: no {file} in:\n{files}",
                rpm.display()
            );
        }
        assert!(q(&["--configfiles"])
            .lines()
            .any(|l| l == "/etc/default/binfmtd"));
        assert_scripts_leave_binfmt_alone("rpm", &q(&["--scripts"]));
        // The payload's binary is the release artifact for that arch, byte for byte.
        let out = tempfile::tempdir().unwrap();
        let extract = format!("rpm2cpio '{}' | cpio -idm --quiet", rpm.display());
        assert_success(
            "rpm2cpio | cpio",
            &run(Command::new("sh")
                .arg("-c")
                .arg(extract)
                .current_dir(out.path())),
        );
        assert_eq!(
            std::fs::read(out.path().join("usr/bin/binfmtd")).unwrap(),
            std::fs::read(artifact(arch)).unwrap()
        );
    }
}

/// The unit as install.sh places it, checked by systemd itself in a staging root that also holds the
/// host's own units (for sysinit.target and friends). `verify` exits 0 on warnings, so any output fails.
#[test]
fn unit_passes_systemd_analyze_verify_and_keeps_its_hardening_score() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("usr/bin/binfmtd");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(artifact(std::env::consts::ARCH), &bin).unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::copy(
        dist().join("binfmtd.service"),
        units.join("binfmtd.service"),
    )
    .unwrap();
    let system = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&system).unwrap();
    assert_success(
        "cp units",
        &run(Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(&system)),
    );

    let root_arg = format!("--root={}", root.path().display());
    let verify = run(Command::new("systemd-analyze").args([
        "verify",
        &root_arg,
        "/etc/systemd/system/binfmtd.service",
    ]));
    let out = text(&verify);
    assert!(
        verify.status.success() && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );

    let security = run(Command::new("systemd-analyze").args([
        "security",
        "--offline=yes",
        &root_arg,
        "binfmtd.service",
    ]));
    let out = text(&security);
    let score: f64 = out
        .split("Overall exposure level for binfmtd.service: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{out}"));
    println!("systemd-analyze security --offline: {score}");
    // 5.1 today; the unit cannot go much lower while it must mount in the host namespace (see its comments)
    // and let the native probe use the compat ABI (SystemCallArchitectures=native x86 arm, +0.1).
    assert!(
        score <= 5.1,
        "binfmtd.service exposure {score} regressed past 5.1:\n{out}"
    );
}
