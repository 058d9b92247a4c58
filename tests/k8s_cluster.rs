//! tests/k8s/cluster.sh as a person uses it: `up DIR` writes the kubeconfig and the paths it
//! prints, the API server enforces Node,RBAC authorization, and `down DIR` stops exactly the
//! processes `up` started: a recorded pid that now belongs to another program is left alone.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/cluster.sh"))
        .args(args)
        .output()
        .unwrap()
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn up_serves_with_rbac_and_down_stops_only_what_up_started() {
    // The components must be built; the shared helper skips or fails (CI=true) with the hint.
    let Some(bin) = common::cluster::components() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let up = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/cluster.sh"))
        .args(["up", d])
        .env("BINFMTD_K8S_BIN", &bin)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let kubeconfig = dir.path().join("kubeconfig");
    assert!(
        printed.contains(&format!("kubeconfig: {}", kubeconfig.display())),
        "{printed}"
    );
    let kubectl = Path::new(
        std::fs::read_to_string(dir.path().join("bin"))
            .unwrap()
            .trim(),
    )
    .join("kubectl");
    let run = |kc: &Path, args: &[&str]| {
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(kc)
            .args(args)
            .output()
            .unwrap()
    };
    let ready = run(&kubeconfig, &["get", "--raw", "/readyz"]);
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "ok");
    // Another identity has no rights until RBAC grants them.
    let user = script(&["user", d, "someone"]);
    let user_kc = String::from_utf8(user.stdout).unwrap();
    let denied = run(Path::new(user_kc.trim()), &["get", "nodes"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden"),
        "{denied:?}"
    );

    let pids: Vec<String> = ["etcd", "kube-apiserver"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.path().join(format!("{n}.pid")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    // Pretend etcd's pid was reused: the file now names an unrelated process.
    let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
    let etcd = pids[0].clone();
    std::fs::write(dir.path().join("etcd.pid"), bystander.id().to_string()).unwrap();
    let down = script(&["down", d]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!alive(&pids[1]), "kube-apiserver still runs");
    assert!(
        alive(&bystander.id().to_string()),
        "down killed a process up did not start"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    // Clean up the real etcd by hand (down rightly refused it), by its own pid.
    Command::new("kill").arg(&etcd).status().unwrap();
}
