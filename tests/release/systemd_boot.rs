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

/// The release host bound at /srv/release: the dist under v<version>/, the driver, an arm64 busybox.
fn stage_release() -> tempfile::TempDir {
    let release = tempfile::tempdir().unwrap();
    let files = release.path().join(format!("v{VERSION}"));
    assert_success(
        "cp dist",
        &run(Command::new("cp").arg("-a").arg(dist()).arg(&files)),
    );
    let driver = repo().join("tests/release/boot-driver.sh");
    std::fs::copy(driver, release.path().join("driver.sh")).unwrap();
    let busybox = repo().join("target/fixtures/bookworm/arm64/busybox-static/bin/busybox");
    // Named busybox: busybox picks its applet from argv[0].
    std::fs::create_dir(release.path().join("arm64")).unwrap();
    std::fs::copy(&busybox, release.path().join("arm64/busybox")).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run tests/fixtures/fetch.sh first",
            busybox.display()
        )
    });
    release
}

/// Boot the machine's systemd on a throwaway root; the driver runs, records, and powers off.
fn boot(release: &Path, results: &Path) -> String {
    // The container's root is an unmapped host uid: let it write the results and read the release.
    for dir in [results, release] {
        assert_success("chmod", &run(Command::new("chmod").arg("0777").arg(dir)));
    }
    let cgroups = Cgroups::create(&format!("binfmtd-release-test-{}", std::process::id()));
    let nspawn = format!(
        "{}exec timeout 120 systemd-nspawn --quiet -D / --volatile=yes --boot --register=no --keep-unit \
         --private-network --private-users=pick --private-users-ownership=off \
         --bind-ro={}:/srv/release --bind={}:/srv/results systemd.firstboot=off \
         'systemd.run=\"/usr/bin/sh /srv/release/driver.sh\"' \
         systemd.run_success_action=poweroff systemd.run_failure_action=poweroff",
        cgroups.enter(),
        release.display(),
        results.display()
    );
    let boot = run(Command::new("sh").arg("-c").arg(&nspawn));
    let console = text(&boot);
    assert!(
        results.join("finished").exists(),
        "the booted driver did not finish ({}):\n{console}",
        boot.status
    );
    console
}

struct Recorded<'a> {
    dir: &'a Path,
    context: String,
}

impl Recorded<'_> {
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn show(&self, run: &str, key: &str) -> String {
        let prefix = format!("{key}=");
        self.read(&format!("{run}.show"))
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_string()
    }
}

/// First run: files installed, unit enabled and started, and the unit's process really ran the binary
/// (exited by itself, not one of systemd's 200-243 "could not even exec it" codes such as 203/EXEC or
/// 228/SECCOMP). install.sh's exit status agrees with the unit: 0 if active, else 1 naming the unit.
fn assert_first_install(r: &Recorded) -> bool {
    let (first, context) = (r.read("first.log"), &r.context);
    for line in [
        "installed /opt/binfmtd/bin/binfmtd",
        "installed /etc/systemd/system/binfmtd.service",
        "enabled binfmtd.service",
    ] {
        assert!(first.contains(line), "missing {line:?}; {context}");
    }
    assert_eq!(r.read("first.enabled").trim(), "enabled", "{context}");
    assert_ne!(
        r.show("first", "ExecMainStartTimestampMonotonic"),
        "0",
        "never started; {context}"
    );
    assert_eq!(
        r.show("first", "ExecMainCode"),
        "1",
        "not a normal exit (CLD_EXITED); {context}"
    );
    let status: u32 = r.show("first", "ExecMainStatus").parse().unwrap();
    assert!(
        !(200..=243).contains(&status),
        "systemd could not run the binary ({status}); {context}"
    );
    let active = r.show("first", "ActiveState") == "active";
    assert_eq!(
        r.read("first.rc").trim(),
        if active { "0" } else { "1" },
        "{context}"
    );
    if !active {
        assert!(
            first.contains("binfmtd.service failed; see 'journalctl -u binfmtd'"),
            "{context}"
        );
    }
    active
}

#[test]
fn install_sh_enables_and_starts_the_unit_under_a_running_systemd() {
    let release = stage_release();
    let results = tempfile::tempdir().unwrap();
    let host_entries = host_binfmt_entries();
    boot(release.path(), results.path());
    let mut r = Recorded {
        dir: results.path(),
        context: String::new(),
    };
    r.context = format!(
        "first run:\n{}\nsecond run:\n{}\njournal:\n{}",
        r.read("first.log"),
        r.read("second.log"),
        r.read("journal")
    );
    let active = assert_first_install(&r);

    let (second, context) = (r.read("second.log"), &r.context);
    assert!(
        second.contains("nothing changed") && !second.contains("installed /"),
        "{context}"
    );
    assert!(!second.contains("enabled binfmtd.service"), "{context}");
    if active {
        // Nothing changed, so the running unit must not have been restarted.
        assert_eq!(
            r.show("first", "InvocationID"),
            r.show("second", "InvocationID"),
            "{context}"
        );
        assert_eq!(r.read("second.rc").trim(), "0", "{context}");
    }
    // qemu-user ran an arm64 program inside the unit's sandbox.
    assert_eq!(r.read("probe.rc").trim(), "0", "{context}");
    assert!(
        r.read("journal")
            .contains("probe ran in the binfmtd sandbox"),
        "{context}"
    );
    assert_eq!(
        host_binfmt_entries(),
        host_entries,
        "booting the container changed the host's binfmt_misc entries"
    );
}
