//! `binfmtd place` (the controller half) against the real API server and scheduler, and
//! real registries on loopback: gated pods are decided, rewritten where an index would not
//! pull, and bound by the real scheduler only to nodes that can run them, native first.
//! Registry down, auth refused or a malformed image: the gate is removed with nothing changed and a Warning
//! Event says why. Events are read back through the API.
//!
//! The nodes are Node objects without kubelets (a mixed cluster: amd64 native; arm64 that
//! emulates amd64, as `binfmtd run --node-labels` labels it; arm64 that emulates nothing),
//! with capacity set in their status so the scheduler binds to them. The node lifecycle
//! controller taints kubelet-less nodes unreachable, so every test pod tolerates that.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::cluster::{cluster, Cluster};
use common::registry::{registry, Auth, Registry};

const GATE: &str = "binfmtd.io/placement";
const AMD64: &str = "amd64-native";
const ARM64_EMU: &str = "arm64-emulates-amd64";
const ARM64: &str = "arm64-plain";

struct Env {
    k: &'static Cluster,
    anon: &'static Registry,
    basic: &'static Registry,
    token: &'static Registry,
    /// The controller process, killed by its shell when this test binary exits.
    _controller: Mutex<Child>,
    metrics_port: u16,
}

static ENV: OnceLock<Option<Env>> = OnceLock::new();

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env() -> Option<&'static Env> {
    ENV.get_or_init(|| {
        let k = cluster()?;
        let anon = registry(Auth::Anonymous)?;
        let basic = registry(Auth::Basic)?;
        let token = registry(Auth::Token)?;
        k.ready_node(
            AMD64,
            &[
                ("kubernetes.io/arch", "amd64"),
                ("binfmtd.io/amd64", "native"),
            ],
        );
        k.ready_node(
            ARM64_EMU,
            &[
                ("kubernetes.io/arch", "arm64"),
                ("binfmtd.io/arm64", "native"),
                ("binfmtd.io/amd64", "emulated"),
            ],
        );
        k.ready_node(ARM64, &[("kubernetes.io/arch", "arm64")]);
        let metrics_port = free_port();
        let child = spawn_place(
            k,
            &format!(
                "--namespace default --no-webhook --listen 127.0.0.1:{metrics_port} \
                 --registry-ca {} --registry-timeout 5s --identity test-controller",
                anon.ca_path.display()
            ),
            "place-controller.log",
        );
        Some(Env {
            k,
            anon,
            basic,
            token,
            _controller: Mutex::new(child),
            metrics_port,
        })
    })
    .as_ref()
}

/// `binfmtd place ARGS` against the cluster, its stderr in the cluster's directory as `log`;
/// its shell ends it when this test binary exits (however it exits).
fn spawn_place(k: &Cluster, args: &str, log: &str) -> Child {
    let cmd = format!(
        "{bin} place --kubeconfig {kc} {args} & c=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done; kill $c 2>/dev/null",
        bin = env!("CARGO_BIN_EXE_binfmtd"),
        kc = k.kubeconfig.display(),
        parent = std::process::id(),
    );
    let log = std::fs::File::create(k.dir.join(log)).unwrap();
    Command::new("sh")
        .args(["-c", &cmd])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn namespace(e: &Env, ns: &str) {
    e.k.kubectl(&["create", "namespace", ns], None).success();
}

/// A gated pod (as the webhook would create it) with `containers` (name, image).
fn pod(ns: &str, name: &str, containers: &[(&str, &str)], extra: Value) -> Value {
    let cs: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "schedulingGates": [{"name": GATE}],
            "tolerations": [
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}
            ],
            "containers": cs,
        }
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            p["spec"][k] = v;
        }
    }
    p
}

fn create(e: &Env, p: &Value) {
    e.k.kubectl(&["create", "-f", "-"], Some(&p.to_string()))
        .success();
}

fn get(e: &Env, ns: &str, name: &str) -> Value {
    let out =
        e.k.kubectl(&["get", "pod", "-n", ns, name, "-o", "json"], None)
            .success();
    serde_json::from_str(&out.stdout).unwrap()
}

fn controller_log(e: &Env) -> String {
    std::fs::read_to_string(e.k.dir.join("place-controller.log")).unwrap_or_default()
}

