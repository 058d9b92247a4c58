//! Pod namespace/name through the runtime's CRI socket: containerd with its CRI plugin runs
//! in the sandbox, `crictl runp` creates pod sandboxes with metadata of this test's choosing,
//! and binfmtd's own client (`monitor::cri`) asks containerd's real socket for them from the
//! host, through /proc/PID/root of a sandbox process (the sandbox's /run is its own).

mod common;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use binfmtd::monitor::cri::{self, Sandbox as PodSandbox};
use common::containerd::{crictl, cri_setup};
use common::{Sandbox, NATIVE_I386};

/// A directory both sides can write: the test (root) and the sandbox (its mapped root).
fn sync_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let id = common::sandbox::HOST_ID;
    nix::unistd::chown(&dir, Some(id.into()), Some(id.into())).unwrap();
    dir
}

/// A pod sandbox's metadata, as crictl reads it.
fn pod_json(name: &str, namespace: &str, uid: &str) -> String {
    format!(
        r#"{{"metadata": {{"name": "{name}", "namespace": "{namespace}", "uid": "{uid}", "attempt": 0}},
 "log_directory": "/tmp/ctd/logs",
 "linux": {{"security_context": {{"namespace_options": {{"network": 2}}}}}}}}"#
    )
}

/// A process of this sandbox (found by its environment) whose root holds the socket.
fn socket_from_host(token: &str) -> Option<PathBuf> {
    let needle = format!("CRI_TOKEN={token}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .map(|e| e.path().join("root/run/ctd/sock"))
        .find(|s| s.exists())
}

#[test]
fn list_pod_sandbox_names_the_pods_containerd_runs() {
    let Some(crictl) = crictl() else { return };
    let Some(sb) = Sandbox::new() else { return };
    let token = format!("cri-{}-{}", std::process::id(), line!());
    let sync = sync_dir(&token);
    let pods = [
        ("web-0", "shop", format!("{token}-uid-web")),
        ("db-0", "kube-system", format!("{token}-uid-db")),
    ];
    let mut script = cri_setup(None, &NATIVE_I386.host_path().display().to_string());
    for (i, (name, ns, uid)) in pods.iter().enumerate() {
        script += &format!(
            "cat > /tmp/pod{i}.json <<'CFG'\n{}\nCFG\n\
             crictl runp /tmp/pod{i}.json > \"$SYNC/id{i}\" 2>>/tmp/ctd/crictl.err || {{ cat /tmp/ctd/crictl.err >&2; exit 1; }}\n",
            pod_json(name, ns, uid)
        );
    }
    script += "touch \"$SYNC/ready\"\n\
               until [ -e \"$SYNC/done\" ]; do sleep 0.05; done\n\
               crictl rmp -fa >/dev/null 2>&1\n\
               kill $ctd; wait $ctd\n";
    let sb = sb
        .env("CRICTL", crictl.display().to_string())
        .env("CRI_TOKEN", token.clone())
        .env("SYNC", sync.display().to_string());
    let run = thread::spawn(move || sb.run_script(&script));

    let deadline = Instant::now() + Duration::from_secs(100);
    while !sync.join("ready").exists() && !run.is_finished() {
        assert!(Instant::now() < deadline, "the pods never became ready");
        thread::sleep(Duration::from_millis(50));
    }
    let listed = if run.is_finished() {
        None
    } else {
        let socket = socket_from_host(&token).expect("a sandbox process with the socket");
        Some(cri::list_pod_sandboxes(&socket, Duration::from_secs(10)))
    };
    std::fs::write(sync.join("done"), "").unwrap();
    let run = run.join().unwrap();
    let listed = listed
        .unwrap_or_else(|| panic!("the sandbox ended before its pods were ready: {run}"))
        .unwrap_or_else(|e| panic!("{e}\n{run}"));
    let run = run.success();
    for (i, (name, ns, uid)) in pods.iter().enumerate() {
        let id = std::fs::read_to_string(sync.join(format!("id{i}"))).unwrap();
        let want = PodSandbox {
            id: id.trim().to_string(),
            uid: uid.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
        };
        assert!(
            listed.contains(&want),
            "{want:?} not in what containerd listed: {listed:?}\n{run}"
        );
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    eprintln!("containerd listed: {listed:?}");
    let _ = std::fs::remove_dir_all(sync);
}

#[test]
fn a_missing_socket_names_the_path_and_what_to_do() {
    let socket = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-cri.sock");
    let e = cri::list_pod_sandboxes(&socket, Duration::from_secs(2)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&socket.display().to_string()) && text.contains("cannot connect"),
        "{text}"
    );
    assert!(text.contains("--cri-socket"), "{text}");
}
