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
    // $FIXTURES, or fetch.sh's default in the source tree (as tests/common/fixtures.rs resolves it).
    let fixtures = std::env::var_os("FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixtures"));
    let busybox = fixtures.join("bookworm/arm64/busybox-static/bin/busybox");
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

/// First run: files installed, the unit enabled and started, and `binfmtd install` run by it to success
/// (so install.sh exits 0). Second run: nothing changed and the running unit was not restarted.
fn assert_install_and_rerun(r: &Recorded) {
    let (first, second, context) = (r.read("first.log"), r.read("second.log"), &r.context);
    for line in [
        "installed /opt/binfmtd/bin/binfmtd",
        "installed /etc/systemd/system/binfmtd.service",
        "enabled binfmtd.service",
        "started binfmtd.service",
    ] {
        assert!(first.contains(line), "missing {line:?}; {context}");
    }
    assert_eq!(r.read("first.enabled").trim(), "enabled", "{context}");
    assert_eq!(r.read("first.rc").trim(), "0", "{context}");
    assert_eq!(r.show("first", "ActiveState"), "active", "{context}");
    assert_eq!(r.show("first", "ExecMainStatus"), "0", "{context}");

    assert!(
        second.contains("nothing changed") && !second.contains("installed /"),
        "{context}"
    );
    assert!(!second.contains("enabled binfmtd.service"), "{context}");
    assert_eq!(r.read("second.rc").trim(), "0", "{context}");
    assert_eq!(
        r.show("first", "InvocationID"),
        r.show("second", "InvocationID"),
        "restarted; {context}"
    );
}

/// The daemon's contract with systemd: READY with STATUS=, no i386 entry on x86_64, entries kept on stop,
/// and ordering: a unit After= it starts only once it is READY.
fn assert_ready_and_ordered(r: &Recorded) {
    let context = &r.context;
    assert_eq!(r.show("first", "Type"), "notify", "{context}");
    assert_eq!(r.show("first", "SubState"), "running", "{context}");
    let status = r.show("first", "StatusText");
    assert!(
        status.starts_with("working: ") && status.contains("aarch64"),
        "STATUS= {status:?}; {context}"
    );
    let entries = r.read("entries");
    assert!(
        entries.lines().any(|e| e == "binfmtd-aarch64"),
        "{entries}; {context}"
    );
    if std::env::consts::ARCH == "x86_64" {
        assert!(
            !entries
                .lines()
                .any(|e| e == "binfmtd-i386" || e == "binfmtd-i486"),
            "i386 runs natively and must not be emulated: {entries}; {context}"
        );
        assert!(
            status.contains("aarch64") && !status.contains("i386"),
            "{status}"
        );
    }
    assert_eq!(r.show("stopped", "ActiveState"), "inactive", "{context}");
    assert_eq!(
        r.read("entries-after-stop"),
        entries,
        "stop removed entries; {context}"
    );
    assert_eq!(r.read("foreign-unit.rc").trim(), "0", "{context}");
    assert_eq!(
        r.read("foreign-unit").trim(),
        "foreign unit ran",
        "{context}"
    );
    assert_eq!(r.show("ordered", "ActiveState"), "active", "{context}");
}

/// install.sh on a live systemd, end to end: the hardened Type=notify unit runs `binfmtd run --arch all`
/// (arm64 on arm64 hosts), which mounts binfmt_misc, registers qemu-aarch64 and proves it with a probe
/// under the unit's own sandbox (seccomp filter, NoNewPrivileges, DevicePolicy...), and reports READY with
/// the working arches; an arm64 busybox runs through the entry. i386 stays native on x86_64 (the native
/// probe survives the unit's SystemCallArchitectures=), `systemctl stop` leaves the entries, and a unit
/// ordered after binfmtd.service runs a foreign program on a flushed instance.
#[test]
fn install_sh_enables_and_starts_the_unit_under_a_running_systemd() {
    // The container's registration needs a per-user-namespace binfmt_misc instance: the
    // shared probe skips only where the kernel lacks them, and never under CI=true.
    if super::common::support::require().is_none() {
        return;
    }
    let release = stage_release();
    let results = tempfile::tempdir().unwrap();
    let host_entries = super::common::host::snapshot();
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
    assert_install_and_rerun(&r);

    let entry = r.read("entry");
    assert!(
        entry.starts_with("enabled\n"),
        "no enabled binfmtd-aarch64 entry: {entry:?}; {}",
        r.context
    );
    // The copy of /opt/qemu's file in the cache is registered, not the path an operator controls.
    assert!(
        entry.contains("\ninterpreter /var/lib/binfmtd/sha256/"),
        "the entry does not name a cache copy: {entry}"
    );
    let flags = entry
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_default();
    assert!(flags.contains('F'), "entry without the F flag: {entry}");
    assert_eq!(
        r.read("foreign").trim(),
        "foreign program ran",
        "{}",
        r.context
    );
    assert_ready_and_ordered(&r);
    assert_eq!(
        super::common::host::snapshot(),
        host_entries,
        "booting the container changed the host's binfmt_misc entries"
    );
}
