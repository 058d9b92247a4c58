use super::*;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn tally() -> Tally {
    Tally::new(Path::new(BINFMT), vec!["x86_64", "i386"])
}

fn ev(kind: Kind, arch: Option<&'static str>, path: &str, container: &str) -> Event {
    Event {
        kind,
        arch,
        path: Some(path.to_string()),
        pid: 7,
        pod_uid: Some("pod-a".into()),
        pod_namespace: None,
        pod_name: None,
        container_id: Some(container.into()),
        unit: None,
    }
}

fn emu(path: &str, container: &str) -> Event {
    ev(Kind::Emulated, Some("aarch64"), path, container)
}

/// (events as (path, container), expected listing per container: (container, [(path, count)]))
#[test]
fn programs_are_counted_per_container_most_run_first() {
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a [(&'a str, u64)])],
    );
    let cases: &[Case] = &[
        (&[], &[]),
        (&[("/bin/a", "c1")], &[("c1", &[("/bin/a", 1)])]),
        (
            &[("/bin/a", "c1"), ("/bin/b", "c1"), ("/bin/b", "c1")],
            &[("c1", &[("/bin/b", 2), ("/bin/a", 1)])],
        ),
        // The busier container first.
        (
            &[("/bin/a", "c1"), ("/bin/b", "c2"), ("/bin/b", "c2")],
            &[("c2", &[("/bin/b", 2)]), ("c1", &[("/bin/a", 1)])],
        ),
    ];
    for (events, want) in cases {
        let mut t = tally();
        for (i, (path, c)) in events.iter().enumerate() {
            t.record(&emu(path, c), i as u64);
        }
        let got: Vec<(String, Vec<(String, u64)>)> = t
            .view()
            .containers
            .iter()
            .map(|c| {
                let progs = c
                    .programs
                    .iter()
                    .map(|p| (p.path.clone(), p.count))
                    .collect();
                (c.who.container_id.clone().unwrap(), progs)
            })
            .collect();
        let want: Vec<(String, Vec<(String, u64)>)> = want
            .iter()
            .map(|(c, ps)| {
                let ps = ps.iter().map(|(p, n)| (p.to_string(), *n)).collect();
                (c.to_string(), ps)
            })
            .collect();
        assert_eq!(got, want, "{events:?}");
    }
}

#[test]
fn a_container_keeps_its_most_run_programs_within_the_bound() {
    let mut t = tally();
    // One program run often, then many distinct ones once each.
    for i in 0..5 {
        t.record(&emu("/bin/busy", "c1"), i);
    }
    for i in 0..(PROGRAMS_MAX as u64 * 10) {
        t.record(&emu(&format!("/tmp/p{i}"), "c1"), 100 + i);
    }
    let v = t.view();
    let c = &v.containers[0];
    assert_eq!(c.programs.len(), PROGRAMS_MAX);
    assert_eq!(c.programs[0].path, "/bin/busy");
    assert_eq!(c.programs[0].count, 5);
    // Every exec is still counted for the container.
    assert_eq!(c.emulated, 5 + PROGRAMS_MAX as u64 * 10);
    // The newest one-off is listed (it replaced the oldest one-off).
    let last = format!("/tmp/p{}", PROGRAMS_MAX * 10 - 1);
    assert!(c.programs.iter().any(|p| p.path == last), "{c:?}");
}

#[test]
fn containers_are_bounded_and_the_quietest_goes() {
    let mut t = tally();
    for i in 0..(CONTAINERS_MAX as u64 + 3) {
        t.record(&emu("/bin/a", &format!("c{i}")), i);
    }
    // c0 comes back: it is the newest now, and c1..c3 went.
    t.record(&emu("/bin/a", "c0"), 1000);
    let v = t.view();
    assert_eq!(v.containers.len(), CONTAINERS_MAX);
    let ids: Vec<String> = v
        .containers
        .iter()
        .map(|c| c.who.container_id.clone().unwrap())
        .collect();
    for gone in ["c1", "c2", "c3"] {
        assert!(!ids.contains(&gone.to_string()), "{gone} kept: {ids:?}");
    }
    assert!(ids.contains(&"c0".to_string()) && ids.contains(&"c4".to_string()));
    assert_eq!(v.emulated_total, CONTAINERS_MAX as u64 + 4);
}

#[test]
fn failures_newest_first_bounded_with_the_files_arch_and_hint() {
    let mut t = tally();
    for i in 0..(FAILURES_MAX as u64 + 5) {
        t.record(
            &ev(
                Kind::ExecFormatError,
                Some("s390x"),
                &format!("/f{i}"),
                "c1",
            ),
            i,
        );
    }
    let v = t.view();
    assert_eq!(v.recent_failures.len(), FAILURES_MAX);
    assert_eq!(v.exec_format_errors_total, FAILURES_MAX as u64 + 5);
    let newest = &v.recent_failures[0];
    assert_eq!(
        newest.path.as_deref(),
        Some(&*format!("/f{}", FAILURES_MAX + 4))
    );
    assert_eq!(newest.arch, Some("s390x"));
    assert!(
        newest.hint.contains("binfmtd install --arch s390x"),
        "{}",
        newest.hint
    );
    assert!(
        v.containers.is_empty(),
        "failures are not emulated programs"
    );
}

/// (the file's arch, what the hint must say)
#[test]
fn hints_follow_what_the_file_is() {
    let cases: &[(Option<&'static str>, &str)] = &[
        (Some("riscv64"), "no emulator for arch riscv64: no enabled binfmt_misc entry in /proc/sys/fs/binfmt_misc matches it. Fix: `binfmtd install --arch riscv64`"),
        (Some("x86_64"), "a program for this CPU (x86_64) that the kernel still refused"),
        (Some("i386"), "a program for this CPU (i386)"),
        (None, "not an ELF program of a CPU binfmtd knows"),
    ];
    for (arch, want) in cases {
        let h = hint(
            *arch,
            Some("/opt/tool"),
            &["x86_64", "i386"],
            Path::new(BINFMT),
        );
        assert!(h.contains(want), "{arch:?}: {h}");
    }
    assert!(hint(None, Some("/opt/tool"), &[], Path::new(BINFMT)).contains("/opt/tool"));
}

#[test]
fn who_describes_pods_units_and_the_unattributed() {
    let mut e = emu("/x", "0123456789abcdef0123");
    assert_eq!(Who::of(&e).describe(), "pod pod-a container 0123456789ab");
    e.pod_uid = None;
    e.container_id = None;
    e.unit = Some("kubelet.service".into());
    assert_eq!(Who::of(&e).describe(), "kubelet.service");
    e.unit = None;
    assert!(Who::of(&e).describe().starts_with("unknown"));
}

/// The runtime's name for a pod, once known, is shown, and a pod named later stays one row.
#[test]
fn pods_named_by_the_runtime_stay_one_container() {
    let mut t = Tally::new(Path::new(BINFMT), vec!["x86_64"]);
    let unnamed = emu("/x", "0123456789abcdef0123");
    let mut named = unnamed.clone();
    named.pod_namespace = Some("shop".into());
    named.pod_name = Some("web-0".into());
    let cases: &[(&Event, &str)] = &[
        (&unnamed, "pod pod-a container 0123456789ab"),
        (&named, "pod shop/web-0 container 0123456789ab"),
        // A later event without a name (the runtime did not answer) keeps the name.
        (&unnamed, "pod shop/web-0 container 0123456789ab"),
    ];
    for (i, (e, want)) in cases.iter().enumerate() {
        t.record(e, i as u64);
        assert_eq!(t.containers.len(), 1, "step {i}");
        assert_eq!(t.containers[0].who.describe(), *want, "step {i}");
        assert_eq!(t.containers[0].emulated, i as u64 + 1, "step {i}");
    }
}
