//! Lines of a tracefs `trace_pipe` into records: pure, no I/O.
//!
//! A line is `<comm>-<pid> [<cpu>] <flags> <timestamp>: <event text>`; the event text is the
//! tracepoint's print format (see `events/<group>/<event>/format`). Only the events the
//! monitor enables are recognised; anything else (lost-event notices, other events) is None.

/// One recognised trace record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `sched_prepare_exec` (Linux >= 6.9): the exec is past its last failure point. `interp`
    /// is the program the kernel actually loads: the interpreter of a binfmt_misc entry or a
    /// `#!` line, else the file itself.
    Prepare {
        pid: i32,
        interp: String,
        filename: String,
    },
    /// `sched_process_exec`: an exec succeeded. `old_pid` differs from `pid` when a
    /// non-leader thread exec'd (it takes the leader's pid).
    Exec {
        pid: i32,
        old_pid: i32,
        filename: String,
    },
    /// `sys_enter_execve`/`sys_enter_execveat`: the address of the filename string in the
    /// caller's memory (tracefs cannot print user strings on every kernel).
    Enter { pid: i32, filename_addr: u64 },
    /// `sys_exit_execve`/`sys_exit_execveat` returning -ENOEXEC.
    ExecFormatError { pid: i32 },
}

const ENOEXEC: i64 = 8;

/// Parse one line of trace_pipe.
pub fn parse_line(line: &str) -> Option<Record> {
    let (task_pid, text) = split_header(line)?;
    if let Some(body) = text.strip_prefix("sched_prepare_exec: ") {
        return parse_prepare(body);
    }
    if let Some(body) = text.strip_prefix("sched_process_exec: ") {
        return parse_exec(body);
    }
    if let Some(args) = text
        .strip_prefix("sys_execve(")
        .or_else(|| text.strip_prefix("sys_execveat("))
    {
        let addr = field(args, "filename: ")?;
        let addr = addr.split([',', ')']).next()?;
        return Some(Record::Enter {
            pid: task_pid,
            filename_addr: hex(addr)?,
        });
    }
    let ret = text
        .strip_prefix("sys_execve -> ")
        .or_else(|| text.strip_prefix("sys_execveat -> "))?;
    // The return value prints as an unsigned long: -8 is 0xfffffffffffffff8.
    (hex(ret.trim())? as i64 == -ENOEXEC).then_some(Record::ExecFormatError { pid: task_pid })
}

/// (pid of the task, event text) from `<comm>-<pid> [<cpu>] <flags> <ts>: <text>`. The comm
/// may hold spaces and dashes, so the pid is the digits before the ` [cpu]` column.
fn split_header(line: &str) -> Option<(i32, &str)> {
    let open = line.find(" [")?;
    let (task, rest) = line.split_at(open);
    let pid = task.trim_end().rsplit_once('-')?.1.parse().ok()?;
    let rest = &rest[rest.find(']')? + 1..];
    // Flags column, then the timestamp ending in ':'.
    let (_flags, rest) = rest.trim_start().split_once(' ')?;
    let (ts, text) = rest.trim_start().split_once(' ')?;
    ts.ends_with(':').then_some(())?;
    Some((pid, text.trim_end_matches(['\n', '\r'])))
}

fn parse_prepare(body: &str) -> Option<Record> {
    let rest = body.strip_prefix("interp=")?;
    let (interp, rest) = rest.split_once(" filename=")?;
    let (filename, rest) = rest.rsplit_once(" pid=")?;
    let pid = rest.split(' ').next()?.parse().ok()?;
    Some(Record::Prepare {
        pid,
        interp: interp.to_string(),
        filename: filename.to_string(),
    })
}

fn parse_exec(body: &str) -> Option<Record> {
    let rest = body.strip_prefix("filename=")?;
    let (filename, rest) = rest.rsplit_once(" pid=")?;
    let (pid, old) = rest.split_once(" old_pid=")?;
    Some(Record::Exec {
        pid: pid.parse().ok()?,
        old_pid: old.trim().parse().ok()?,
        filename: filename.to_string(),
    })
}

fn field<'a>(args: &'a str, name: &str) -> Option<&'a str> {
    Some(&args[args.find(name)? + name.len()..])
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
