//! daemonset/: the kustomizations build, validate against the Kubernetes API schemas, keep the
//! shape the node agent needs, and speak the binary's own command line and config format.
//! Needs kubectl (kustomize) and the Python packages that tests/deps.sh installs.

#[path = "daemonset/cli.rs"]
mod cli;
#[path = "daemonset/manifests.rs"]
mod manifests;
#[path = "daemonset/params.rs"]
mod params;
#[path = "daemonset/policy.rs"]
mod policy;

use manifests::{agent, find, kustomize, objects, tool, write_temp, BUILDS};
use serde_json::Value;

/// The oldest Kubernetes the manifests support (ValidatingAdmissionPolicy GA, node-bound tokens).
const OLDEST: &str = "1.30.0";

fn newest_known() -> String {
    let out = tool(
        "python3",
        &[
            "-c",
            "import kubernetes_validate.utils as u; print(u.latest_version())",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "kubernetes-validate is not installed (tests/deps.sh)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `kubernetes-validate --strict` for one version: (passed, output).
fn validate(file: &std::path::Path, version: &str) -> (bool, String) {
    let out = tool(
        "kubernetes-validate",
        &["--strict", "-k", version, file.to_str().unwrap()],
        None,
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_build_passes_strict_schema_validation_oldest_and_newest() {
    let dir = tempfile::tempdir().unwrap();
    let newest = newest_known();
    assert!(
        newest.as_str() > OLDEST,
        "kubernetes-validate knows only {newest}"
    );
    for build in BUILDS {
        let yaml = kustomize(build);
        let count = objects(&yaml).len();
        assert!(count >= 8, "{build}: only {count} objects");
        let file = write_temp(dir.path(), "all.yaml", &yaml);
        for version in [OLDEST, newest.as_str()] {
            let (ok, text) = validate(&file, version);
            assert!(ok, "{build} against {version}:\n{text}");
            let passed = text
                .lines()
                .filter(|l| l.contains(" passed for resource "))
                .count();
            assert_eq!(
                passed, count,
                "{build} against {version}: every object checked\n{text}"
            );
        }
    }
}

#[test]
fn strict_validation_catches_a_misspelt_field() {
    // The check above means something only if a typo in the DaemonSet fails it.
    let dir = tempfile::tempdir().unwrap();
    let yaml = kustomize("daemonset").replace("hostPID: true", "hostPid: true");
    let (ok, text) = validate(&write_temp(dir.path(), "typo.yaml", &yaml), OLDEST);
    assert!(!ok, "hostPid was accepted:\n{text}");
}

/// `run --exec-monitor`'s Events: list pods (to name a pod from its UID), create events;
/// nothing else, bound to binfmtd's service account alone.
#[test]
fn exec_monitor_rbac_is_list_pods_and_create_events() {
    let objs = objects(&kustomize("daemonset"));
    let role = find(&objs, "ClusterRole", "binfmtd-exec-monitor");
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        ])
    );
    let binding = find(&objs, "ClusterRoleBinding", "binfmtd-exec-monitor");
    assert_eq!(binding["roleRef"]["name"], "binfmtd-exec-monitor");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "binfmtd", "namespace": "binfmtd"}])
    );
}

#[test]
fn rbac_is_exactly_get_and_patch_on_nodes() {
    let objs = objects(&kustomize("daemonset"));
    let role = find(&objs, "ClusterRole", "binfmtd-node-labels");
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["apiGroups"], serde_json::json!([""]));
    assert_eq!(rules[0]["resources"], serde_json::json!(["nodes"]));
    assert_eq!(rules[0]["verbs"], serde_json::json!(["get", "patch"]));
    assert!(rules[0].get("resourceNames").is_none());
    let binding = find(&objs, "ClusterRoleBinding", "binfmtd-node-labels");
    assert_eq!(binding["roleRef"]["name"], "binfmtd-node-labels");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "binfmtd", "namespace": "binfmtd"}])
    );
    // No other grants anywhere in the output.
    let kinds: Vec<_> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for k in ["Role", "RoleBinding"] {
        assert!(!kinds.contains(&k), "unexpected {k}");
    }
    let binding = find(
        &objs,
        "ValidatingAdmissionPolicyBinding",
        "binfmtd-node-labels",
    );
    assert_eq!(binding["spec"]["policyName"], "binfmtd-node-labels");
    assert_eq!(
        binding["spec"]["validationActions"],
        serde_json::json!(["Deny"])
    );
    let ns = find(&objs, "Namespace", "binfmtd");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

