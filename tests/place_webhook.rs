//! The placement webhook, its certificate and leader election against a real kube-apiserver
//! (tests/k8s/cluster.sh): the component's MutatingWebhookConfiguration, re-pointed at the
//! webhook on loopback with the caBundle `cert::ensure_for` wrote, gates pods in an opted-in
//! namespace and in no other (not opted in, kube-system, its own); with the webhook down or
//! hanging, pods are created ungated (failurePolicy Ignore; the audit log says the call failed
//! open); two replicas racing `ensure` end with one certificate; a renewal keeps the CA; two
//! electors on a real Lease: one leader, release on shutdown, takeover after expiry. Without the
//! cluster: the HTTP protections (a slowloris client or a flood of idle connections does not
//! block /mutate) and the answers to bad requests.

mod common;
#[path = "place_webhook_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine;
use binfmtd::place::cert::{self, ServingCert};
use binfmtd::place::{lease::Elector, webhook};
use common::cluster::{cluster, Cluster};
use serde_json::{json, Value};

const GATE: &str = "binfmtd.io/placement";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn namespace(c: &Cluster, name: &str, labels: &[(&str, &str)]) {
    let labels: serde_json::Map<_, _> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels}})
        .to_string(),
    );
}

/// Create a pod and return it as the API server stored it. Retried while the namespace's
/// default ServiceAccount does not exist yet (the controller-manager creates it).
fn create_pod(c: &Cluster, ns: &str, name: &str, node: Option<&str>) -> Value {
    let mut spec = json!({"automountServiceAccountToken": false,
        "containers": [{"name": "c", "image": "registry.example/app:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl(&["create", "-o", "json", "-f", "-"], Some(&pod.to_string()));
        if out.ok {
            return serde_json::from_str(&out.stdout).unwrap();
        }
        assert!(
            out.stderr.contains("serviceaccount") && Instant::now() < until,
            "create pod {ns}/{name}: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn gates(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str().map(str::to_string))
        .collect()
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl(&a, None).success().stdout).unwrap()
}

/// The audit annotations of the (successful) create of pod `ns/name`.
fn audit_annotations(c: &Cluster, ns: &str, name: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let found = c.audit().into_iter().find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["namespace"] == ns
                && e["objectRef"]["name"] == name
                && e["stage"] == "ResponseComplete"
                // Not an attempt refused before the ServiceAccount existed.
                && e["responseStatus"]["code"] == 201
        });
        if let Some(e) = found {
            return e["annotations"].clone();
        }
        assert!(Instant::now() < until, "no audit event for pod {ns}/{name}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pods_are_gated_in_opted_in_namespaces_only() {
    let Some(c) = cluster() else { return };
    let rt = support::rt();
    let client = support::client(&rt, &c.kubeconfig);
    let (own, name) = ("pw-gate-own", "pw-gate");
    // Its own namespace opted in too: still never gated.
    namespace(c, own, &[(GATE, "enabled"), ("suite", name)]);
    let m = support::mwc(
        &support::component_webhook(c),
        name,
        "https://127.0.0.1:1/mutate",
        own,
    );
    c.apply(&m.to_string());

    let tls = rt
        .block_on(cert::ensure_for(
            client,
            own,
            "pw-gate-tls",
            "binfmtd-placement",
            name,
            &["127.0.0.1".to_string()],
        ))
        .unwrap();
    let stored = get_json(c, &["mutatingwebhookconfiguration", name]);
    assert_eq!(
        stored["webhooks"][0]["clientConfig"]["caBundle"],
        json!(b64(&tls.ca_pem))
    );
    let hook = webhook::spawn("127.0.0.1:0".parse().unwrap(), &tls, own.into()).unwrap();
    let url = format!("https://127.0.0.1:{}/mutate", hook.addr.port());
    let patch = json!([{"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": url}]);
    c.kubectl(
        &[
            "patch",
            "mutatingwebhookconfiguration",
            name,
            "--type=json",
            "-p",
            &patch.to_string(),
        ],
        None,
    )
    .success();

    namespace(c, "pw-gate-in", &[(GATE, "enabled"), ("suite", name)]);
    namespace(c, "pw-gate-out", &[("suite", name)]);
    c.kubectl(
        &[
            "label",
            "namespace",
            "kube-system",
            "--overwrite",
            "binfmtd.io/placement=enabled",
            "suite=pw-gate",
        ],
        None,
    )
    .success();

    // The API server picks the configuration up from its watch: wait for the first gated pod.
    let until = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let gated = loop {
        let pod = create_pod(c, "pw-gate-in", &format!("in-{n}"), None);
        if !gates(&pod).is_empty() {
            break pod;
        }
        assert!(
            Instant::now() < until,
            "no pod was gated within 30 s: {pod}"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(gates(&gated), [GATE]);
    let pod_name = gated["metadata"]["name"].as_str().unwrap().to_string();
    let notes = audit_annotations(c, "pw-gate-in", &pod_name);
    // Which index the configuration has depends on the others present (other tests').
    let mutation = notes
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("mutation.webhook.admission.k8s.io/"))
        .filter_map(|(_, v)| serde_json::from_str::<Value>(v.as_str()?).ok())
        .find(|m| m["configuration"] == name)
        .unwrap_or_default();
    assert_eq!(mutation["configuration"], name, "{notes}");
    assert_eq!(mutation["mutated"], true, "{notes}");
    let calls = hook.stats.reviews.get();
    assert!(calls >= 1);

    // A second pod there is gated at once; elsewhere, none is, and the webhook is not even
    // called (namespaceSelector, matchConditions).
    assert_eq!(
        gates(&create_pod(c, "pw-gate-in", "in-again", None)),
        [GATE]
    );
    for (ns, pod, node) in [
        ("pw-gate-out", "out", None),
        ("kube-system", "pw-gate-ks", None),
        (own, "own", None),
        ("pw-gate-in", "bound", Some("nowhere")),
    ] {
        let created = create_pod(c, ns, pod, node);
        assert_eq!(
            gates(&created),
            Vec::<String>::new(),
            "{ns}/{pod}: {created}"
        );
    }
    let stats = &hook.stats;
    let reviews = stats.reviews.get();
    assert_eq!(
        reviews,
        calls + 1,
        "only the opted-in pods reached the webhook"
    );
    assert_eq!(stats.gated.get(), reviews);
    c.kubectl(&["delete", "pod", "-n", "kube-system", "pw-gate-ks"], None);
    c.kubectl(
        &[
            "label",
            "namespace",
            "kube-system",
            "binfmtd.io/placement-",
            "suite-",
        ],
        None,
    )
    .success();
}

#[test]
fn with_the_webhook_down_or_hanging_pods_are_created_ungated() {
    let Some(c) = cluster() else { return };
    let now = cert::now();
    let names = cert::dns_names("binfmtd-placement", "pw-down", &["127.0.0.1".into()]);
    let tls = cert::generate("pw-down", &names, now).unwrap().serving;
    // Accepts and never answers: the API server gives up after timeoutSeconds.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = hang.incoming().take(64).collect();
        std::thread::sleep(Duration::from_secs(120));
        drop(conns);
    });
    for (name, port) in [("pw-down", support::closed_port()), ("pw-hang", hang_port)] {
        let url = format!("https://127.0.0.1:{port}/mutate");
        let mut m = support::mwc(&support::component_webhook(c), name, &url, "pw-down-own");
        m["webhooks"][0]["clientConfig"]["caBundle"] = json!(b64(&tls.ca_pem));
        c.apply(&m.to_string());
        let ns = format!("{name}-in");
        namespace(c, &ns, &[(GATE, "enabled"), ("suite", name)]);
        // Until the API server has the configuration, a create does not call it: repeat until
        // the audit log says the call failed open.
        let until = Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            let pod = format!("p-{n}");
            let t = Instant::now();
            let created = create_pod(c, &ns, &pod, None);
            let took = t.elapsed();
            assert_eq!(gates(&created), Vec::<String>::new(), "{created}");
            let notes = audit_annotations(c, &ns, &pod);
            let failed_open = failed_open(&notes, name);
            if let Some(w) = failed_open {
                assert_eq!(w, "gate.placement.binfmtd.io", "{notes}");
                if name == "pw-hang" {
                    // timeoutSeconds: 2 in the component.
                    assert!(took >= Duration::from_millis(1900), "{took:?}");
                }
                break;
            }
            assert!(
                Instant::now() < until,
                "{name}: the call never failed open: {notes}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The webhook of configuration `name` that failed open, from a create's audit annotations
/// (`mutation.webhook...`/`failed-open.mutation.webhook...` share their round_R_index_I suffix;
/// the index depends on the other configurations present).
fn failed_open(notes: &Value, name: &str) -> Option<String> {
    let notes = notes.as_object()?;
    notes.iter().find_map(|(k, v)| {
        let suffix = k.strip_prefix("mutation.webhook.admission.k8s.io/")?;
        let m: Value = serde_json::from_str(v.as_str()?).ok()?;
        if m["configuration"] != name {
            return None;
        }
        let key = format!("failed-open.mutation.webhook.admission.k8s.io/{suffix}");
        notes.get(&key)?.as_str().map(str::to_string)
    })
}

fn ensure_in_thread(
    c: &'static Cluster,
    ns: &str,
    secret: &str,
    mwc: &str,
    go: Arc<Barrier>,
) -> std::thread::JoinHandle<ServingCert> {
    let (ns, secret, mwc) = (ns.to_string(), secret.to_string(), mwc.to_string());
    std::thread::spawn(move || {
        let rt = support::rt();
        let client = support::client(&rt, &c.kubeconfig);
        go.wait();
        rt.block_on(cert::ensure(
            client,
            &ns,
            &secret,
            "binfmtd-placement",
            &mwc,
        ))
        .unwrap()
    })
}

#[test]
fn two_replicas_racing_end_with_one_certificate_and_renewal_keeps_the_ca() {
    let Some(c) = cluster() else { return };
    let (ns, name) = ("pw-race", "pw-race");
    namespace(c, ns, &[]);
    let mut m = support::mwc(
        &support::component_webhook(c),
        name,
        "https://127.0.0.1:1/mutate",
        ns,
    );
    let mut second = m["webhooks"][0].clone();
    second["name"] = json!("second.placement.binfmtd.io");
    m["webhooks"].as_array_mut().unwrap().push(second);
    c.apply(&m.to_string());
    let bundles = |c: &Cluster| -> Vec<Value> {
        let m = get_json(c, &["mutatingwebhookconfiguration", name]);
        m["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["clientConfig"]["caBundle"].clone())
            .collect()
    };
    for round in 0..3 {
        let secret = format!("pw-race-tls-{round}");
        let go = Arc::new(Barrier::new(2));
        let a = ensure_in_thread(c, ns, &secret, name, go.clone());
        let b = ensure_in_thread(c, ns, &secret, name, go);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a == b, "round {round}: two certificates");
        let s = get_json(c, &["secret", "-n", ns, &secret]);
        let tls_crt = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["tls.crt"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(tls_crt).unwrap(), a.cert_pem);
        assert_eq!(bundles(c), vec![json!(b64(&a.ca_pem)); 2], "round {round}");
    }

    // Renewal: the Secret says the certificate ends within RENEW_BEFORE.
    let rt = support::rt();
    let client = support::client(&rt, &c.kubeconfig);
    let secret = "pw-race-tls-2";
    let ensure = || {
        rt.block_on(cert::ensure(
            client.clone(),
            ns,
            secret,
            "binfmtd-placement",
            name,
        ))
        .unwrap()
    };
    let before = ensure();
    let version = |c: &Cluster| {
        get_json(c, &["mutatingwebhookconfiguration", name])["metadata"]["resourceVersion"].clone()
    };
    let mwc_version = version(c);
    let soon = format!("{}={}", cert::NOT_AFTER, cert::now() + 86_400);
    c.kubectl(
        &["annotate", "secret", "-n", ns, secret, "--overwrite", &soon],
        None,
    )
    .success();
    let after = ensure();
    assert_ne!(after.cert_pem, before.cert_pem);
    assert_eq!(after.ca_pem, before.ca_pem);
    assert!(after.not_after >= cert::now() + cert::SERVING_VALIDITY - 60);
    assert_eq!(ensure(), after, "a fresh certificate is used as it is");
    assert_eq!(
        version(c),
        mwc_version,
        "the caBundle did not change, so it was not patched"
    );

    // An unreadable Secret is replaced with a new CA, and the caBundle follows.
    c.kubectl(
        &[
            "annotate",
            "secret",
            "-n",
            ns,
            secret,
            &format!("{}-", cert::CA_NOT_AFTER),
        ],
        None,
    )
    .success();
    let regenerated = ensure();
    assert_ne!(regenerated.ca_pem, after.ca_pem);
    assert_eq!(bundles(c), vec![json!(b64(&regenerated.ca_pem)); 2]);

    // `keep`, as the component runs it, reissues once renewal is due and hands the new
    // certificate over (the webhook reloads it); rounds with nothing to do hand nothing over.
    c.kubectl(
        &["annotate", "secret", "-n", ns, secret, "--overwrite", &soon],
        None,
    )
    .success();
    let (tx, rx) = std::sync::mpsc::channel();
    let keeping = cert::keep(
        client.clone(),
        ns,
        secret,
        "binfmtd-placement",
        name,
        &[],
        regenerated.clone(),
        Duration::from_millis(200),
        |c: &ServingCert| tx.send(c.clone()).unwrap(),
    );
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), keeping).await });
    let handed: Vec<ServingCert> = rx.try_iter().collect();
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert_eq!(handed[0].ca_pem, regenerated.ca_pem);
    assert_ne!(handed[0].cert_pem, regenerated.cert_pem);
}

/// An elector on its own thread until `stop` fires; its leadership as it changes.
struct Candidate {
    leader: tokio::sync::watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Candidate {
    fn start(
        c: &'static Cluster,
        ns: &str,
        lease: &str,
        id: &str,
        duration: Duration,
    ) -> Candidate {
        let (ns, lease, id) = (ns.to_string(), lease.to_string(), id.to_string());
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = support::rt();
            let client = support::client(&rt, &c.kubeconfig);
            let e = Elector::new(client, &ns, &lease, &id)
                .with_timing(duration, Duration::from_millis(200));
            tx.send(e.subscribe()).unwrap();
            rt.block_on(e.run(async {
                let _ = stopped.await;
            }));
        });
        Candidate {
            leader: rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
    fn shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

fn holder(c: &Cluster, ns: &str, lease: &str) -> Value {
    get_json(c, &["lease", "-n", ns, lease])["spec"].clone()
}

#[test]
fn leader_election_one_leader_release_on_shutdown_takeover_after_expiry() {
    let Some(c) = cluster() else { return };
    let ns = "pw-lease";
    namespace(c, ns, &[]);
    // A long duration: a takeover within it can only be the release.
    let long = Duration::from_secs(30);
    let mut a = Candidate::start(c, ns, "pw-lease", "a", long);
    let mut b = Candidate::start(c, ns, "pw-lease", "b", long);
    wait_for("a leader", Duration::from_secs(10), || {
        a.is_leader() || b.is_leader()
    });
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (leader, follower, id) = if a.is_leader() {
        (&mut a, &mut b, "a")
    } else {
        (&mut b, &mut a, "b")
    };
    assert!(!follower.is_leader());
    assert_eq!(holder(c, ns, "pw-lease")["holderIdentity"], id);
    leader.shutdown();
    let took = wait_for(
        "the follower leads after the release",
        Duration::from_secs(10),
        || follower.is_leader(),
    );
    assert!(took < long, "{took:?}");
    let other = if id == "a" { "b" } else { "a" };
    let spec = holder(c, ns, "pw-lease");
    assert_eq!(spec["holderIdentity"], other);
    assert_eq!(spec["leaseTransitions"], 1);
    follower.shutdown();
    assert!(
        holder(c, ns, "pw-lease").get("holderIdentity").is_none(),
        "released on shutdown"
    );

    // Takeover after expiry: "c" takes the Lease once and stops renewing (a crash).
    let rt = support::rt();
    let client = support::client(&rt, &c.kubeconfig);
    let short = Duration::from_secs(4);
    let crashed =
        Elector::new(client, ns, "pw-lease-2", "c").with_timing(short, Duration::from_millis(200));
    assert!(rt.block_on(crashed.try_once()).unwrap());
    let held_at = Instant::now();
    let mut d = Candidate::start(c, ns, "pw-lease-2", "d", short);
    wait_for("d leads after the expiry", Duration::from_secs(15), || {
        d.is_leader()
    });
    assert!(
        held_at.elapsed() >= short - Duration::from_millis(500),
        "taken over before the Lease expired: {:?}",
        held_at.elapsed()
    );
    assert_eq!(holder(c, ns, "pw-lease-2")["holderIdentity"], "d");
    d.shutdown();
}

/// Reads one HTTP response (head, then Content-Length bytes): (code, head, body).
/// The API server reuses its connections: one TLS session carries many reviews (keep-alive),
/// and a later request on it still has only `DEADLINE` from its first bytes to its answer.
#[test]
fn one_connection_carries_many_reviews_and_a_stalled_later_request_is_cut_off() {
    let names = cert::dns_names("binfmtd-placement", "ns", &["127.0.0.1".into()]);
    let tls = cert::generate("ns", &names, cert::now()).unwrap().serving;
    let hook = webhook::spawn("127.0.0.1:0".parse().unwrap(), &tls, "binfmtd".into()).unwrap();
    let client = support::tls_client(&tls.ca_pem);
    let mut kept = support::Kept::connect(&client, hook.addr, "binfmtd-placement.ns.svc").unwrap();
    for i in 0..3 {
        let body = support::review("app", "p", &format!("k{i}"));
        let (code, head, body) = kept.post("/mutate", &body).unwrap();
        assert_eq!(code, 200, "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["response"]["uid"], format!("k{i}"));
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        // Idle between reviews, as the API server's pool is: the connection stays.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(hook.stats.reviews.get(), 3);
    // A fourth request that never finishes its head: closed at the deadline, not kept.
    let t = Instant::now();
    let mut s = kept.stream();
    s.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let end = s.read(&mut buf);
    assert!(
        matches!(end, Ok(0) | Err(_)),
        "a stalled request is answered with nothing: {end:?}"
    );
    let held = t.elapsed();
    assert!(
        held >= webhook::DEADLINE - Duration::from_millis(500)
            && held < webhook::DEADLINE + Duration::from_secs(2),
        "a stalled request on a kept-alive connection was held {held:?}"
    );
}

/// A connection that sends a few bytes of a TLS handshake, then one byte every 300 ms.
fn drip(addr: SocketAddr) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[0x16, 0x03]).unwrap();
        while s.write_all(&[0x01]).is_ok() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(300));
        }
        t.elapsed()
    })
}

