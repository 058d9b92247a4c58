//! `binfmtd run --listen` under hostile clients, against the BUILT binary in the sandbox:
//! neither a client that drips its request one byte at a time beside forty idle connections
//! nor more connections than the cap may keep /healthz from answering, and running out of
//! file descriptors must not make the accept loop spin.
//!
//! | file         | what it holds                                                        |
//! |--------------|----------------------------------------------------------------------|
//! | `agent`      | the agent in a sandbox, its host pid, CPU time and open-files limit  |
//! | `clients`    | the kubelet's probe, the dripping client, idle connections           |

#[path = "hardening_http/agent.rs"]
mod agent;
#[path = "hardening_http/clients.rs"]
mod clients;
mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use agent::Agent;
use clients::{dripper, idlers, probe, PROBE_TIMEOUT};

/// Issue 15, defect 3 (acceptance, verbatim): with a dripping client (one byte every 1.5 s)
/// and 40 idle connections open on loopback, /healthz answers >= 19 of 20 probes within 2 s
/// each. The dripper's connection is cut at the per-request deadline, not kept forever.
#[test]
fn healthz_answers_while_a_slow_client_and_40_idle_connections_are_open() {
    let Some(agent) = Agent::start("slow") else {
        return;
    };
    let addr = agent.addr;
    probe(addr).expect("/healthz answers before the attack");
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let drip = dripper(addr, stop.clone());
    // The dripper first: a server that serves one connection at a time picks it up first.
    thread::sleep(Duration::from_millis(300));
    let idle = idlers(addr, 40, stop.clone(), open.clone());
    thread::sleep(Duration::from_secs(1));
    let mut results = Vec::new();
    let mut open_seen = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        open_seen.push(open.load(Ordering::Relaxed));
        results.push(probe(addr));
        thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    let lasted = drip.join().unwrap();
    for t in idle {
        t.join().unwrap();
    }
    let (run, _) = agent.stop();
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let report = format!("probes: {results:#?}\nidle connections open at each probe: {open_seen:?}\ndripper connections lasted: {lasted:?}\n{run}");
    // The attack was on: the idle connections were open while the probes ran.
    assert!(open_seen.iter().all(|&n| n >= 35), "{report}");
    assert!(
        answered >= 19,
        "/healthz answered {answered} of 20 probes within {PROBE_TIMEOUT:?}: {report}"
    );
    // One byte every 1.5 s: a per-read timeout never fires, a per-request deadline does.
    assert!(
        !lasted.is_empty(),
        "the dripper's connection was never closed in 20 s: {report}"
    );
    assert!(lasted[0] < Duration::from_secs(10), "{report}");
}

/// The connection cap (64, README "Health and metrics"): beyond it the oldest connection is
/// closed to make room, at once rather than at its deadline, so whoever holds connections
/// open pushes out their own and /healthz still answers.
#[test]
fn beyond_the_connection_cap_the_oldest_connections_are_closed() {
    const CAP: usize = 64;
    let Some(agent) = Agent::start("cap") else {
        return;
    };
    let addr = agent.addr;
    let held: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    thread::sleep(Duration::from_secs(1));
    let closed: Vec<usize> = (0..held.len())
        .filter(|&i| {
            held[i].set_nonblocking(true).unwrap();
            // EOF (or a reset): the server closed it; WouldBlock: still open.
            !matches!((&held[i]).read(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .collect();
    let probes: Vec<_> = (0..10).map(|_| probe(addr)).collect();
    drop(held);
    let (run, _) = agent.stop();
    assert_eq!(
        closed,
        (0..150 - CAP).collect::<Vec<_>>(),
        "the oldest 86 of 150 are closed within 1 s: {run}"
    );
    assert!(probes.iter().all(|p| p.is_ok()), "{probes:?}: {run}");
}

/// Issue 15, suspected: "the accept loop may spin at 100% CPU on EMFILE". The agent is left
/// without a free file descriptor (its RLIMIT_NOFILE lowered to what it has open) while
/// connections wait to be accepted: over 5 s it uses little CPU and logs the condition once;
/// with a few descriptors back and those clients gone, /healthz answers again at once.
#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    const WINDOW: Duration = Duration::from_secs(5);
    let Some(agent) = Agent::start("emfile") else {
        return;
    };
    let addr = agent.addr;
    probe(addr).expect("/healthz answers before the descriptors run out");
    let low = agent.lowest_free_fd();
    agent.exhaust_fds();
    let waiting: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(addr).unwrap()).collect();
    thread::sleep(Duration::from_millis(200));
    let c0 = agent.cpu_seconds();
    thread::sleep(WINDOW);
    let cpu = agent.cpu_seconds() - c0;
    drop(waiting);
    agent.limit_fds(low + 4);
    let after: Vec<_> = (0..5).map(|_| probe(addr)).collect();
    let (run, s) = agent.stop();
    // A spinning loop burns the whole window, or its fair share of a busy machine (0.4 s of
    // 3 s at a load of 10 on 2 cores); backing off costs next to nothing. Bound: 5% of a core.
    assert!(
        cpu < WINDOW.as_secs_f64() * 0.05,
        "{cpu:.2} s of CPU in {WINDOW:?} without file descriptors: {run}"
    );
    assert!(after.iter().all(|r| r.is_ok()), "after: {after:?}: {run}");
    let logged = s["log"]
        .lines()
        .filter(|l| l.contains("--listen") && l.contains("out of file descriptors"))
        .count();
    assert_eq!(logged, 1, "the condition is logged once: {run}");
}
