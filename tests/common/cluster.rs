//! A real Kubernetes control plane (etcd, kube-apiserver, and the controller-manager and scheduler
//! that write policy status and tokens' CA; tests/k8s/cluster.sh) shared by the
//! tests of one test binary: started on first use, stopped and removed when the binary exits
//! (cluster.sh's `--until-exit`), since libtest has no teardown hook.
//!
//! The components come from tests/k8s/build.sh. Missing ones skip the test with the command
//! that builds them; under CI=true they fail it (tests/run.sh builds them first).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// One running control plane.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    /// cluster-admin (a client certificate in group system:masters).
    pub kubeconfig: PathBuf,
    /// The built kubectl of the same release as the server.
    pub kubectl: PathBuf,
    pub port: u16,
    pub ca_pem: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The directory of the built components, or None after printing why they are missing (a
/// panic under CI=true: there a missing component is a failure, never a skip).
pub fn components() -> Option<PathBuf> {
    match BIN.get_or_init(built) {
        Ok(bin) => Some(bin.clone()),
        Err(missing) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: {missing}");
            None
        }
        Err(missing) => panic!("CI=true, so this test may not skip: {missing}"),
    }
}

/// The binary's cluster (started on first use), or None as `components`.
pub fn cluster() -> Option<&'static Cluster> {
    let bin = components()?;
    Some(CLUSTER.get_or_init(|| start(&bin)))
}

fn built() -> Result<PathBuf, String> {
    let check = Command::new("bash")
        .arg(repo().join("tests/k8s/build.sh"))
        .arg("--check")
        .output()
        .expect("bash runs tests/k8s/build.sh");
    if !check.status.success() {
        return Err(format!(
            "{} (tests/run.sh runs it before the tests)",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8(check.stdout).unwrap().trim(),
    ))
}

fn start(bin: &Path) -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-k8s-")
        .tempdir()
        .unwrap()
        .keep();
    let up = Command::new("bash")
        .arg(repo().join("tests/k8s/cluster.sh"))
        .args(["up".as_ref(), dir.as_os_str(), "--controllers".as_ref()])
        .arg("--until-exit")
        .arg(std::process::id().to_string())
        .env("BINFMTD_K8S_BIN", bin)
        .output()
        .expect("bash runs tests/k8s/cluster.sh");
    assert!(
        up.status.success(),
        "tests/k8s/cluster.sh up {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let port = std::fs::read_to_string(dir.join("apiserver.port")).unwrap();
    Cluster {
        kubeconfig: dir.join("kubeconfig"),
        kubectl: bin.join("kubectl"),
        port: port.trim().parse().unwrap(),
        ca_pem: std::fs::read_to_string(dir.join("pki/ca.crt")).unwrap(),
        dir,
    }
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Kubectl {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    #[track_caller]
    pub fn success(self) -> Kubectl {
        assert!(self.ok, "kubectl failed:\n{}{}", self.stdout, self.stderr);
        self
    }
}

impl Cluster {
    /// kubectl as cluster-admin.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Kubectl {
        self.kubectl_with(&self.kubeconfig, args, stdin)
    }

    /// kubectl with another kubeconfig.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Kubectl {
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(input);
        let out: Output = child.wait_with_output().unwrap();
        Kubectl {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// kubectl authenticated by a bearer token (and nothing else from the admin kubeconfig).
    pub fn kubectl_token(&self, token: &str, args: &[&str]) -> Kubectl {
        // One file per call: tests on other threads write theirs at the same time.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.join(format!("token-{n}.kubeconfig"));
        std::fs::write(&file, self.token_kubeconfig(token)).unwrap();
        self.kubectl_with(&file, args, None)
    }

    /// A kubeconfig that authenticates with `token`.
    pub fn token_kubeconfig(&self, token: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context: {{cluster: local, user: u}}\ncurrent-context: local\n",
            self.port
        )
    }

    /// A kubeconfig with a client certificate for NAME in GROUP (e.g. system:node:a in
    /// system:nodes), signed by the cluster CA.
    pub fn user_kubeconfig(&self, name: &str, group: &str) -> PathBuf {
        let out = Command::new("bash")
            .arg(repo().join("tests/k8s/cluster.sh"))
            .args([
                "user".as_ref(),
                self.dir.as_os_str(),
                name.as_ref(),
                group.as_ref(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }

    /// A Node object NAME (what a kubelet would register), with `labels`.
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<_, _> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let node = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
        });
        self.kubectl(&["create", "-f", "-"], Some(&node.to_string()))
            .success();
    }

    /// A Node object with `labels` that the scheduler binds pods to: capacity and a Ready
    /// condition in its status, as a kubelet would report them (none runs here).
    pub fn ready_node(&self, name: &str, labels: &[(&str, &str)]) {
        self.add_node(name, labels);
        let status = serde_json::json!({"status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                             "message": "test node", "lastHeartbeatTime": null}],
        }});
        let patch = status.to_string();
        self.kubectl(
            &[
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
        .success();
    }

    /// The Events on the pod of UID `uid` in `ns` so far, read through the API.
    pub fn pod_events(&self, ns: &str, uid: &str) -> Vec<serde_json::Value> {
        let selector = format!("involvedObject.uid={uid}");
        let out = self
            .kubectl(
                &[
                    "get",
                    "events",
                    "-n",
                    ns,
                    "--field-selector",
                    &selector,
                    "-o",
                    "json",
                ],
                None,
            )
            .success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// A Pod of service account `sa` in `ns` on `node`. No kubelet runs it: being bound to the
    /// node is all a token needs to carry the node-name claim.
    /// Returns the pod's UID.
    pub fn pod_on(&self, ns: &str, sa: &str, name: &str, node: &str) -> String {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"serviceAccountName": sa, "nodeName": node,
                     "automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "registry.invalid/none:1"}]}
        });
        let created = self
            .kubectl(
                &["create", "-f", "-", "-o", "jsonpath={.metadata.uid}"],
                Some(&pod.to_string()),
            )
            .success();
        created.stdout.trim().to_string()
    }

    /// A token of `sa` in `ns`: bound to Pod `pod` (as the kubelet requests for a projected
    /// token; it carries the pod's node), or unbound.
    pub fn token(&self, ns: &str, sa: &str, pod: Option<&str>) -> String {
        let mut args = vec!["create", "token", sa, "-n", ns];
        if let Some(p) = pod {
            args.extend(["--bound-object-kind=Pod", "--bound-object-name", p]);
        }
        self.kubectl(&args, None)
            .success()
            .stdout
            .trim()
            .to_string()
    }

    /// Apply YAML as cluster-admin.
    pub fn apply(&self, yaml: &str) {
        self.kubectl(&["apply", "-f", "-"], Some(yaml)).success();
    }

    /// The labels of node NAME.
    pub fn labels(&self, node: &str) -> serde_json::Map<String, serde_json::Value> {
        let out = self
            .kubectl(&["get", "node", node, "-o", "json"], None)
            .success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// The audit log's events so far (one JSON object a line).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
