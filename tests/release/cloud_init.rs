//! The cloud-init examples: the #cloud-config passes cloud-init's own schema check, the EKS AL2023 MIME
//! example parses into its two parts, and the one-liner in each really installs binfmtd when its URL
//! points at a loopback release host.

use std::process::Command;

use crate::http::Server;
use crate::{artifact, assert_success, dist, repo, run, VERSION};

const RELEASE_URL: &str = "https://github.com/binfmtd/binfmtd/releases/latest/download/";

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Run `line` with its release URL pointed at a loopback copy of the dist and `--root` appended.
fn run_one_liner(line: &str) {
    let host = tempfile::tempdir().unwrap();
    let files = host.path().join(format!("v{VERSION}"));
    assert_success(
        "cp dist",
        &run(Command::new("cp").arg("-a").arg(dist()).arg(&files)),
    );
    let server = Server::start(host.path());
    let root = tempfile::tempdir().unwrap();
    assert!(
        line.contains(RELEASE_URL),
        "one-liner does not use {RELEASE_URL}: {line}"
    );
    let local = line.replace(RELEASE_URL, &format!("{}/v{VERSION}/", server.url));
    // --root goes first: anything after install.sh's own `--` is an argument for binfmtd.
    assert!(
        local.contains("| sh -s -- "),
        "one-liner does not pipe into `sh -s --`: {line}"
    );
    let local = local.replace(
        "| sh -s -- ",
        &format!("| sh -s -- --root {} ", root.path().display()),
    );
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(&local)
        .env("BINFMTD_BASE_URL", &server.url));
    assert_success(&format!("one-liner {local}"), &out);
    let bin = std::fs::read(root.path().join("usr/local/bin/binfmtd")).unwrap();
    assert_eq!(
        bin,
        std::fs::read(artifact(std::env::consts::ARCH)).unwrap()
    );
    let env = std::fs::read_to_string(root.path().join("etc/default/binfmtd")).unwrap();
    let args = line.split(" -- ").skip(1).collect::<Vec<_>>().join(" ");
    // Everything after `sh -s --` reached binfmtd: --arches LIST as --arch LIST, then the passthrough.
    let expected = args.replace("--arches ", "--arch ").replace(" -- ", " ");
    assert!(
        env.contains(&format!("BINFMTD_ARGS=\"{expected}\"")),
        "{env} (wanted {expected})"
    );
}

#[test]
fn cloud_config_passes_the_schema_and_its_one_liner_installs() {
    let path = repo().join("packaging/cloud-init/user-data.yaml");
    let out = run(Command::new("cloud-init").args(["schema", "-c"]).arg(&path));
    let said = assert_success("cloud-init schema -c", &out);
    assert!(said.contains("Valid cloud-config"), "{said}");
    let config = read("packaging/cloud-init/user-data.yaml");
    assert!(config.starts_with("#cloud-config\n"));
    let line = config
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("- curl "))
        .expect("a runcmd entry that starts with curl");
    run_one_liner(&format!("curl {line}"));
}

#[test]
fn eks_mime_example_parses_into_nodeconfig_and_shellscript_parts() {
    // Python's email package is the MIME parser cloud-init itself uses.
    let script = "import email, json, sys\n\
        m = email.message_from_file(open(sys.argv[1]))\n\
        assert m.is_multipart(), 'not multipart'\n\
        print(json.dumps([[p.get_content_type(), p.get_payload()] for p in m.get_payload()]))";
    let path = repo().join("packaging/cloud-init/eks-al2023-user-data.mime");
    let out = assert_success(
        "python3 email parse",
        &run(Command::new("python3").arg("-c").arg(script).arg(&path)),
    );
    let parts: Vec<(String, String)> = serde_json::from_str(&out).unwrap();
    let types: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["application/node.eks.aws", "text/x-shellscript"]);

    let node_config = &parts[0].1;
    for needle in [
        "apiVersion: node.eks.aws/v1alpha1",
        "kind: NodeConfig",
        "apiServerEndpoint:",
        "certificateAuthority:",
    ] {
        assert!(
            node_config.contains(needle),
            "NodeConfig part lacks {needle:?}:\n{node_config}"
        );
    }
    let shell = &parts[1].1;
    assert!(shell.starts_with("#!/bin/sh\n"), "{shell}");
    assert_success(
        "sh -n",
        &run(Command::new("sh").arg("-n").arg("-c").arg(shell)),
    );
    let line = shell
        .lines()
        .find(|l| l.starts_with("curl "))
        .expect("the one-liner in the shell part");
    run_one_liner(line);
}
