//! Downloads against a real HTTPS server on loopback (test CA made at test time), serving
//! real static qemu binaries: success, mirror fallback, reset and retry, stall, and every
//! refusal. After each failure the cache holds nothing at a final path.

mod support;

use std::time::{Duration, Instant};

use binfmtd::cache::Cache;
use binfmtd::config::{Config, Origin};
use binfmtd::fetch::AttemptError;
use binfmtd::supply::{core_check, ProvisionedInterpreter, Supplier, SupplyError};
use support::server::{Behavior, Server};
use support::*;

const QEMU_RISCV: &str = "/usr/bin/qemu-riscv64-static";

fn run(
    cfg: &Config,
    dir: &std::path::Path,
    arch: &str,
) -> Result<ProvisionedInterpreter, SupplyError> {
    let cache = Cache::open(dir).unwrap();
    let s = Supplier::new(cfg, &cache, binfmtd::arch::host(), &core_check);
    let arch = binfmtd::arch::lookup(arch).unwrap();
    s.provision(&[arch]).pop().unwrap().1
}

fn attempts(e: &SupplyError) -> Vec<AttemptError> {
    match e {
        SupplyError::Fetch { error, .. } => error.attempts.iter().map(|(_, a)| a.clone()).collect(),
        other => panic!("expected a download failure, got: {other}"),
    }
}

fn raw_config(server: &Server, urls: Vec<String>, bytes: &[u8]) -> Config {
    config(
        server,
        vec![source("raw", "riscv64", Origin::Raw(remote(urls, bytes)))],
    )
}