#[test]
fn slow_and_idle_clients_do_not_block_mutate_and_bad_requests_are_refused() {
    let names = cert::dns_names("binfmtd-placement", "ns", &["127.0.0.1".into()]);
    let tls = cert::generate("ns", &names, cert::now()).unwrap().serving;
    let hook = webhook::spawn("127.0.0.1:0".parse().unwrap(), &tls, "binfmtd".into()).unwrap();
    let client = support::tls_client(&tls.ca_pem);
    let name = "binfmtd-placement.ns.svc";
    let drips: Vec<_> = (0..16).map(|_| drip(hook.addr)).collect();
    // More idle connections than the cap (64): the oldest are shed.
    let idle: Vec<_> = (0..100)
        .map(|_| TcpStream::connect(hook.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..5 {
        let t = Instant::now();
        let (code, body) = support::https(
            &client,
            hook.addr,
            name,
            "POST",
            "/mutate",
            &support::review("app", "p", &format!("u{i}")),
        )
        .unwrap();
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["response"]["uid"], format!("u{i}"));
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        // Answered while the slow clients still hold their connections (their deadline is 3 s).
        assert!(t.elapsed() < webhook::DEADLINE, "{:?}", t.elapsed());
    }
    for d in drips {
        let held = d.join().unwrap();
        assert!(
            held < webhook::DEADLINE + Duration::from_secs(2),
            "a dripping client held on for {held:?}"
        );
    }
    drop(idle);
    let long_len = format!("{}", webhook::body::MAX_BODY + 1);
    let cases: &[(&str, &str, &[u8], u16)] = &[
        ("GET", "/healthz", b"", 200),
        ("GET", "/mutate", b"", 405),
        ("POST", "/other", b"{}", 404),
        ("POST", "/mutate", b"not json", 400),
        (
            "POST",
            "/mutate",
            b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}",
            400,
        ),
    ];
    for (method, path, body, want) in cases {
        let (code, text) = support::https(&client, hook.addr, name, method, path, body).unwrap();
        assert_eq!(
            code,
            *want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    // A Content-Length over the cap is refused before any body is read.
    let (code, _) = raw(
        &client,
        hook.addr,
        name,
        &format!("POST /mutate HTTP/1.1\r\nContent-Length: {long_len}\r\n\r\n"),
    );
    assert_eq!(code, 413);
    let (code, _) = raw(
        &client,
        hook.addr,
        name,
        "POST /mutate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(code, 411);
    // The wrong name for the certificate: the client refuses the server.
    assert!(support::https(&client, hook.addr, "other.ns.svc", "GET", "/healthz", b"").is_err());

    // A renewed certificate (here from a new CA, to tell them apart) is served from the next
    // connection on.
    let renewed = cert::generate("ns", &names, cert::now()).unwrap().serving;
    hook.reload(&renewed).unwrap();
    let new_client = support::tls_client(&renewed.ca_pem);
    let (code, _) = support::https(&new_client, hook.addr, name, "GET", "/healthz", b"").unwrap();
    assert_eq!(code, 200);
    assert!(support::https(&client, hook.addr, name, "GET", "/healthz", b"").is_err());
}

/// Send `head` as is over TLS; the status code.
fn raw(
    client: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
    head: &str,
) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut sock = TcpStream::connect(addr).unwrap();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(client.clone(), server).unwrap();
    let mut s = rustls::Stream::new(&mut conn, &mut sock);
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    (
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        out,
    )
}