fn pod_spec(objs: &[Value]) -> &Value {
    &find(objs, "DaemonSet", "binfmtd")["spec"]["template"]["spec"]
}

#[test]
fn the_daemonset_has_the_node_agent_shape() {
    for build in BUILDS {
        let objs = objects(&kustomize(build));
        let ds = find(&objs, "DaemonSet", "binfmtd");
        let spec = pod_spec(&objs);
        let c = agent(&objs);
        assert_eq!(spec["hostPID"], true, "{build}");
        assert_eq!(spec["priorityClassName"], "system-node-critical", "{build}");
        assert_eq!(
            spec["tolerations"],
            serde_json::json!([{"operator": "Exists"}]),
            "{build}"
        );
        assert_eq!(spec["serviceAccountName"], "binfmtd", "{build}");
        assert!(
            spec["terminationGracePeriodSeconds"].as_u64().unwrap() <= 10,
            "{build}"
        );
        assert_eq!(c["securityContext"]["privileged"], true, "{build}");
        let update = &ds["spec"]["updateStrategy"];
        assert_eq!(update["type"], "RollingUpdate");
        assert!(update["rollingUpdate"]["maxUnavailable"]
            .as_str()
            .unwrap()
            .ends_with('%'));
        // Requests sized for a small node, and a memory limit.
        let res = &c["resources"];
        let cpu = res["requests"]["cpu"].as_str().unwrap();
        assert!(
            cpu.ends_with('m') && cpu.trim_end_matches('m').parse::<u32>().unwrap() <= 20,
            "{cpu}"
        );
        let mem = res["requests"]["memory"].as_str().unwrap();
        assert!(
            mem.ends_with("Mi") && mem.trim_end_matches("Mi").parse::<u32>().unwrap() < 100,
            "{mem}"
        );
        assert!(
            res["limits"]["memory"].is_string(),
            "{build}: no memory limit"
        );
        // The cache is the host's /var/lib/binfmtd at the same path, so entries name host paths.
        let cache = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "cache")
            .unwrap();
        assert_eq!(cache["hostPath"]["path"], "/var/lib/binfmtd");
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "cache")
            .unwrap();
        assert_eq!(mount["mountPath"], "/var/lib/binfmtd");
        let node_name = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "NODE_NAME")
            .unwrap();
        assert_eq!(
            node_name["valueFrom"]["fieldRef"]["fieldPath"],
            "spec.nodeName"
        );
        // FROM scratch: no exec probes.
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert!(
                c[probe]["httpGet"].is_object(),
                "{build}: {probe} is not HTTP"
            );
        }
    }
}

/// No image is published: every build renders a placeholder that the API server refuses
/// (tests/k8s_manifests.rs applies it), until the user sets their own.
const PLACEHOLDER: &str = " UNSET-build-and-push-the-image-then-set-it-README-Run-on-EKS/binfmtd:";

#[test]
fn every_build_renders_the_unset_image_placeholder_and_no_selinux_options() {
    for build in BUILDS {
        let yaml = kustomize(build);
        let objs = objects(&yaml);
        let image = agent(&objs)["image"].as_str().unwrap();
        assert!(image.starts_with(PLACEHOLDER), "{build}: {image}");
        assert!(
            !yaml.contains("ghcr.io"),
            "{build} names an unpublished registry"
        );
        // containerd ignores seLinuxOptions for privileged containers (bottlerocket#3791), and
        // super_t on the unprivileged init container granted far more than it needs.
        assert!(!yaml.contains("seLinuxOptions"), "{build}");
    }
}

