//! install.sh on a machine where systemd runs: the machine's own systemd booted in a container
//! (systemd-nspawn --volatile=yes, so the host's /usr read-only and a throwaway root) runs
//! tests/release/boot-driver.sh, which installs twice and records what systemd made of it.
//!
//! --private-users is not optional: a container systemd that shares the host user namespace registers
//! /usr/lib/binfmt.d into the HOST binfmt_misc instance and flushes all of it at shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{assert_success, dist, repo, run, text, VERSION};

/// A fresh cgroup in each hierarchy that needs one (nspawn refuses to run from the root cgroup of a
/// hybrid layout), removed again on drop.
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    fn create(name: &str) -> Cgroups {
        let base = Path::new("/sys/fs/cgroup");
        let hierarchies: Vec<PathBuf> = if base.join("systemd").exists() {
            ["systemd", "unified"]
                .iter()
                .map(|h| base.join(h))
                .filter(|h| h.join("cgroup.procs").exists())
                .collect()
        } else {
            vec![base.to_path_buf()] // a pure cgroup2 host
        };
        let dirs: Vec<PathBuf> = hierarchies.iter().map(|h| h.join(name)).collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("{}: {e}; the test needs root", dir.display()));
        }
        Cgroups(dirs)
    }

    /// A shell prefix that moves the shell into every cgroup before it execs the command.
    fn enter(&self) -> String {
        self.0
            .iter()
            .map(|d| format!("echo $$ > {}/cgroup.procs && ", d.display()))
            .collect()
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in &self.0 {
            remove_cgroup(dir);
        }
    }
}

/// Cgroup directories go with rmdir only, children first (nspawn may leave a payload cgroup behind).
fn remove_cgroup(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn host_binfmt_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn show(results: &Path, run: &str, key: &str) -> String {
    let show = std::fs::read_to_string(results.join(format!("{run}.show"))).unwrap();
    let prefix = format!("{key}=");
    show.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn install_sh_enables_and_starts_the_unit_under_a_running_systemd() {
    let release = tempfile::tempdir().unwrap();
    let files = release.path().join(format!("v{VERSION}"));
    assert_success(
        "cp dist",
        &run(Command::new("cp").arg("-a").arg(dist()).arg(&files)),
    );
    std::fs::copy(
        repo().join("tests/release/boot-driver.sh"),
        release.path().join("driver.sh"),
    )
    .unwrap();
    let busybox = repo().join("target/fixtures/bookworm/arm64/busybox-static/bin/busybox");
    // Named busybox: busybox picks its applet from argv[0].
    std::fs::create_dir(release.path().join("arm64")).unwrap();
    std::fs::copy(&busybox, release.path().join("arm64/busybox")).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run tests/fixtures/fetch.sh first",
            busybox.display()
        )
    });
    let results = tempfile::tempdir().unwrap();
    // The container's root is an unmapped-to-host uid: let it write the results and read the release.
    for dir in [results.path(), release.path()] {
        assert_success("chmod", &run(Command::new("chmod").arg("0777").arg(dir)));
    }
    let cgroups = Cgroups::create(&format!("binfmtd-release-test-{}", std::process::id()));
    let host_entries = host_binfmt_entries();
    let nspawn = format!(
        "{}exec timeout 120 systemd-nspawn --quiet -D / --volatile=yes --boot --register=no --keep-unit \
         --private-network --private-users=pick --private-users-ownership=off \
         --bind-ro={}:/srv/release --bind={}:/srv/results systemd.firstboot=off \
         'systemd.run=\"/usr/bin/sh /srv/release/driver.sh\"' \
         systemd.run_success_action=poweroff systemd.run_failure_action=poweroff",
        cgroups.enter(),
        release.path().display(),
        results.path().display()
    );
    let boot = run(Command::new("sh").arg("-c").arg(&nspawn));
    let console = text(&boot);
    let r = results.path();
    assert!(
        r.join("finished").exists(),
        "the booted driver did not finish ({}):\n{console}",
        boot.status
    );
    let read = |name: &str| std::fs::read_to_string(r.join(name)).unwrap_or_default();
    let (first, second, journal) = (read("first.log"), read("second.log"), read("journal"));
    let context = format!("first run:\n{first}\nsecond run:\n{second}\njournal:\n{journal}");

    for line in [
        "installed /opt/binfmtd/bin/binfmtd",
        "installed /etc/systemd/system/binfmtd.service",
        "enabled binfmtd.service",
    ] {
        assert!(first.contains(line), "missing {line:?}; {context}");
    }
    assert_eq!(read("first.enabled").trim(), "enabled", "{context}");
    // install.sh started the unit, and the unit ran the installed binary under its hardening.
    assert_ne!(
        show(r, "first", "ExecMainStartTimestampMonotonic"),
        "0",
        "{context}"
    );
    assert!(
        journal.contains("Starting binfmtd.service") && journal.contains("binfmtd["),
        "{context}"
    );
    // install.sh's exit status agrees with the unit: 0 when it is active, 1 naming the unit otherwise.
    let active = show(r, "first", "ActiveState") == "active";
    let rc = read("first.rc").trim().to_string();
    assert_eq!(rc, if active { "0" } else { "1" }, "{context}");
    if !active {
        assert!(
            first.contains("binfmtd.service failed; see 'journalctl -u binfmtd'"),
            "{context}"
        );
    }

    assert!(
        second.contains("nothing changed") && !second.contains("installed /"),
        "{context}"
    );
    assert!(!second.contains("enabled binfmtd.service"), "{context}");
    if active {
        // Nothing changed, so the running unit must not have been restarted.
        assert_eq!(
            show(r, "first", "InvocationID"),
            show(r, "second", "InvocationID"),
            "{context}"
        );
        assert_eq!(read("second.rc").trim(), "0", "{context}");
    }
    // qemu-user ran an arm64 program inside the unit's sandbox.
    assert_eq!(read("probe.rc").trim(), "0", "{context}");
    assert!(
        journal.contains("probe ran in the binfmtd sandbox"),
        "{context}"
    );
    assert_eq!(
        host_binfmt_entries(),
        host_entries,
        "booting the container changed the host's binfmt_misc entries"
    );
}
