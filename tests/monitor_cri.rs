//! Pod namespace/name through the runtime's CRI socket: containerd with its CRI plugin runs
//! in the sandbox, `crictl runp` creates pod sandboxes with metadata of this test's choosing,
//! and binfmtd's own client (`monitor::cri`) asks containerd's real socket for them from the
//! host, through /proc/PID/root of a sandbox process (the sandbox's /run is its own).

#[path = "monitor_exec/agent.rs"]
mod agent;
mod common;
#[path = "monitor_exec/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use std::thread;
use std::time::{Duration, Instant};

use agent::Agent;
use binfmtd::monitor::cri::{self, Sandbox as PodSandbox};
use common::cluster::cluster;
use common::containerd::{cri_setup, crictl};
use common::{Sandbox, NATIVE_I386};
use harness::{ensure_tracefs, hierarchies, ids, run_in_pod, sync_dir, Driver, Monitor};

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

/// Runs containerd with pods `(name, namespace, uid)` in a sandbox, and `f` on the host
/// with containerd's socket (as the host reaches it) and the pods' sandbox IDs while they
/// exist. None (after printing why) where this machine cannot run it.
fn with_pods<T>(pods: &[(&str, &str, String)], f: impl FnOnce(&Path, &[String]) -> T) -> Option<T> {
    let crictl = crictl()?;
    let sb = Sandbox::new()?;
    let token = format!("cri-{}-{}", std::process::id(), pods[0].2);
    let sync = sync_dir(&token);
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
    // A failed assertion in `f` still lets the sandbox end before it is raised again.
    let out = (!run.is_finished()).then(|| {
        let socket = socket_from_host(&token).expect("a sandbox process with the socket");
        let ids: Vec<String> = (0..pods.len())
            .map(|i| {
                std::fs::read_to_string(sync.join(format!("id{i}")))
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&socket, &ids)))
    });
    std::fs::write(sync.join("done"), "").unwrap();
    let run = run.join().unwrap();
    let out = out.unwrap_or_else(|| panic!("the sandbox ended before its pods were ready: {run}"));
    let out = out.unwrap_or_else(|e| std::panic::resume_unwind(e));
    run.success();
    let _ = std::fs::remove_dir_all(sync);
    Some(out)
}

