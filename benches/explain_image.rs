//! Benchmark: `binfmtd explain --image` on a real multi-layer OCI image, beside what an
//! operator would otherwise run to look inside it: `skopeo inspect` (the image's config)
//! plus `umoci unpack` (its filesystem), on the same image in the same run.
//!
//! The image is built once (cached under the target dir) with umoci from Debian packages,
//! one layer per package over a layer of merged-/usr symlinks: trixie's libc6, bookworm's libgcc-s1 and libstdc++6, trixie's
//! ninja-build, hello and qemu-user (40 static qemu programs of ~12 MB in /usr/bin: every
//! one is a program explain may need, so the per-file and total caps are in play).
//! Entrypoint: /usr/bin/ninja --version (dynamic, C++).
//!
//! For every command: wall time, peak RSS (`wait4` rusage), and bytes written through
//! write(2) (`wchar` of /proc/PID/io, read while the exited process is not yet reaped);
//! explain's stdout is subtracted, so its figure is what went to the scratch directory.
//!
//! Run: `cargo bench --bench explain_image` (as root, `FIXTURES` as for the tests).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const ROUNDS: usize = 5;
const LAYERS: [&str; 6] = [
    "trixie/amd64/libc6",
    "bookworm/amd64/libgcc-s1",
    "bookworm/amd64/libstdc++6",
    "trixie/amd64/ninja-build",
    "trixie/amd64/hello",
    "trixie/amd64/qemu-user",
];

/// One finished command.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    max_rss_kib: u64,
    written: u64,
}

fn sh(script: &str) {
    let st = Command::new("sh").arg("-euc").arg(script).status().unwrap();
    assert!(st.success(), "{script}");
}

fn q(p: &Path) -> String {
    common::sh_quote(p.to_str().unwrap())
}

/// The layout (tag `bench`), built unless an earlier run left it complete.
fn image(work: &Path) -> PathBuf {
    let layout = work.join("layout");
    let recipe = LAYERS.join("\n");
    if fs::read_to_string(work.join("built")).is_ok_and(|r| r == recipe) {
        return layout;
    }
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).unwrap();
    fs::write(work.join("recipe"), &recipe).unwrap();
    // First layer: the merged-/usr symlinks Debian's base-files and usrmerge provide.
    let mut s = format!(
        "cd {}\numoci init --layout layout\numoci new --image layout:bench\n\
         umoci unpack --image layout:bench b >/dev/null\n\
         for d in bin sbin lib lib64; do mkdir -p b/rootfs/usr/$d; ln -s usr/$d b/rootfs/$d; done\n\
         umoci repack --image layout:bench b\n",
        q(work)
    );
    for pkg in LAYERS {
        let tree = common::fixtures::dir().join(pkg);
        assert!(
            tree.is_dir(),
            "{} is missing: run tests/fixtures/fetch.sh",
            tree.display()
        );
        s += &format!(
            "rm -rf b; umoci unpack --image layout:bench b >/dev/null\n\
             tar -C {} -cf - . | tar -C b/rootfs -xf -\n\
             umoci repack --image layout:bench b\n",
            q(&tree)
        );
    }
    s += "rm -rf b\n\
          umoci config --image layout:bench --architecture amd64 --os linux \
            --config.entrypoint /usr/bin/ninja --config.cmd --version\n\
          umoci gc --layout layout\nmv recipe built\n";
    sh(&s);
    layout
}

/// Run `cmd` (stdout to `out`), measuring it.
// Reaped by wait4 below (for its rusage), not through `Child::wait`.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command, out: &Path) -> Sample {
    let start = Instant::now();
    let child = cmd
        .stdout(fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Wait for the exit without reaping, so /proc/PID/io still holds the final counts.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as _,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid");
    let secs = start.elapsed().as_secs_f64();
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let wchar: u64 = io
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid, "wait4");
    assert!(libc::WIFEXITED(status), "{cmd:?} died: {status}");
    let code = libc::WEXITSTATUS(status);
    assert!(code <= 1, "{cmd:?} exited {code}");
    let printed = fs::metadata(out).unwrap().len();
    Sample {
        secs,
        max_rss_kib: ru.ru_maxrss as u64,
        written: wchar.saturating_sub(printed),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: &'static str,
    samples: Vec<Sample>,
}

