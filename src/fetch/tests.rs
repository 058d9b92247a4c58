use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, Instant};

use super::*;

type Answers = Vec<Result<&'static [u8], AttemptError>>;

/// A scripted transport: each URL answers from its queue (the last answer repeats).
struct Script {
    answers: Vec<(&'static str, Answers)>,
    calls: RefCell<Vec<String>>,
}

impl Transport for Script {
    fn get(
        &self,
        url: &str,
        sink: &mut dyn Write,
        limit: u64,
        _: &mut Progress,
        _: Deadline,
    ) -> Result<u64, AttemptError> {
        let n = self.calls.borrow().iter().filter(|u| *u == url).count();
        self.calls.borrow_mut().push(url.to_string());
        let (_, list) = self
            .answers
            .iter()
            .find(|(u, _)| *u == url)
            .expect("scripted URL");
        let body = list[n.min(list.len() - 1)].clone()?;
        if body.len() as u64 > limit {
            return Err(AttemptError::TooLarge { limit });
        }
        sink.write_all(body).unwrap();
        Ok(body.len() as u64)
    }
}

fn remote(urls: &[&str], body: &[u8]) -> Remote {
    use sha2::Digest;
    Remote {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        sha256: hex(&sha2::Sha256::digest(body)),
        size: None,
        allow_http: false,
        allow_file: false,
    }
}

fn quick() -> DownloadOptions {
    DownloadOptions {
        backoff: Duration::from_millis(1),
        retries: 2,
        ..DownloadOptions::default()
    }
}

fn run(script: &Script, r: &Remote) -> (Result<Downloaded, FetchError>, Vec<String>) {
    let mut f = tempfile::tempfile().unwrap();
    let out = download(script, r, &quick(), &mut f, "t");
    (out, script.calls.borrow().clone())
}

#[test]
fn backoff_doubles_is_capped_and_jittered() {
    let b = Duration::from_millis(500);
    assert_eq!(backoff(b, 1, 1.0), Duration::from_millis(500));
    assert_eq!(backoff(b, 3, 1.0), Duration::from_millis(2000));
    assert_eq!(backoff(b, 3, 0.5), Duration::from_millis(1000));
    assert_eq!(backoff(b, 30, 1.0), Duration::from_secs(30));
    assert_eq!(backoff(b, 1, 7.0), b, "jitter is clamped to [0.5, 1]");
}

#[test]
fn schemes_follow_the_source_flags() {
    let mut r = remote(&[], b"");
    assert!(check_scheme("https://a/b", &r).is_ok());
    assert!(
        matches!(check_scheme("http://a/b", &r), Err(AttemptError::Refused(m)) if m.contains("allow-http"))
    );
    assert!(
        matches!(check_scheme("file:///a", &r), Err(AttemptError::Refused(m)) if m.contains("allow-file"))
    );
    assert!(check_scheme("ftp://a/b", &r).is_err());
    r.allow_http = true;
    r.allow_file = true;
    assert!(check_scheme("HTTP://a/b", &r).is_ok() && check_scheme("file:///a", &r).is_ok());
}

#[test]
fn transient_failures_get_more_rounds_permanent_ones_do_not() {
    let script = Script {
        answers: vec![(
            "https://a",
            vec![Err(AttemptError::Status(503)), Ok(b"body")],
        )],
        calls: RefCell::default(),
    };
    let (out, calls) = run(&script, &remote(&["https://a"], b"body"));
    assert_eq!(out.unwrap().size, 4);
    assert_eq!(calls.len(), 2);

    let script = Script {
        answers: vec![("https://a", vec![Err(AttemptError::Status(404))])],
        calls: RefCell::default(),
    };
    let (out, calls) = run(&script, &remote(&["https://a"], b"body"));
    assert_eq!(
        out.unwrap_err().attempts,
        vec![("https://a".to_string(), AttemptError::Status(404))]
    );
    assert_eq!(calls.len(), 1, "404 is not retried");
}

#[test]
fn wrong_bytes_move_to_the_next_mirror_and_the_file_restarts() {
    let script = Script {
        answers: vec![
            ("https://bad", vec![Ok(b"evil and longer")]),
            ("https://good", vec![Ok(b"body")]),
        ],
        calls: RefCell::default(),
    };
    let mut f = tempfile::tempfile().unwrap();
    let d = download(
        &script,
        &remote(&["https://bad", "https://good"], b"body"),
        &quick(),
        &mut f,
        "t",
    )
    .unwrap();
    assert_eq!(d.url, "https://good");
    assert_eq!(
        std::fs::read(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))
        .unwrap(),
        b"body"
    );
}

#[test]
fn local_write_failure_stops_at_once() {
    let script = Script {
        answers: vec![(
            "https://a",
            vec![Err(AttemptError::Local("disk full".into()))],
        )],
        calls: RefCell::default(),
    };
    let (out, calls) = run(&script, &remote(&["https://a", "https://b"], b"x"));
    assert!(out.is_err());
    assert_eq!(calls, ["https://a"], "no mirror can fix a full disk");
}

#[test]
fn an_attempt_gets_the_sooner_deadline_and_none_starts_after_the_total() {
    let opts = DownloadOptions {
        attempt_timeout: Duration::from_secs(5),
        ..quick()
    };
    let d = Deadline::for_attempt(&opts, Instant::now() + Duration::from_secs(3600));
    assert_eq!(d.key, "download.attempt-timeout-secs");
    assert!(d.left() <= Duration::from_secs(5));
    let d = Deadline::for_attempt(&opts, Instant::now() + Duration::from_secs(1));
    assert_eq!(d.key, "download.total-timeout-secs");
    // With the whole download's time used up, nothing more is tried.
    let script = Script {
        answers: vec![("https://a", vec![Err(AttemptError::Status(503))])],
        calls: RefCell::default(),
    };
    let spent = DownloadOptions {
        total_timeout: Duration::ZERO,
        ..quick()
    };
    let mut f = tempfile::tempfile().unwrap();
    let err = download(&script, &remote(&["https://a"], b"x"), &spent, &mut f, "t").unwrap_err();
    assert!(script.calls.borrow().is_empty());
    assert!(
        matches!(&err.attempts[..], [(_, AttemptError::Timeout(m))] if m.contains("total-timeout-secs")),
        "{err}"
    );
}
