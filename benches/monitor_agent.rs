//! Benchmark: what `binfmtd run --exec-monitor` costs the agent, beside the same agent
//! without it in the same run.
//!
//! - CPU at 200 execs/s on the node: the agent's CPU time (all its threads, from
//!   /proc/PID/task/*/schedstat, ns) while a paced load execs a native static program 200
//!   times a second, as a share of one core; the agent without --exec-monitor under the same
//!   load is the anchor. A second load execs a file with an s390x ELF header (no entry for it:
//!   ENOEXEC), the heaviest event for the monitor (it reads the caller's memory, the file's
//!   header and its cgroup). Goal: < 1% of a core.
//! - RSS growth with 10,000 distinct programs seen: the agent's VmRSS before and after
//!   10,000 execs of distinct file names (ENOEXEC, each its own path), beside the same for the
//!   agent without the monitor; and the status tables (`monitor::tally`) plus the Event rate
//!   limiter fed 10,000 and 100,000 distinct emulated programs in this process, their exact
//!   heap bytes (a counting allocator) beside a plain list of the same paths (what an
//!   unbounded table would keep).
//!
//! Run: `cargo bench --bench monitor_agent` (as root: tracefs; see BENCHMARKS.md). Under
//! `cargo test` one short round checks that the bench still works.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use binfmtd::monitor::ratelimit::{Key, RateLimit};
use binfmtd::monitor::tally::Tally;
use binfmtd::monitor::{Event, Kind};

struct Sizes {
    rounds: usize,
    load_secs: u64,
    distinct: usize,
}

fn sizes() -> Sizes {
    if std::env::args().any(|a| a == "--bench") {
        Sizes {
            rounds: 3,
            load_secs: 10,
            distinct: 10_000,
        }
    } else {
        Sizes {
            rounds: 1,
            load_secs: 1,
            distinct: 300,
        }
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the exec monitor needs tracefs: run as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let native = write_exe(
        dir.path(),
        "native",
        &binfmtd::probe::native_program(binfmtd::arch::host()).unwrap(),
    );
    let mut foreign = binfmtd::arch::lookup("s390x").unwrap().magic.to_vec();
    foreign.resize(128, 0);
    let wrong = write_exe(dir.path(), "wrong-arch", &foreign);
    let s = sizes();

    // (agent mode, load) pairs, interleaved per round.
    let modes: [(&str, bool, &Path); 4] = [
        ("agent, native execs", false, &native),
        ("agent --exec-monitor, native execs", true, &native),
        ("agent, exec-format errors", false, &wrong),
        ("agent --exec-monitor, exec-format errors", true, &wrong),
    ];
    let mut cpu = vec![Vec::new(); modes.len()];
    for _ in 0..s.rounds {
        for (i, (_, monitor, prog)) in modes.iter().enumerate() {
            let agent = Agent::start(dir.path(), *monitor);
            let before = agent.cpu_ns();
            let start = Instant::now();
            paced_execs(prog, 200, Duration::from_secs(s.load_secs));
            let share = (agent.cpu_ns() - before) as f64 / start.elapsed().as_nanos() as f64;
            cpu[i].push(share * 100.0);
            agent.stop();
        }
    }
    println!(
        "agent CPU at 200 execs/s ({} rounds of {} s, medians; % of one core)",
        s.rounds, s.load_secs
    );
    println!("| agent | load | CPU % of a core | vs. the agent without the monitor |");
    println!("|---|---|---|---|");
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let anchor = median(cpu[i - i % 2].clone());
        let (agent, load) = name.split_once(", ").unwrap();
        let m = median(cpu[i].clone());
        println!("| {agent} | {load} | {m:.3} | +{:.3} points |", m - anchor);
    }

    // RSS: the real agent seeing `distinct` different program paths.
    println!(
        "\nRSS growth, {} distinct programs (exec-format errors, each its own path)",
        s.distinct
    );
    println!("| agent | RSS before (KiB) | after (KiB) | growth (KiB) |");
    println!("|---|---|---|---|");
    let names = links(dir.path(), &wrong, s.distinct);
    for monitor in [false, true] {
        let agent = Agent::start(dir.path(), monitor);
        // Settle first: the first events allocate the tables and buffers once.
        exec_all(&names[..10.min(names.len())]);
        std::thread::sleep(Duration::from_millis(300));
        let before = agent.rss_kib();
        exec_all(&names);
        std::thread::sleep(Duration::from_millis(500));
        let after = agent.rss_kib();
        let name = if monitor {
            "--exec-monitor"
        } else {
            "without the monitor"
        };
        println!(
            "| {name} | {before} | {after} | {} |",
            after as i64 - before as i64
        );
        agent.stop();
    }
    tables(s.distinct);
}

