//! Benchmark: what `binfmtd monitor` costs everything else on the node, measured beside the
//! same workload without it, in the same run.
//!
//! Prints, for the monitor off, on, and on without its ENOEXEC watch (interleaved rounds,
//! medians), with the ratio to off:
//! - exec throughput: fork + exec + wait of a native static program (binfmtd's own x86_64
//!   or aarch64 probe, a few instructions) in a loop (goal: < 2% slower);
//! - the cost of a syscall that is not an exec: getppid() in a loop (goal: < 5%); the
//!   ENOEXEC watch's syscall tracepoints put every thread on the slow syscall path.
//!
//! Run: `cargo bench --bench monitor` (as root: tracefs; see BENCHMARKS.md).

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Rounds and loop sizes: `cargo bench` passes `--bench`; under `cargo test` (which runs
/// every bench once) a single short round checks that the bench still works.
fn sizes() -> (usize, u32, u32) {
    if std::env::args().any(|a| a == "--bench") {
        (7, 3000, 20_000_000)
    } else {
        (1, 300, 1_000_000)
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the monitor needs tracefs: run as root"
    );
    let prog = probe_program();
    // Off, on, and on without the ENOEXEC watch (--no-exec-format-errors), interleaved so
    // a load change on the machine hits all three alike.
    let modes: [(&str, Option<&[&str]>); 3] = [
        ("off", None),
        ("on", Some(&[])),
        (
            "on, --no-exec-format-errors",
            Some(&["--no-exec-format-errors"]),
        ),
    ];
    let mut execs = vec![Vec::new(); modes.len()];
    let mut calls = vec![Vec::new(); modes.len()];
    let (rounds, execs_n, calls_n) = sizes();
    for _ in 0..rounds {
        for (i, (_, args)) in modes.iter().enumerate() {
            let mut monitor = args.map(start_monitor);
            execs[i].push(execs_per_second(&prog));
            calls[i].push(ns_per_getppid());
            if let Some(m) = monitor.as_mut() {
                stop(m);
            }
        }
    }
    let execs: Vec<f64> = execs.into_iter().map(median).collect();
    let calls: Vec<f64> = calls.into_iter().map(median).collect();
    println!("binfmtd monitor cost ({rounds} interleaved rounds, medians; ratios to off)");
    println!("| monitor | fork+exec+wait per s ({execs_n}/round) | ratio | getppid() ns ({calls_n}/round) | ratio |");
    println!("|---|---|---|---|---|");
    for (i, (name, _)) in modes.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.3} | {:.1} | {:.3} |",
            execs[i],
            execs[i] / execs[0],
            calls[i],
            calls[i] / calls[0]
        );
    }
}

/// binfmtd's native probe: a static program of a few instructions.
fn probe_program() -> CString {
    let bytes = binfmtd::probe::native_program(binfmtd::arch::host())
        .expect("binfmtd has a probe for its own arch");
    let path = std::env::temp_dir().join(format!("binfmtd-bench-probe-{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
}

fn execs_per_second(prog: &CString) -> f64 {
    let argv = [prog.as_ptr(), std::ptr::null()];
    let start = Instant::now();
    let n = sizes().1;
    for _ in 0..n {
        // SAFETY: the child only calls execv and _exit (async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                libc::dup2(null, 1);
                libc::execv(prog.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "the probe did not exit: {status}");
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

fn ns_per_getppid() -> f64 {
    let start = Instant::now();
    let n = sizes().2;
    for _ in 0..n {
        // The raw syscall: no libc may cache it.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn start_monitor(extra: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["monitor", "--json-events"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start binfmtd monitor");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Warnings may come first (no CRI socket on a machine without containerd).
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if line.contains("watching execs") {
            break;
        }
        assert!(n > 0, "monitor did not start: {seen}");
    }
    // Keep reading: a closed stderr would fail the monitor's next warning.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
