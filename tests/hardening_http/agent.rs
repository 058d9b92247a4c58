//! The agent under test: `binfmtd run --listen` in a sandbox, reached from the host. The
//! sandbox shares the host's network namespace, so the test's own threads are the clients;
//! its pid namespace is private, so the agent's host pid is found through its socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{sections, Run, Sandbox};

/// Runs the agent, publishes its address in $SHARE/addr once the first pass is done, and
/// keeps it running until the test creates $SHARE/done.
const SCRIPT: &str = r#"
$BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x --interval 30s --listen 127.0.0.1:0 2>>/tmp/agent.log & AGENT=$!
wait_for grep -q 'bound=' /tmp/agent.log
# After the first pass the agent sits idle (--interval 30s): its open files stay put.
wait_for grep -q 'converged status=working' /tmp/agent.log
grep -o 'bound=[0-9.:]*' /tmp/agent.log | head -n1 | cut -d= -f2 > $SHARE/addr.new
mv $SHARE/addr.new $SHARE/addr
WAIT_SECS=100 wait_for test -e $SHARE/done
section alive; kill -0 $AGENT && echo yes
kill $AGENT; wait $AGENT || true
section log; cat /tmp/agent.log
"#;

/// `binfmtd run --listen` in a sandbox, as seen from the host.
pub struct Agent {
    pub addr: SocketAddr,
    /// The agent's pid in the host's pid namespace (for its CPU time and its fd limit).
    pid: i32,
    share: PathBuf,
    sandbox: Option<thread::JoinHandle<Run>>,
}

impl Agent {
    pub fn start(name: &str) -> Option<Agent> {
        let sb = Sandbox::new()?.with_qemu(&["s390x"]);
        let share =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hardening-http-{name}"));
        let _ = std::fs::remove_dir_all(&share);
        std::fs::create_dir_all(&share).unwrap();
        // The sandbox's root is an unprivileged host uid: it must be able to write here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777)).unwrap();
        let sb = sb.env("SHARE", share.display().to_string());
        let sandbox = thread::spawn(move || sb.run_script(SCRIPT));
        let file = share.join("addr");
        let t0 = Instant::now();
        while !file.exists() {
            if sandbox.is_finished() || t0.elapsed() > Duration::from_secs(60) {
                std::fs::write(share.join("done"), "").unwrap();
                panic!(
                    "the agent did not start listening: {}",
                    sandbox.join().unwrap()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        let addr: SocketAddr = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = listener_pid(addr.port());
        Some(Agent {
            addr,
            pid,
            share,
            sandbox: Some(sandbox),
        })
    }

    /// Stop the agent; its sections `alive` and `log`.
    pub fn stop(mut self) -> (Run, std::collections::BTreeMap<String, String>) {
        std::fs::write(self.share.join("done"), "").unwrap();
        let run = self.sandbox.take().unwrap().join().unwrap().success();
        let s = sections(&run.stdout);
        assert_eq!(s["alive"], "yes\n", "the agent died: {run}");
        (run, s)
    }

    /// CPU time the agent has used (all threads), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// Set the agent's soft RLIMIT_NOFILE (the hard limit is kept). As the sandbox's uid, the
    /// agent's owner: prlimit on another uid's process needs CAP_SYS_RESOURCE, which root
    /// may lack (in a container, say).
    pub fn limit_fds(&self, soft: u64) {
        let id = crate::common::sandbox::HOST_ID;
        let out = std::process::Command::new("setpriv")
            .args([
                &format!("--reuid={id}"),
                &format!("--regid={id}"),
                "--clear-groups",
            ])
            .args([
                "prlimit",
                "--pid",
                &self.pid.to_string(),
                &format!("--nofile={soft}:"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prlimit --nofile={soft}: on pid {}: {}",
            self.pid,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The lowest fd number the agent does not have open.
    pub fn lowest_free_fd(&self) -> u64 {
        let open: std::collections::BTreeSet<u64> =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid))
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
        (0..).find(|n| !open.contains(n)).unwrap()
    }

    /// Leave the agent no free file descriptor: the next one it opens fails with EMFILE.
    /// Its loop may be closing a file as this runs, so lower again until none is free.
    pub fn exhaust_fds(&self) {
        for _ in 0..20 {
            let low = self.lowest_free_fd();
            self.limit_fds(low);
            thread::sleep(Duration::from_millis(50));
            if self.lowest_free_fd() >= low {
                return;
            }
        }
        panic!("the agent kept closing files: could not leave it without a free fd");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed assertion must not leave the sandbox waiting out its timeout.
        let _ = std::fs::write(self.share.join("done"), "");
    }
}

/// The pid of the process holding the listening socket on 127.0.0.1:`port`, found through
/// the socket's inode (the agent's own pid is that of the sandbox's pid namespace).
fn listener_pid(port: u16) -> i32 {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inode = tcp
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[1].ends_with(&format!(":{port:04X}")) && f[3] == "0A")
        .map(|f| f[9].to_string())
        .unwrap_or_else(|| panic!("no listener on port {port} in /proc/net/tcp"));
    let socket = format!("socket:[{inode}]");
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = proc.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str()))
        {
            return pid;
        }
    }
    panic!("no process holds {socket} (port {port})");
}