/// Heap bytes live in this process, counted by the allocator below (exact, unlike RSS).
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The status tables and the Event rate limiter fed `n` and then 10 x `n` distinct emulated
/// programs (in 200 containers), in this process: their heap bytes beside a plain list of
/// the same paths (what an unbounded table would keep).
fn tables(n: usize) {
    println!("\nIn-process heap, distinct emulated programs in 200 containers (exact bytes live):");
    println!("| programs seen | anchor: a list of the paths (KiB) | status tables + Event rate limiter (KiB) | rows kept |");
    println!("|---|---|---|---|");
    for n in [n, 10 * n] {
        let paths: Vec<String> = (0..n)
            .map(|i| format!("/usr/local/lib/app/bin/program-{i:06}"))
            .collect();
        let before = LIVE.load(Ordering::Relaxed);
        let list: Vec<String> = paths.clone();
        let list_bytes = LIVE.load(Ordering::Relaxed) - before;
        let before = LIVE.load(Ordering::Relaxed);
        let mut tally = Tally::new(Path::new("/proc/sys/fs/binfmt_misc"), vec!["x86_64"]);
        let mut limit = RateLimit::new(Duration::from_secs(600), 4096);
        for (i, p) in paths.iter().enumerate() {
            let e = Event {
                kind: Kind::Emulated,
                arch: Some("aarch64"),
                path: Some(p.clone()),
                pid: i as i32,
                pod_uid: Some(format!("pod-{}", i * 200 / n)),
                pod_namespace: None,
                pod_name: None,
                container_id: Some(format!("{:064x}", i * 200 / n)),
                unit: None,
            };
            tally.record(&e, i as u64);
            // One exec a millisecond: the 10-minute window never frees a key here.
            limit.allow(Key::of(&e), Duration::from_millis(i as u64));
        }
        let tables_bytes = LIVE.load(Ordering::Relaxed) - before;
        let kept: usize = tally
            .view()
            .containers
            .iter()
            .map(|c| c.programs.len())
            .sum();
        println!(
            "| {n} | {} | {} | {} containers, {kept} programs, {} limiter keys |",
            list_bytes / 1024,
            tables_bytes / 1024,
            tally.view().containers.len(),
            limit.len()
        );
        std::hint::black_box((list, tally, limit));
    }
}

fn write_exe(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// `n` hard links of `file`, each a distinct path.
fn links(dir: &Path, file: &Path, n: usize) -> Vec<PathBuf> {
    let d = dir.join("distinct");
    std::fs::create_dir_all(&d).unwrap();
    (0..n)
        .map(|i| {
            let p = d.join(format!("tool-{i:05}"));
            let _ = std::fs::hard_link(file, &p);
            p
        })
        .collect()
}

/// Exec `prog` `rate` times a second for `dur` (fork + exec + wait, the next one on schedule).
fn paced_execs(prog: &Path, rate: u32, dur: Duration) {
    let every = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < dur {
        spawn_wait(prog);
        next += every;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn exec_all(progs: &[PathBuf]) {
    for p in progs {
        spawn_wait(p);
    }
}

/// One exec; an ENOEXEC is what the wrong-arch file is for.
fn spawn_wait(prog: &Path) {
    match Command::new(prog).stdout(Stdio::null()).status() {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {}
        Err(e) => panic!("{}: {e}", prog.display()),
    }
}

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// `binfmtd run` keeping no foreign arch (it registers nothing) in a mount namespace of
    /// its own; with `monitor`, --exec-monitor. Returns once it has written its status file
    /// (and, with the monitor, is watching).
    fn start(_scratch: &Path, monitor: bool) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let status = dir.path().join("status.json");
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private"])
            .arg(env!("CARGO_BIN_EXE_binfmtd"))
            .args(["run", "--skip-native", "--arch", std::env::consts::ARCH])
            .arg("--status-file")
            .arg(&status)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if monitor {
            cmd.arg("--exec-monitor");
        }
        let child = cmd.spawn().expect("start binfmtd run");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let m = &v["daemon"]["exec_monitor"]["state"];
            if v["daemon"].is_object() && (!monitor || m == "watching") {
                break;
            }
            assert!(
                m.as_str().is_none_or(|s| !s.starts_with("unavailable")),
                "{m}"
            );
            assert!(Instant::now() < deadline, "agent not up: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Agent { child, _dir: dir }
    }

    fn cpu_ns(&self) -> u64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(tasks)
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