#[test]
fn every_build_admits_the_metrics_port_only_from_the_named_namespace() {
    for build in BUILDS {
        let objs = objects(&kustomize(build));
        let np = &find(&objs, "NetworkPolicy", "binfmtd-metrics")["spec"];
        let pod_labels =
            &find(&objs, "DaemonSet", "binfmtd")["spec"]["template"]["metadata"]["labels"];
        assert_eq!(&np["podSelector"]["matchLabels"], pod_labels, "{build}");
        assert_eq!(np["policyTypes"], serde_json::json!(["Ingress"]), "{build}");
        let rules = np["ingress"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{build}");
        assert_eq!(
            rules[0]["ports"],
            serde_json::json!([{"protocol": "TCP", "port": 9464}])
        );
        let port = &agent(&objs)["ports"][0];
        assert_eq!(
            port["containerPort"], 9464,
            "{build}: the policy names another port"
        );
        // From one namespace, by its immutable name label: never an empty (match-all) selector.
        let from = rules[0]["from"].as_array().unwrap();
        assert_eq!(from.len(), 1, "{build}");
        let names = &from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"];
        assert!(names.is_string(), "{build}: {from:?}");
        assert!(from[0].get("ipBlock").is_none());
    }
}

#[test]
fn the_eks_overlay_sets_mixed_fleet_config() {
    let objs = objects(&kustomize("daemonset/overlays/eks"));
    let config = find(&objs, "ConfigMap", "binfmtd-config")["data"]["config.toml"]
        .as_str()
        .unwrap();
    let parsed: toml::Table = config.parse().unwrap();
    assert_eq!(parsed["skip-native"].as_bool(), Some(true));
    let arches: Vec<_> = parsed["arches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
}

/// The fixtures' extracted Debian trixie qemu-user for amd64 (tests/fixtures/fetch.sh).
fn debian_qemu_amd64(file: &str) -> std::path::PathBuf {
    let root = std::env::var_os("FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| manifests::repo().join("target/fixtures"));
    let path = root.join("trixie/amd64/qemu-user/usr/bin").join(file);
    assert!(
        path.is_file(),
        "{} missing: run tests/fixtures/fetch.sh",
        path.display()
    );
    path
}

#[test]
fn the_bundled_overlay_pins_debians_interpreters_and_seeds_the_cache_first() {
    use sha2::Digest;
    let objs = objects(&kustomize("daemonset/overlays/bundled"));
    let config = find(&objs, "ConfigMap", "binfmtd-config")["data"]["config.toml"]
        .as_str()
        .unwrap();
    let parsed: toml::Table = config.parse().unwrap();
    assert_eq!(
        parsed["embedded-default"].as_bool(),
        Some(false),
        "must never download"
    );
    let sources = parsed["source"].as_array().unwrap();
    let mut amd64_pins = 0;
    for s in sources {
        let url = s["urls"][0].as_str().unwrap();
        let file = url
            .strip_prefix("file:///usr/lib/binfmtd/qemu/")
            .expect(url);
        if s["host"].as_str() == Some("amd64") {
            // The same bytes binfmtd's embedded default extracts from Debian's package.
            let bytes = std::fs::read(debian_qemu_amd64(file)).unwrap();
            let sum = format!("{:x}", sha2::Sha256::digest(&bytes));
            assert_eq!(s["sha256"].as_str(), Some(sum.as_str()), "{file}");
            amd64_pins += 1;
        }
    }
    assert_eq!((sources.len(), amd64_pins), (4, 2));
    // The init container runs before the agent, in the image's mount namespace, with a command
    // the binary accepts, writing the same cache.
    let spec = pod_spec(&objs);
    let init = &spec["initContainers"][0];
    assert_eq!(init["image"], agent(&objs)["image"]);
    assert!(init["image"].as_str().unwrap().ends_with("-bundled"));
    let args: Vec<String> = serde_json::from_value(init["args"].clone()).unwrap();
    assert!(!args.iter().any(|a| a.starts_with("--mount-namespace")));
    let argv = std::iter::once("binfmtd".to_string()).chain(args.iter().cloned());
    if let Err(e) = <binfmtd::cli::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("binfmtd rejects the init container's args {args:?}:\n{e}");
    }
    assert!(args.contains(&"--cache-dir=/var/lib/binfmtd".to_string()));
}

#[test]
fn the_readmes_deployment_example_is_valid_and_prefers_native() {
    let readme = std::fs::read_to_string(manifests::repo().join("README.md")).unwrap();
    let section = readme
        .split("## Run on EKS")
        .nth(1)
        .expect("README has Run on EKS");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a yaml block in Run on EKS");
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = validate(&write_temp(dir.path(), "example.yaml", yaml), OLDEST);
    assert!(ok, "{text}");
    let objs = objects(yaml);
    let affinity = &objs[0]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"];
    let required = &affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0];
    assert_eq!(
        required,
        &serde_json::json!({"key": "binfmtd.io/amd64", "operator": "In", "values": ["native", "emulated"]})
    );
    let preferred = &affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"]
        ["matchExpressions"][0];
    assert_eq!(preferred["values"], serde_json::json!(["native"]));
}
