use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::entry::{Flags, Matcher};

fn arm64() -> &'static Arch {
    crate::arch::lookup("arm64").unwrap()
}

fn s390x() -> &'static Arch {
    crate::arch::lookup("s390x").unwrap()
}

fn entry(name: &str, arch: &Arch, enabled: bool, flags: &str, interp: &str) -> Entry {
    Entry {
        name: name.into(),
        enabled,
        interpreter: PathBuf::from(interp),
        flags: Flags::parse(flags).unwrap(),
        unknown_flags: String::new(),
        matcher: Matcher::Magic {
            offset: 0,
            magic: arch.magic.to_vec(),
            mask: arch.mask.to_vec(),
        },
    }
}

fn view(entries: Vec<Entry>) -> View {
    View {
        mounted: true,
        entries,
    }
}

fn own(arch: &Arch) -> Entry {
    entry(
        &format!("binfmtd-{}", arch.qemu),
        arch,
        true,
        "OF",
        "/var/lib/binfmtd/sha256/x",
    )
}

#[test]
fn changes_name_what_happened_to_each_format() {
    let (a, s) = (arm64(), s390x());
    let base = view(vec![own(a), own(s)]);
    let mut disabled = own(a);
    disabled.enabled = false;
    let rewritten = entry("binfmtd-aarch64", a, true, "F", "/usr/bin/qemu-aarch64");
    let foreign = entry("qemu-aarch64", a, true, "F", "/usr/bin/qemu-aarch64-static");
    let unmounted = View::default();
    type Case<'v> = (&'static str, &'v View, View, Vec<(&'static str, Reason)>);
    let cases: Vec<Case> = vec![
        ("nothing", &base, base.clone(), vec![]),
        (
            "removed",
            &base,
            view(vec![own(s)]),
            vec![("aarch64", Reason::Removed)],
        ),
        (
            "disabled",
            &base,
            view(vec![disabled, own(s)]),
            vec![("aarch64", Reason::Disabled)],
        ),
        (
            "rewritten",
            &base,
            view(vec![rewritten, own(s)]),
            vec![("aarch64", Reason::Rewritten)],
        ),
        (
            "flushed",
            &base,
            view(vec![]),
            vec![("aarch64", Reason::Flushed), ("s390x", Reason::Flushed)],
        ),
        (
            "unmounted",
            &base,
            unmounted.clone(),
            vec![("aarch64", Reason::Unmounted), ("s390x", Reason::Unmounted)],
        ),
        ("still unmounted", &unmounted, unmounted.clone(), vec![]),
        (
            "foreign added",
            &base,
            view(vec![own(a), own(s), foreign.clone()]),
            vec![("aarch64", Reason::ForeignAdded)],
        ),
    ];
    for (name, before, now, want) in cases {
        let got: Vec<(&str, Reason)> = changes(before, &now, &[a, s])
            .into_iter()
            .map(|(a, r)| (a.qemu, r))
            .collect();
        assert_eq!(got, want, "case {name}");
    }
    // The only entry removed is a removal, not a flush.
    let lone = view(vec![own(s)]);
    assert_eq!(
        changes(&lone, &view(vec![]), &[s]),
        vec![(s, Reason::Removed)]
    );
    // A foreign entry that served arm64 goes away (the arch relied on it).
    let served = view(vec![foreign, own(s)]);
    let got = changes(&served, &view(vec![own(s)]), &[a, s]);
    assert_eq!(got, vec![(a, Reason::ForeignRemoved)]);
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn history(events: Vec<Event>) -> History {
    let mut h = History::default();
    for e in events {
        h.push(e);
    }
    h
}

fn attempt(at: u64, working: bool) -> Event {
    Event::Attempt {
        at: secs(at),
        working,
    }
}

fn changed(at: u64, reason: Reason) -> Event {
    Event::Changed {
        at: secs(at),
        reason,
        others: vec!["qemu-s390x".into()],
    }
}

