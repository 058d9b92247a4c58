//! A server that keeps a download alive by dripping bytes never trips a per-read timeout;
//! the minimum rate, the per-attempt deadline and the whole download's deadline must end
//! it, so `install` (and the boot that waits for it) cannot hang on one mirror.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use binfmtd::config::DownloadOptions;
use binfmtd::fetch::{download, AttemptError, FetchError, HttpTransport};
use support::server::{Behavior, Server};
use support::*;

/// Download `bytes` (pinned) from `urls` with `opts`; the result and how long it took.
fn fetch(
    urls: Vec<String>,
    bytes: &[u8],
    opts: &DownloadOptions,
) -> (Result<(), FetchError>, Duration) {
    let t = HttpTransport::new(opts, false).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let r = download(&t, &remote(urls, bytes), opts, &mut file, "drip").map(|_| ());
    (r, started.elapsed())
}

fn timeouts(e: &FetchError) -> Vec<String> {
    let mut out = Vec::new();
    for (url, a) in &e.attempts {
        match a {
            AttemptError::Timeout(why) => out.push(why.clone()),
            other => panic!("{url}: expected a timeout, got {other}"),
        }
    }
    out
}

/// One byte every 1.5 s: each read arrives well within the read timeout.
fn drip(server: &Server, path: &str, bytes: &Arc<Vec<u8>>) {
    let b = Behavior::Throttled(bytes.clone(), 1, Duration::from_millis(1500));
    server.route(path, vec![b]);
}

#[test]
fn a_server_dripping_a_byte_every_1_5_s_is_cut_by_the_minimum_rate() {
    let server = Server::start();
    let bytes = Arc::new(vec![7u8; 40]);
    drip(&server, "/drip", &bytes);
    let mut opts = opts(&server);
    opts.read_timeout = Duration::from_secs(3);
    opts.retries = 0;
    // The defaults otherwise: a 40-byte drip would take a minute and then succeed.
    let (r, took) = fetch(vec![server.url("/drip")], &bytes, &opts);
    let err = r.expect_err("a drip must not succeed");
    assert!(took < Duration::from_secs(15), "held for {took:?}");
    let why = timeouts(&err);
    assert!(why[0].contains("bytes/s"), "{why:?}");
    assert!(why[0].contains("min-bytes-per-sec"), "{why:?}");
}

#[test]
fn an_attempt_ends_at_its_deadline_whatever_the_rate() {
    let server = Server::start();
    let bytes = Arc::new(vec![7u8; 64 << 10]);
    // 4 KiB every 200 ms: 20 KiB/s passes any sane minimum rate, but takes 3.2 s.
    let b = Behavior::Throttled(bytes.clone(), 4 << 10, Duration::from_millis(200));
    server.route("/slow", vec![b]);
    let mut opts = opts(&server);
    opts.attempt_timeout = Duration::from_secs(1);
    opts.retries = 0;
    let (r, took) = fetch(vec![server.url("/slow")], &bytes, &opts);
    let err = r.expect_err("the attempt outlived its deadline");
    assert!(took < Duration::from_millis(2500), "held for {took:?}");
    let why = timeouts(&err);
    assert!(why[0].contains("attempt-timeout-secs"), "{why:?}");
}

#[test]
fn the_whole_download_ends_at_its_deadline_across_mirrors_and_rounds() {
    let server = Server::start();
    let bytes = Arc::new(vec![7u8; 40]);
    drip(&server, "/a", &bytes);
    drip(&server, "/b", &bytes);
    let mut opts = opts(&server);
    opts.read_timeout = Duration::from_secs(3);
    opts.min_rate = 0; // only the deadlines stop it
    opts.attempt_timeout = Duration::from_secs(2);
    opts.total_timeout = Duration::from_secs(3);
    opts.retries = 5;
    let urls = vec![server.url("/a"), server.url("/b")];
    let (r, took) = fetch(urls, &bytes, &opts);
    let err = r.expect_err("the download outlived its deadline");
    assert!(took < Duration::from_millis(4500), "held for {took:?}");
    let why = timeouts(&err).join("; ");
    assert!(why.contains("total-timeout-secs"), "{why}");
}

#[test]
fn a_steady_download_is_not_cut() {
    let server = Server::start();
    let bytes = Arc::new(vec![7u8; 64 << 10]);
    let b = Behavior::Throttled(bytes.clone(), 16 << 10, Duration::from_millis(100));
    server.route("/ok", vec![b]);
    let mut opts = opts(&server);
    opts.read_timeout = Duration::from_millis(300);
    opts.min_rate = 32 << 10;
    let (r, _) = fetch(vec![server.url("/ok")], &bytes, &opts);
    r.unwrap();
}