impl Row {
    fn secs(&self) -> f64 {
        median(self.samples.iter().map(|s| s.secs).collect())
    }
    fn rss_mib(&self) -> f64 {
        self.samples.iter().map(|s| s.max_rss_kib).max().unwrap() as f64 / 1024.0
    }
    fn written_mib(&self) -> f64 {
        self.samples.iter().map(|s| s.written).max().unwrap() as f64 / 1048576.0
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --all-targets` runs benches as tests; only `cargo bench` measures.
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-explain-image");
    let layout = image(&work);
    let bin = env!("CARGO_BIN_EXE_binfmtd");
    let scratch = work.join("scratch");
    let bundle = work.join("bundle");
    let out = work.join("out");
    let verdict = work.join("explain.json");
    let nowhere = work.join("nowhere");
    fs::create_dir_all(&nowhere).unwrap();
    let mut explain = Row {
        name: "binfmtd explain --image",
        samples: vec![],
    };
    let mut inspect = Row {
        name: "skopeo inspect",
        samples: vec![],
    };
    let mut unpack = Row {
        name: "umoci unpack",
        samples: vec![],
    };
    for _ in 0..ROUNDS {
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch).unwrap();
        explain.samples.push(measure(
            Command::new(bin)
                .args(["explain", "--json", "--native", "x86_64", "--binfmt-misc"])
                .arg(&nowhere)
                .arg("--cache-dir")
                .arg(&nowhere)
                .arg("--image")
                .arg(&layout)
                .env("TMPDIR", &scratch),
            &verdict,
        ));
        inspect.samples.push(measure(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:bench", layout.display())),
            &out,
        ));
        let _ = fs::remove_dir_all(&bundle);
        unpack.samples.push(measure(
            Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:bench", layout.display()))
                .arg(&bundle),
            &out,
        ));
    }
    let _ = fs::remove_dir_all(&bundle);
    report(&layout, &[&explain, &inspect, &unpack]);
    let j: serde_json::Value = serde_json::from_slice(&fs::read(&verdict).unwrap()).unwrap();
    let limited = j["image"]["limited"].as_array().unwrap();
    let read = |how: &str| limited.iter().filter(|l| l["read"] == how).count();
    println!(
        "explain's verdict on {}: {}; files read in part: {}, not read: {}",
        j["files"][0]["path"],
        j["files"][0]["verdict"]["summary"],
        read("ranges"),
        read("nothing")
    );
}

fn report(layout: &Path, rows: &[&Row]) {
    let blobs: u64 = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "image: {} layers (merged-/usr symlinks, then one per Debian package), {:.1} MiB of blobs (gzip), {ROUNDS} rounds, median time, max RSS and bytes written of any round",
        LAYERS.len() + 1,
        blobs as f64 / 1048576.0
    );
    for r in rows {
        println!(
            "  {:<26} {:>8.3} s   peak RSS {:>7.1} MiB   written {:>8.1} MiB",
            r.name,
            r.secs(),
            r.rss_mib(),
            r.written_mib()
        );
    }
    let (e, i, u) = (rows[0], rows[1], rows[2]);
    println!(
        "ratio explain / (skopeo inspect + umoci unpack): time {:.2}x, peak RSS {:.2}x (vs the larger of the two), written {:.3}x",
        e.secs() / (i.secs() + u.secs()),
        e.rss_mib() / i.rss_mib().max(u.rss_mib()),
        e.written_mib() / (i.written_mib() + u.written_mib())
    );
}