#[test]
fn backoff_doubles_with_each_failure_and_resets_on_success() {
    let p = Policy::default();
    let cases: Vec<(&str, Vec<Event>, u64, Verdict)> = vec![
        ("empty", vec![], 0, Verdict::Go),
        ("worked", vec![attempt(0, true)], 1, Verdict::Go),
        (
            "one failure: retry at once",
            vec![attempt(10, false)],
            10,
            Verdict::Go,
        ),
        (
            "two failures, 5 s",
            vec![attempt(0, false), attempt(10, false)],
            12,
            Verdict::Backoff {
                until: secs(15),
                failures: 2,
            },
        ),
        (
            "two failures, expired",
            vec![attempt(0, false), attempt(10, false)],
            15,
            Verdict::Go,
        ),
        (
            "four failures, 20 s",
            vec![
                attempt(0, false),
                attempt(1, false),
                attempt(5, false),
                attempt(15, false),
            ],
            30,
            Verdict::Backoff {
                until: secs(35),
                failures: 4,
            },
        ),
        (
            "capped at 10 min",
            (0..12).map(|i| attempt(i, false)).collect(),
            500,
            Verdict::Backoff {
                until: secs(611),
                failures: 12,
            },
        ),
        (
            "success resets",
            vec![attempt(0, false), attempt(5, false), attempt(16, true)],
            17,
            Verdict::Go,
        ),
    ];
    for (name, events, now, want) in cases {
        assert_eq!(
            verdict(&history(events), secs(now), &p),
            want,
            "case {name}"
        );
    }
}

#[test]
fn repeated_external_changes_are_a_fight_until_the_other_tool_stops() {
    let p = Policy::default();
    let fight: Vec<Event> = (0..5)
        .flat_map(|i| [changed(i * 2, Reason::Removed), attempt(i * 2 + 1, true)])
        .collect();
    let want = Verdict::Fight {
        until: secs(68),
        changes: 5,
        others: vec!["qemu-s390x".into()],
    };
    assert_eq!(verdict(&history(fight.clone()), secs(9), &p), want);
    // Quiet for a minute after the last change: binfmtd repairs again.
    assert_eq!(verdict(&history(fight.clone()), secs(68), &p), Verdict::Go);
    // Four changes in a minute are drift, not a fight.
    assert_eq!(
        verdict(&history(fight[2..].to_vec()), secs(9), &p),
        Verdict::Go
    );
    // Spread over more than the window: not a fight.
    let slow: Vec<Event> = (0..6).map(|i| changed(i * 20, Reason::Rewritten)).collect();
    assert_eq!(verdict(&history(slow), secs(100), &p), Verdict::Go);
    // Flushes are repaired: only a restart loop's worth of them is a fight.
    let flushes: Vec<Event> = (0..19).map(|i| changed(i, Reason::Flushed)).collect();
    assert_eq!(
        verdict(&history(flushes.clone()), secs(19), &p),
        Verdict::Go
    );
    let mut more = flushes;
    more.push(changed(19, Reason::Unmounted));
    assert!(matches!(
        verdict(&history(more), secs(20), &p),
        Verdict::Fight { changes: 20, .. }
    ));
    // Reloads and re-proofs are binfmtd's own work, never a fight.
    let own: Vec<Event> = (0..6).map(|i| changed(i, Reason::Reload)).collect();
    assert_eq!(verdict(&history(own), secs(6), &p), Verdict::Go);
}

#[test]
fn history_is_bounded() {
    let h = history((0..200).map(|i| attempt(i, false)).collect());
    assert_eq!(h.failures(), 64);
}

#[test]
fn unmet_expectations_are_found_even_without_a_change_between_polls() {
    let (a, s) = (arm64(), s390x());
    let mut disabled = own(s);
    disabled.enabled = false;
    let foreign = entry("qemu-aarch64", a, true, "F", "/usr/bin/qemu-aarch64-static");
    let expected = [(a, "qemu-aarch64"), (s, "binfmtd-s390x")];
    let got = |v: &View| -> Vec<(&str, Reason)> {
        unmet(&expected, v)
            .into_iter()
            .map(|(a, r)| (a.qemu, r))
            .collect()
    };
    assert_eq!(got(&view(vec![foreign.clone(), own(s)])), vec![]);
    assert_eq!(
        got(&view(vec![foreign.clone(), disabled])),
        vec![("s390x", Reason::Disabled)]
    );
    assert_eq!(
        got(&view(vec![own(a)])),
        vec![
            ("aarch64", Reason::ForeignRemoved),
            ("s390x", Reason::Removed)
        ]
    );
    assert_eq!(
        got(&view(vec![])),
        vec![("aarch64", Reason::Flushed), ("s390x", Reason::Flushed)]
    );
    assert_eq!(
        got(&View::default()),
        vec![("aarch64", Reason::Unmounted), ("s390x", Reason::Unmounted)]
    );
}