#[test]
fn list_pod_sandbox_names_the_pods_containerd_runs() {
    let tag = format!("{}-{}", std::process::id(), line!());
    let pods = [
        ("web-0", "shop", format!("{tag}-uid-web")),
        ("db-0", "kube-system", format!("{tag}-uid-db")),
    ];
    with_pods(&pods, |socket, ids| {
        let listed = cri::list_pod_sandboxes(socket, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        for ((name, ns, uid), id) in pods.iter().zip(ids) {
            let want = PodSandbox {
                id: id.clone(),
                uid: uid.clone(),
                namespace: ns.to_string(),
                name: name.to_string(),
            };
            assert!(
                listed.contains(&want),
                "{want:?} not in what containerd listed: {listed:?}"
            );
        }
        assert_eq!(listed.len(), 2, "{listed:?}");
        eprintln!("containerd listed: {listed:?}");
    });
}

/// `binfmtd monitor --cri-socket`: an emulated exec in the pod's kubelet-shaped cgroup comes
/// out with the namespace/name containerd holds for that pod UID.
#[test]
fn monitor_events_carry_the_pod_namespace_and_name() {
    let (uid, id) = ids("cri");
    let pods = [("emulated-web", "team-arm", uid.clone())];
    with_pods(&pods, |socket, _| {
        // with_pods made one: sandboxes work here.
        let program_sandbox = Sandbox::new().expect("a second sandbox");
        let socket = socket.display().to_string();
        let Some(monitor) = Monitor::start(&["--cri-socket", &socket]) else {
            return;
        };
        let (v1, v2) = hierarchies();
        let hierarchy = v2.or(v1).expect("a cgroup hierarchy is mounted");
        run_in_pod(program_sandbox, Driver::Systemd, &hierarchy, &uid, &id);
        let e = monitor.wait_for("emulated", |e| {
            e["kind"] == "emulated" && e["container_id"] == id.as_str()
        });
        assert_eq!(e["pod_uid"], uid.as_str(), "{e}");
        assert_eq!(e["pod_namespace"], "team-arm", "{e}");
        assert_eq!(e["pod_name"], "emulated-web", "{e}");
        // The ENOEXEC event of the same pod is named from the cache.
        let f = monitor.wait_for("exec-format-error", |e| {
            e["kind"] == "exec-format-error" && e["container_id"] == id.as_str()
        });
        assert_eq!(f["pod_name"], "emulated-web", "{f}");
        eprintln!("named: {e}");
    });
}

/// `binfmtd run --exec-monitor --cri-socket`: the status file's row for the container
/// carries the pod's namespace and name.
#[test]
fn agent_status_names_the_pod() {
    let (uid, id) = ids("cri-agent");
    let pods = [("agent-web", "team-status", uid.clone())];
    with_pods(&pods, |socket, _| {
        // with_pods made one: sandboxes work here.
        let program_sandbox = Sandbox::new().expect("a second sandbox");
        ensure_tracefs();
        let socket = socket.display().to_string();
        let Some(agent) = Agent::start(&["--cri-socket", &socket], false) else {
            return;
        };
        let (v1, v2) = hierarchies();
        let hierarchy = v1.or(v2).expect("a cgroup hierarchy is mounted");
        run_in_pod(program_sandbox, Driver::Cgroupfs, &hierarchy, &uid, &id);
        let ours = |s: &serde_json::Value| {
            s["daemon"]["exec_monitor"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["container_id"] == id.as_str())
        };
        let status = agent.wait_status("this run's container", ours);
        let c = status["daemon"]["exec_monitor"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["container_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(c["pod_uid"], uid.as_str(), "{c:#}");
        assert_eq!(c["pod_namespace"], "team-status", "{c:#}");
        assert_eq!(c["pod_name"], "agent-web", "{c:#}");
    });
}

/// With names from the runtime, the agent's Kubernetes Event reaches the real API server
/// on credentials that may create Events but not list pods: the name came from CRI.
#[test]
fn events_reach_the_pod_without_listing_pods() {
    const NODE: &str = "cri-node";
    const NS: &str = "cri-apps";
    let Some(c) = cluster() else { return };
    c.add_node(NODE, &[("kubernetes.io/arch", "amd64")]);
    c.kubectl(&["create", "namespace", NS], None).success();
    c.kubectl(&["create", "serviceaccount", "events-only", "-n", NS], None)
        .success();
    c.kubectl(
        &[
            "create",
            "clusterrole",
            "cri-events-only",
            "--verb=create",
            "--resource=events",
        ],
        None,
    )
    .success();
    c.kubectl(
        &[
            "create",
            "clusterrolebinding",
            "cri-events-only",
            "--clusterrole=cri-events-only",
            &format!("--serviceaccount={NS}:events-only"),
        ],
        None,
    )
    .success();
    let uid = c.pod_on(NS, "events-only", "web", NODE);
    let listed = c.kubectl_token(
        &c.token(NS, "events-only", None),
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            &format!("spec.nodeName={NODE}"),
        ],
    );
    assert!(
        !listed.ok && listed.stderr.contains("forbidden"),
        "these credentials must not list pods: {} {}",
        listed.stdout,
        listed.stderr
    );
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kubeconfig.path(),
        c.token_kubeconfig(&c.token(NS, "events-only", None)),
    )
    .unwrap();
    let kc = kubeconfig.path().to_str().unwrap().to_string();
    let (_, id) = ids("cri-events");
    let pods = [("web", NS, uid.clone())];
    with_pods(&pods, |socket, _| {
        // with_pods made one: sandboxes work here.
        let program_sandbox = Sandbox::new().expect("a second sandbox");
        ensure_tracefs();
        let socket = socket.display().to_string();
        let args = [
            "--cri-socket",
            &socket,
            "--node-labels",
            "--kubeconfig",
            &kc,
            "--node-name",
            NODE,
        ];
        let Some(agent) = Agent::start(&args, false) else {
            return;
        };
        let (v1, v2) = hierarchies();
        let hierarchy = v1.or(v2).expect("a cgroup hierarchy is mounted");
        run_in_pod(program_sandbox, Driver::Cgroupfs, &hierarchy, &uid, &id);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = c.pod_events(NS, &uid);
            if seen
                .iter()
                .any(|e| e["reason"] == "EmulatedExecution" && e["involvedObject"]["name"] == "web")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no EmulatedExecution Event on {NS}/web: {seen:#?}\nagent log: {}",
                agent.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    });
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