#[test]
fn raw_binary_is_downloaded_verified_and_committed() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route("/qemu-riscv64", vec![Behavior::Serve(qemu.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/qemu-riscv64")], &qemu);
    let p = run(&cfg, dir.path(), "riscv64").expect("provisioned");
    assert_eq!(p.sha256, sha256(&qemu));
    assert_eq!(p.path, dir.path().join("sha256").join(&p.sha256));
    assert_eq!(std::fs::read(&p.path).unwrap(), *qemu);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p.path).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // The version comes from running the committed binary itself.
    let banner = std::process::Command::new(&p.path)
        .arg("--version")
        .output()
        .unwrap();
    let want = binfmtd::supply::parse_qemu_version(&String::from_utf8_lossy(&banner.stdout));
    assert!(want.is_some());
    assert_eq!(p.version, want);
    assert_eq!(assert_cache_consistent(dir.path()), vec![p.sha256.clone()]);
    // A second run reuses the object without downloading again.
    let again = run(&cfg, dir.path(), "riscv64").unwrap();
    assert_eq!(again, p);
    assert_eq!(server.hits_for("/qemu-riscv64"), 1);
}

#[test]
fn first_mirror_404_then_second_mirror_works() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route("/gone", vec![Behavior::Status(404)]);
    server.route("/mirror2", vec![Behavior::Serve(qemu.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(
        &server,
        vec![server.url("/gone"), server.url("/mirror2")],
        &qemu,
    );
    let p = run(&cfg, dir.path(), "riscv64").expect("second mirror");
    assert_eq!(p.sha256, sha256(&qemu));
    assert_eq!(
        *server.hits.lock().unwrap(),
        vec!["/gone".to_string(), "/mirror2".to_string()]
    );
}

#[test]
fn server_error_moves_to_the_next_mirror() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route("/busy", vec![Behavior::Status(503)]);
    server.route("/ok", vec![Behavior::Serve(qemu.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/busy"), server.url("/ok")], &qemu);
    run(&cfg, dir.path(), "riscv64").expect("second mirror after 503");
    assert_eq!(server.hits_for("/busy"), 1);
}

#[test]
fn reset_mid_body_is_retried_and_succeeds() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route(
        "/q",
        vec![
            Behavior::ResetAfter(qemu.clone(), 3 << 20),
            Behavior::Serve(qemu.clone()),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/q")], &qemu);
    let p = run(&cfg, dir.path(), "riscv64").expect("retry after reset");
    assert_eq!(
        std::fs::read(&p.path).unwrap(),
        *qemu,
        "the retry must start the file and hash over"
    );
    assert_eq!(server.hits_for("/q"), 2);
}

#[test]
fn stalled_server_hits_the_read_timeout() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route(
        "/stall",
        vec![Behavior::StallAfter(
            qemu.clone(),
            1 << 20,
            Duration::from_secs(20),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = raw_config(&server, vec![server.url("/stall")], &qemu);
    cfg.download.read_timeout = Duration::from_millis(700);
    cfg.download.retries = 1;
    let started = Instant::now();
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(attempts(&err)[..], [AttemptError::Timeout(_)]),
        "{err}"
    );
    assert!(
        err.to_string().contains(&server.url("/stall")),
        "the error names the URL: {err}"
    );
    assert_eq!(server.hits_for("/stall"), 2, "one retry round");
    assert_cache_empty(dir.path());
}

#[test]
fn hash_mismatch_is_refused() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    let other = real("/usr/bin/qemu-s390x-static");
    server.route("/q", vec![Behavior::Serve(other)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/q")], &qemu);
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        matches!(&attempts(&err)[..], [AttemptError::HashMismatch { want, .. }] if *want == sha256(&qemu)),
        "{err}"
    );
    assert_eq!(
        server.hits_for("/q"),
        1,
        "a wrong hash is not retried: the bytes are not transient"
    );
    assert_cache_empty(dir.path());
}

#[test]
fn oversized_body_is_refused_with_and_without_content_length() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route("/sized", vec![Behavior::Serve(qemu.clone())]);
    server.route("/unsized", vec![Behavior::ServeUntilClose(qemu.clone())]);
    for path in ["/sized", "/unsized"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = raw_config(&server, vec![server.url(path)], &qemu);
        cfg.download.max_bytes = 4 << 20;
        let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
        assert!(
            matches!(attempts(&err)[..], [AttemptError::TooLarge { limit }] if limit == 4 << 20),
            "{path}: {err}"
        );
        assert_cache_empty(dir.path());
    }
}

#[test]
fn http_is_refused_unless_allowed_and_no_request_is_made() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/q", server.port);
    let cfg = raw_config(&server, vec![url], &qemu);
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        matches!(&attempts(&err)[..], [AttemptError::Refused(m)] if m.contains("allow-http")),
        "{err}"
    );
    assert!(server.hits.lock().unwrap().is_empty());
    assert_cache_empty(dir.path());
}

#[test]
fn redirect_from_https_to_http_is_refused() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route(
        "/r",
        vec![Behavior::Redirect(format!(
            "http://127.0.0.1:{}/q",
            server.port
        ))],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/r")], &qemu);
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        matches!(&attempts(&err)[..], [AttemptError::Refused(_)]),
        "{err}"
    );
    assert_cache_empty(dir.path());
}

#[test]
fn server_outside_the_trusted_cas_is_refused() {
    let server = Server::start();
    let qemu = real(QEMU_RISCV);
    server.route("/q", vec![Behavior::Serve(qemu.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = raw_config(&server, vec![server.url("/q")], &qemu);
    cfg.download.extra_ca_bundle = None;
    cfg.download.retries = 0;
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_cache_empty(dir.path());
}

#[test]
fn wrong_cpu_binary_is_refused() {
    let server = Server::start();
    let foreign = real(fixture("bookworm/arm64/busybox-static/bin/busybox"));
    server.route("/q", vec![Behavior::Serve(foreign.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/q")], &foreign);
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(matches!(err, SupplyError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("aarch64"),
        "names the CPU found: {err}"
    );
    assert_cache_empty(dir.path());
}

#[test]
fn dynamic_binary_is_refused() {
    let server = Server::start();
    let ls = real("/bin/ls");
    server.route("/q", vec![Behavior::Serve(ls.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = raw_config(&server, vec![server.url("/q")], &ls);
    let err = run(&cfg, dir.path(), "riscv64").unwrap_err();
    assert!(
        matches!(err, SupplyError::Refused { .. })
            && err.to_string().contains("dynamically linked"),
        "{err}"
    );
    assert_cache_empty(dir.path());
}

#[test]
fn one_arch_failing_does_not_stop_another() {
    let server = Server::start();
    let riscv = real(QEMU_RISCV);
    let s390x = real("/usr/bin/qemu-s390x-static");
    server.route("/riscv", vec![Behavior::Serve(riscv.clone())]);
    server.route("/s390x", vec![Behavior::Status(404)]);
    let cfg = config(
        &server,
        vec![
            source(
                "r",
                "riscv64",
                Origin::Raw(remote(vec![server.url("/riscv")], &riscv)),
            ),
            source(
                "s",
                "s390x",
                Origin::Raw(remote(vec![server.url("/s390x")], &s390x)),
            ),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let s = Supplier::new(&cfg, &cache, binfmtd::arch::host(), &core_check);
    let arches = binfmtd::arch::lookup_list("s390x,riscv64").unwrap();
    let results = s.provision(&arches);
    assert_eq!(results[0].0.qemu, "s390x");
    assert!(matches!(&results[0].1, Err(e) if e.to_string().contains("HTTP 404")));
    assert_eq!(results[1].1.as_ref().unwrap().sha256, sha256(&riscv));
}