/// Wait for the pod to be bound (spec.nodeName); the pod as bound.
fn bound(e: &Env, ns: &str, name: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let p = get(e, ns, name);
        if p["spec"]["nodeName"].is_string() {
            return p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "pod {ns}/{name} not bound after 90 s: {p:#}\ncontroller log:\n{}",
            controller_log(e)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The placement Event of the pod, read through the API: (type, reason, message).
fn event(e: &Env, ns: &str, name: &str) -> (String, String, String) {
    let t0 = Instant::now();
    loop {
        let out =
            e.k.kubectl(
                &[
                    "get",
                    "events",
                    "-n",
                    ns,
                    "--field-selector",
                    &format!("involvedObject.name={name}"),
                    "-o",
                    "json",
                ],
                None,
            )
            .success();
        let list: Value = serde_json::from_str(&out.stdout).unwrap();
        let found = list["items"].as_array().unwrap().iter().find(|ev| {
            ev["reportingComponent"] == "binfmtd-placement"
                || ev["source"]["component"] == "binfmtd-placement"
        });
        if let Some(ev) = found {
            let s = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
            return (s("type"), s("reason"), s("message"));
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no placement Event for {ns}/{name}: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A namespace `ns` holding one gated pod "p" whose container runs `img`; the pod as bound.
fn placed_alone(e: &Env, ns: &str, img: &str) -> Value {
    namespace(e, ns);
    create(e, &pod(ns, "p", &[("app", img)], json!({})));
    bound(e, ns, "p")
}

fn gates(p: &Value) -> Value {
    p["spec"]["schedulingGates"].clone()
}

fn image(p: &Value, i: usize) -> &str {
    p["spec"]["containers"][i]["image"].as_str().unwrap()
}

#[test]
fn an_amd64_only_index_is_pinned_and_runs_native_first() {
    let Some(e) = env() else { return };
    let img = e.anon.reference("amd64only:v1");
    let p = placed_alone(e, "amd64only", &img);
    assert_eq!(p["spec"]["nodeName"], AMD64, "native preferred");
    assert!(gates(&p).is_null(), "gate removed: {p:#}");
    let pinned = format!(
        "{}/amd64only@{}",
        e.anon.host,
        e.anon.platform_digest("amd64only:v1", "amd64")
    );
    assert_eq!(
        image(&p, 0),
        pinned,
        "the index would not pull on the arm64 emulator"
    );
    let originals: Value = serde_json::from_str(
        p["metadata"]["annotations"]["binfmtd.io/original-images"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(originals, json!({"app": img}));
    let required =
        &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        required["nodeSelectorTerms"].as_array().unwrap().len(),
        2,
        "native OR emulates: {required:#}"
    );
    let preferred =
        &p["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(preferred[0]["weight"], 100);
    let (ty, reason, msg) = event(e, "amd64only", "p");
    assert_eq!((ty.as_str(), reason.as_str()), ("Normal", "Placed"));
    assert!(
        msg.starts_with("runs amd64;")
            && msg.contains("has no arm64")
            && msg.contains("native preferred"),
        "{msg}"
    );
}

#[test]
fn kept_off_the_native_node_it_lands_on_the_emulator_never_the_plain_arm64() {
    let Some(e) = env() else { return };
    namespace(e, "emulated");
    // The pod's own term excludes the amd64 node by name (not an arch constraint).
    let not_amd64 = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": [AMD64]}]}]}}}});
    for i in 0..3 {
        let name = format!("p{i}");
        create(
            e,
            &pod(
                "emulated",
                &name,
                &[("app", &e.anon.reference("amd64only:v1"))],
                not_amd64.clone(),
            ),
        );
    }
    for i in 0..3 {
        let p = bound(e, "emulated", &format!("p{i}"));
        assert_eq!(p["spec"]["nodeName"], ARM64_EMU, "{p:#}");
        let terms = &p["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(
            terms.as_array().unwrap().len(),
            1,
            "the pod's one term kept, a requirement added: {terms:#}"
        );
        assert_eq!(terms[0]["matchExpressions"][0]["key"], "binfmtd.io/amd64");
    }
}

#[test]
fn a_single_manifest_is_placed_but_not_rewritten() {
    let Some(e) = env() else { return };
    let img = e.anon.reference("single:v1");
    let p = placed_alone(e, "single", &img);
    assert_eq!(image(&p, 0), img, "a single manifest pulls on any node");
    assert_eq!(p["spec"]["nodeName"], AMD64);
    assert!(p["spec"]["affinity"]["nodeAffinity"].is_object());
    assert_eq!(event(e, "single", "p").1, "Placed");
}

#[test]
fn a_multi_arch_index_needs_nothing() {
    let Some(e) = env() else { return };
    let img = e.anon.reference("multi:v1");
    let p = placed_alone(e, "multi", &img);
    assert_eq!(image(&p, 0), img);
    assert!(p["spec"]["affinity"].is_null(), "{p:#}");
    let (ty, reason, msg) = event(e, "multi", "p");
    assert_eq!(
        (ty.as_str(), reason.as_str()),
        ("Normal", "PlacementNotNeeded")
    );
    assert!(
        msg.contains("offer every node's architecture (amd64, arm64)"),
        "{msg}"
    );
}

#[test]
fn images_without_a_common_arch_are_left_alone_with_the_reason() {
    let Some(e) = env() else { return };
    namespace(e, "nocommon");
    let (a, b) = (
        e.anon.reference("amd64only:v1"),
        e.anon.reference("arm64only:v1"),
    );
    create(e, &pod("nocommon", "p", &[("a", &a), ("b", &b)], json!({})));
    let p = bound(e, "nocommon", "p");
    assert_eq!((image(&p, 0), image(&p, 1)), (a.as_str(), b.as_str()));
    assert!(p["spec"]["affinity"].is_null());
    let (ty, reason, msg) = event(e, "nocommon", "p");
    assert_eq!((ty.as_str(), reason.as_str()), ("Warning", "NotPlaced"));
    assert!(
        msg.contains("share no architecture") && msg.ends_with("nothing changed"),
        "{msg}"
    );
}

#[test]
fn registry_down_auth_refused_or_a_malformed_image_removes_the_gate_unchanged_and_says_why() {
    let Some(e) = env() else { return };
    namespace(e, "failures");
    let down = format!("127.0.0.1:{}/gone:v1", free_port());
    // An image no other test resolves with credentials: platforms are cached whoever's
    // secret resolved them (the kubelet still checks the pull).
    let private = e.basic.reference("arm64only:v1");
    create(e, &pod("failures", "down", &[("app", &down)], json!({})));
    create(
        e,
        &pod("failures", "refused", &[("app", &private)], json!({})),
    );
    // A manifest the registry accepted whose config blob is not an image config.
    let broken = e.anon.reference("broken:v1");
    create(
        e,
        &pod("failures", "broken", &[("app", &broken)], json!({})),
    );
    for (name, img, words) in [
        ("down", &down, "unreachable"),
        ("refused", &private, "refused access"),
        ("broken", &broken, "not valid JSON"),
    ] {
        let p = bound(e, "failures", name);
        assert_eq!(image(&p, 0), img.as_str());
        assert!(p["spec"]["affinity"].is_null(), "{p:#}");
        let (ty, reason, msg) = event(e, "failures", name);
        assert_eq!(
            (ty.as_str(), reason.as_str()),
            ("Warning", "PlatformsUnknown"),
            "{msg}"
        );
        assert!(
            msg.contains(words) && msg.ends_with("nothing changed"),
            "{name}: {msg}"
        );
    }
}

fn pull_secret(e: &Env, ns: &str, name: &str, r: &Registry) {
    let s = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {".dockerconfigjson": r.dockerconfigjson()}});
    e.k.kubectl(&["create", "-f", "-"], Some(&s.to_string()))
        .success();
}

#[test]
fn pull_secrets_of_the_pod_and_of_its_service_account_open_private_registries() {
    let Some(e) = env() else { return };
    namespace(e, "private");
    pull_secret(e, "private", "basic-pull", e.basic);
    pull_secret(e, "private", "token-pull", e.token);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller", "namespace": "private"},
        "imagePullSecrets": [{"name": "token-pull"}]});
    e.k.kubectl(&["create", "-f", "-"], Some(&sa.to_string()))
        .success();
    let basic = e.basic.reference("amd64only:v1");
    create(
        e,
        &pod(
            "private",
            "basic",
            &[("app", &basic)],
            json!({"imagePullSecrets": [{"name": "basic-pull"}]}),
        ),
    );
    let token = e.token.reference("amd64only:v1");
    create(
        e,
        &pod(
            "private",
            "token",
            &[("app", &token)],
            json!({"serviceAccountName": "puller"}),
        ),
    );
    for (name, r) in [("basic", e.basic), ("token", e.token)] {
        let p = bound(e, "private", name);
        let pinned = format!(
            "{}/amd64only@{}",
            r.host,
            r.platform_digest("amd64only:v1", "amd64")
        );
        assert_eq!(image(&p, 0), pinned, "{name}");
        assert_eq!(event(e, "private", name).1, "Placed");
    }
}

#[test]
fn decisions_are_counted_by_outcome_on_metrics() {
    let Some(e) = env() else { return };
    let before = placed_total(e);
    namespace(e, "metrics");
    create(
        e,
        &pod(
            "metrics",
            "p",
            &[("app", &e.anon.reference("single-arm64:v1"))],
            json!({}),
        ),
    );
    let p = bound(e, "metrics", "p");
    let node = p["spec"]["nodeName"].as_str().unwrap();
    assert!([ARM64, ARM64_EMU].contains(&node), "arm64 natively: {node}");
    // Other tests' pods are decided by the same controller meanwhile: at least this one more.
    let (after, body) = (placed_total(e), metrics(e));
    assert!(after >= before + 1.0, "placed {before} -> {after}");
    assert!(body.contains("binfmtd_placement_leader 1"), "{body}");
}

/// The controller's /metrics (waiting for it to listen: it may be starting still).
fn metrics(e: &Env) -> String {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", e.metrics_port)) {
            Ok(s) => break s,
            Err(_) if t0.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(err) => panic!("the controller's /metrics: {err}\n{}", controller_log(e)),
        }
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `binfmtd_placement_decisions_total{outcome="placed"}` now (0 before the first).
fn placed_total(e: &Env) -> f64 {
    let body = metrics(e);
    body.lines()
        .find_map(|l| l.strip_prefix("binfmtd_placement_decisions_total{outcome=\"placed\"} "))
        .map_or(0.0, |n| n.trim().parse().unwrap())
}

#[path = "place_webhook_support/mod.rs"]
mod support;

/// The webhook-only `binfmtd place` of the end-to-end test; its shell ends it with this binary.
static WEBHOOK: OnceLock<Mutex<Child>> = OnceLock::new();

/// The whole path: `binfmtd place --no-controller` (the webhook, its certificate and the
/// caBundle it keeps) gates a pod created in an opted-in namespace; the controller places it.
/// A namespace without the label is not gated.
#[test]
fn the_webhook_gates_and_the_controller_places_end_to_end() {
    let Some(e) = env() else { return };
    let (own, name) = ("e2e-own", "e2e-placement");
    e.k.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": own}}).to_string(),
    );
    e.k.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e",
            "labels": {GATE: "enabled", "suite": name}}})
        .to_string(),
    );
    e.k.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e-out",
        "labels": {"suite": name}}})
        .to_string(),
    );
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/mutate");
    e.k.apply(&support::mwc(&support::component_webhook(e.k), name, &url, own).to_string());
    let child = spawn_place(
        e.k,
        &format!(
            "--namespace {own} --no-controller --webhook-listen 127.0.0.1:{port} --listen 127.0.0.1:{} \
             --webhook-configuration {name} --tls-secret e2e-tls --cert-extra-name 127.0.0.1",
            free_port()
        ),
        "place-webhook.log",
    );
    WEBHOOK.set(Mutex::new(child)).expect("one end-to-end test");
    // Ready once the caBundle is in the configuration and the endpoint answers a pod create.
    let t0 = Instant::now();
    loop {
        let m =
            e.k.kubectl(
                &["get", "mutatingwebhookconfiguration", name, "-o", "json"],
                None,
            )
            .success();
        let m: Value = serde_json::from_str(&m.stdout).unwrap();
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if m["webhooks"][0]["clientConfig"]["caBundle"].is_string() && listening {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "webhook not up: {}",
            std::fs::read_to_string(e.k.dir.join("place-webhook.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let img = e.anon.reference("amd64only:v1");
    let mut p = pod("e2e", "p", &[("app", &img)], json!({}));
    p["spec"].as_object_mut().unwrap().remove("schedulingGates");
    let created =
        e.k.kubectl(&["create", "-f", "-", "-o", "json"], Some(&p.to_string()))
            .success();
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(
        gates(&created),
        json!([{"name": GATE}]),
        "gated at admission"
    );
    let p = bound(e, "e2e", "p");
    assert_eq!(p["spec"]["nodeName"], AMD64);
    assert_eq!(
        image(&p, 0),
        format!(
            "{}/amd64only@{}",
            e.anon.host,
            e.anon.platform_digest("amd64only:v1", "amd64")
        )
    );
    assert_eq!(event(e, "e2e", "p").1, "Placed");

    let mut q = pod("e2e-out", "q", &[("app", &img)], json!({}));
    q["spec"].as_object_mut().unwrap().remove("schedulingGates");
    let created =
        e.k.kubectl(&["create", "-f", "-", "-o", "json"], Some(&q.to_string()))
            .success();
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    assert!(gates(&created).is_null(), "not opted in: {created:#}");
    assert_eq!(image(&bound(e, "e2e-out", "q"), 0), img);
}
