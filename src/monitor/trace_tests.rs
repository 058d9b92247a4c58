// Lines captured from trace_pipe on Linux 6.18 (a tracefs instance with the monitor's events).
use super::*;

#[test]
fn prepare_exec_carries_interp_and_filename() {
    let line = "           sleep-26987   [000] .....  5510.095267: sched_prepare_exec: interp=/usr/bin/sleep filename=/usr/bin/sleep pid=26987 comm=bash";
    assert_eq!(
        parse_line(line),
        Some(Record::Prepare {
            pid: 26987,
            interp: "/usr/bin/sleep".into(),
            filename: "/usr/bin/sleep".into()
        })
    );
}

#[test]
fn prepare_exec_through_binfmt_misc_names_the_interpreter() {
    // An arm64 busybox run in a user namespace with its own binfmt_misc instance (F entry).
    let line = "              sh-15725   [001] .....  6524.267954: sched_prepare_exec: interp=/tmp/mcap/qemu-aarch64-static filename=/tmp/mcap/busybox pid=15725 comm=sh";
    assert_eq!(
        parse_line(line),
        Some(Record::Prepare {
            pid: 15725,
            interp: "/tmp/mcap/qemu-aarch64-static".into(),
            filename: "/tmp/mcap/busybox".into()
        })
    );
    let exec = "         busybox-15725   [001] .....  6524.268090: sched_process_exec: filename=/tmp/mcap/busybox pid=15725 old_pid=15725";
    assert_eq!(
        parse_line(exec),
        Some(Record::Exec {
            pid: 15725,
            old_pid: 15725,
            filename: "/tmp/mcap/busybox".into()
        })
    );
}

#[test]
fn process_exec_with_pid_and_old_pid() {
    let line = "             cat-26994   [001] .....  5510.188008: sched_process_exec: filename=/usr/bin/cat pid=26994 old_pid=26994";
    assert_eq!(
        parse_line(line),
        Some(Record::Exec {
            pid: 26994,
            old_pid: 26994,
            filename: "/usr/bin/cat".into()
        })
    );
}

#[test]
fn comm_with_dashes_and_spaces_keeps_the_pid() {
    let line = "   kworker/u4:2-x y-812   [000] .....  5510.1: sched_process_exec: filename=/a b/c pid=812 old_pid=813";
    assert_eq!(
        parse_line(line),
        Some(Record::Exec {
            pid: 812,
            old_pid: 813,
            filename: "/a b/c".into()
        })
    );
}

#[test]
fn enter_execve_gives_the_filename_address() {
    let line = "            perl-27012   [001] .....  5510.571392: sys_execve(filename: 0x55980d8520e0, argv: 0x55980d8704f0, envp: 0x55980d8555f0)";
    assert_eq!(
        parse_line(line),
        Some(Record::Enter {
            pid: 27012,
            filename_addr: 0x55980d8520e0
        })
    );
    let at = "               x-5   [001] .....  1.0: sys_execveat(fd: 0xffffff9c, filename: 0x7ffe10, argv: 0x1, envp: 0x2, flags: 0)";
    assert_eq!(
        parse_line(at),
        Some(Record::Enter {
            pid: 5,
            filename_addr: 0x7ffe10
        })
    );
}

#[test]
fn exit_execve_enoexec_only() {
    let line =
        "            perl-27012   [000] .....  5510.614492: sys_execve -> 0xfffffffffffffff8";
    assert_eq!(
        parse_line(line),
        Some(Record::ExecFormatError { pid: 27012 })
    );
    // ENOENT (-2) is not an exec format error, whatever the filter let through.
    let enoent =
        "            perl-27012   [000] .....  5510.614492: sys_execve -> 0xfffffffffffffffe";
    assert_eq!(parse_line(enoent), None);
}

#[test]
fn other_lines_are_ignored() {
    for line in [
        "",
        "CPU:1 [LOST 12 EVENTS]",
        "            bash-1   [000] .....  1.0: sched_switch: prev_comm=bash",
        "garbage",
    ] {
        assert_eq!(parse_line(line), None, "{line:?}");
    }
}
