use std::collections::HashMap;

use super::*;
use crate::arch;
use crate::explain::verdict::Node;
use crate::monitor::trace::parse_line;

#[derive(Default)]
struct FakeProcs {
    cgroup: HashMap<i32, String>,
    files: HashMap<String, Vec<u8>>,
    memory: HashMap<(i32, u64), String>,
}

impl Procs for FakeProcs {
    fn cgroup(&self, pid: i32) -> Option<String> {
        self.cgroup.get(&pid).cloned()
    }
    fn header(&self, _pid: i32, filename: &str) -> Option<Vec<u8>> {
        self.files.get(filename).cloned()
    }
    fn string_at(&self, pid: i32, addr: u64) -> Option<String> {
        self.memory.get(&(pid, addr)).cloned()
    }
}

const POD: &str = "0::/kubepods/besteffort/pod0f3c2a4e-8b1d-4c5e-9a7f-1234567890ab/4b825dc642cb6eb9a060e54bf8d69288fbee4904b825dc642cb6eb9a060e54b0\n";

fn watch() -> Watch {
    Watch::new(
        Vec::new(),
        Node::default_native(arch::lookup("x86_64").unwrap()),
    )
}

fn feed(w: &mut Watch, procs: &FakeProcs, lines: &[&str]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|l| w.feed(parse_line(l).expect(l), procs))
        .collect()
}

#[test]
fn foreign_program_of_another_instance_is_emulated_and_attributed() {
    let mut procs = FakeProcs::default();
    procs.cgroup.insert(15725, POD.into());
    procs.files.insert(
        "/tmp/mcap/busybox".into(),
        arch::lookup("aarch64").unwrap().magic.to_vec(),
    );
    let events = feed(&mut watch(), &procs, &[
        "              sh-15725   [001] .....  6524.267954: sched_prepare_exec: interp=/tmp/mcap/qemu-aarch64-static filename=/tmp/mcap/busybox pid=15725 comm=sh",
        "         busybox-15725   [001] .....  6524.268090: sched_process_exec: filename=/tmp/mcap/busybox pid=15725 old_pid=15725",
    ]);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (e.kind, e.arch, e.path.as_deref()),
        (Kind::Emulated, Some("aarch64"), Some("/tmp/mcap/busybox"))
    );
    assert_eq!(
        e.pod_uid.as_deref(),
        Some("0f3c2a4e-8b1d-4c5e-9a7f-1234567890ab")
    );
    assert!(e.container_id.is_some());
}

#[test]
fn native_exec_reads_nothing_and_emits_nothing() {
    // No files known: a header read would find nothing, so reaching it would drop the exec
    // silently; the interp == filename shortcut must decide first.
    let procs = FakeProcs::default();
    let events = feed(&mut watch(), &procs, &[
        "           sleep-26987   [000] .....  5510.095267: sched_prepare_exec: interp=/usr/bin/sleep filename=/usr/bin/sleep pid=26987 comm=bash",
        "           sleep-26987   [000] .....  5510.095472: sched_process_exec: filename=/usr/bin/sleep pid=26987 old_pid=26987",
    ]);
    assert!(events.is_empty());
}

#[test]
fn without_prepare_exec_the_header_decides() {
    let mut procs = FakeProcs::default();
    procs.files.insert(
        "/usr/bin/cat".into(),
        arch::lookup("x86_64").unwrap().magic.to_vec(),
    );
    procs.files.insert(
        "/opt/arm".into(),
        arch::lookup("arm").unwrap().magic.to_vec(),
    );
    let events = feed(&mut watch(), &procs, &[
        "             cat-1   [001] .....  1.0: sched_process_exec: filename=/usr/bin/cat pid=1 old_pid=1",
        "             arm-2   [001] .....  1.0: sched_process_exec: filename=/opt/arm pid=2 old_pid=2",
    ]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].arch, Some("arm"));
    // Gone before its cgroup was read: no attribution rather than a wrong one.
    assert_eq!(
        (events[0].pod_uid.as_deref(), events[0].unit.as_deref()),
        (None, None)
    );
}

#[test]
fn enoexec_takes_the_path_from_the_callers_memory() {
    let mut procs = FakeProcs::default();
    procs
        .memory
        .insert((27012, 0x55980d8520e0), "/tmp/badelf".into());
    procs
        .cgroup
        .insert(27012, "0::/system.slice/cron.service\n".into());
    let events = feed(&mut watch(), &procs, &[
        "            perl-27012   [001] .....  5510.571392: sys_execve(filename: 0x55980d8520e0, argv: 0x55980d8704f0, envp: 0x55980d8555f0)",
        "            perl-27012   [000] .....  5510.614492: sys_execve -> 0xfffffffffffffff8",
    ]);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.kind, e.path.as_deref(), e.pid),
        (Kind::ExecFormatError, Some("/tmp/badelf"), 27012)
    );
    assert_eq!(e.unit.as_deref(), Some("cron.service"));
    // Unreadable file: no arch rather than a guess.
    assert_eq!(e.arch, None);
}

#[test]
fn enoexec_names_the_files_own_arch_from_its_header() {
    let mut procs = FakeProcs::default();
    procs
        .memory
        .insert((27012, 0x55980d8520e0), "/opt/tool".into());
    let s390x = crate::arch::lookup("s390x").unwrap();
    procs.files.insert("/opt/tool".into(), s390x.magic.to_vec());
    let events = feed(&mut watch(), &procs, &[
        "            perl-27012   [001] .....  5510.571392: sys_execve(filename: 0x55980d8520e0, argv: 0x55980d8704f0, envp: 0x55980d8555f0)",
        "            perl-27012   [000] .....  5510.614492: sys_execve -> 0xfffffffffffffff8",
    ]);
    assert_eq!(events[0].arch, Some("s390x"));
}

#[test]
fn pending_records_stay_bounded() {
    let procs = FakeProcs::default();
    let mut w = watch();
    for pid in 0..(PENDING_MAX as i32 * 3) {
        w.feed(
            Record::Enter {
                pid,
                filename_addr: 1,
            },
            &procs,
        );
        w.feed(
            Record::Prepare {
                pid,
                interp: "/a".into(),
                filename: "/a".into(),
            },
            &procs,
        );
    }
    assert!(w.interp.len() <= PENDING_MAX && w.filename_addr.len() <= PENDING_MAX);
}
