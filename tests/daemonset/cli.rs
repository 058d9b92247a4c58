//! The DaemonSet speaks the binary's own command line and config format: its args go through
//! binfmtd's real argument parser, and its config files through binfmtd's real config loader,
//! so a flag or key renamed in the binary fails here, not on a cluster.

use clap::Parser;
use serde_json::Value;

use super::manifests::{agent, find, kustomize, objects, BUILDS};

/// The container's args with `$(VAR)` expanded from its env, as the kubelet does; every
/// variable must be one the container defines.
fn expanded_args(container: &Value) -> Vec<String> {
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let sample = |name: &str| match name {
        "POD_UID" => "0f6a3c0e-7d52-4b8e-9a43-2d1c5b7e8f90".to_string(),
        other => format!("sample-{}", other.to_lowercase()),
    };
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut s = a.as_str().unwrap().to_string();
            while let Some(start) = s.find("$(") {
                let end = start + s[start..].find(')').expect("unclosed $(");
                let name = s[start + 2..end].to_string();
                assert!(
                    env.contains(&name.as_str()),
                    "arg {a} uses $({name}), which env does not define"
                );
                s.replace_range(start..=end, &sample(&name));
            }
            s
        })
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().find_map(|a| {
        if a == name {
            Some("")
        } else {
            a.strip_prefix(&prefix)
        }
    })
}

#[test]
fn daemonset_args_parse_with_the_binarys_own_cli() {
    for build in BUILDS {
        let objs = objects(&kustomize(build));
        let args = expanded_args(agent(&objs));
        let argv = std::iter::once("binfmtd".to_string()).chain(args.iter().cloned());
        let cli = binfmtd::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| {
            panic!("{build}: binfmtd rejects the DaemonSet's args {args:?}:\n{e}")
        });
        assert!(
            format!("{:?}", cli.command).starts_with("Run("),
            "{build}: the DaemonSet must run `binfmtd run`, parsed as {:?}",
            cli.command
        );
        assert_eq!(
            flag(&args, "--mount-namespace"),
            Some("/proc/1/ns/mnt"),
            "{build}"
        );
        assert_eq!(flag(&args, "--node-labels"), Some(""), "{build}");
        assert_eq!(
            flag(&args, "--cache-dir"),
            Some("/var/lib/binfmtd"),
            "{build}"
        );
    }
}

#[test]
fn probes_and_port_match_the_listen_address() {
    for build in BUILDS {
        let objs = objects(&kustomize(build));
        let c = agent(&objs);
        let args = expanded_args(c);
        let listen = flag(&args, "--listen").expect("--listen");
        let port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
        let ports = c["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0]["containerPort"].as_u64(), Some(port), "{build}");
        // Reachable by the kubelet on the pod IP, not only on loopback.
        assert!(
            listen.starts_with("0.0.0.0:") || listen.starts_with("[::]:"),
            "{listen}"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{build}: {probe}");
            assert_eq!(get["port"], ports[0]["name"], "{build}: {probe} port");
        }
    }
}

#[test]
fn config_files_load_with_the_binarys_own_config_loader() {
    let dir = tempfile::tempdir().unwrap();
    for build in BUILDS {
        let objs = objects(&kustomize(build));
        let text = find(&objs, "ConfigMap", "binfmtd-config")["data"]["config.toml"]
            .as_str()
            .unwrap()
            .to_string();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = binfmtd::config::load(&path, true) {
            panic!("{build}: binfmtd refuses the DaemonSet's config.toml: {e}\n{text}");
        }
    }
}
