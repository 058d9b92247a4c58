//! `binfmtd fetch` and `binfmtd gc` end to end through the binary: gc after a re-pin,
//! and downloads through the proxy named in the environment.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn binfmtd(args: &[&str], cache: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        // No binfmt_misc here: nothing registered points into the cache.
        .args(["--binfmt-misc", "/nonexistent-binfmt_misc"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "binfmtd {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn local_config(dir: &Path, file: &str) -> String {
    let path = dir.join(format!("{}.toml", file.replace('/', "_")));
    let text = format!("embedded-default = false\n[[source]]\nname = \"local\"\nkind = \"local\"\nhost = \"{}\"\ntargets = [\"riscv64\"]\npath = \"{file}\"\n", binfmtd::arch::host().qemu);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn gc_drops_the_interpreter_a_new_pin_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = local_config(dir.path(), "/usr/bin/qemu-riscv64-static");
    // Any static qemu for this host passes the checks; a different file stands for a new pin.
    let second = local_config(dir.path(), "/usr/bin/qemu-s390x-static");
    let old = sha256(&std::fs::read("/usr/bin/qemu-riscv64-static").unwrap());
    let new = sha256(&std::fs::read("/usr/bin/qemu-s390x-static").unwrap());

    assert!(binfmtd(&["fetch", "--arch", "riscv64", "--config", &first], &cache).contains(&old));
    assert!(binfmtd(&["fetch", "--arch", "riscv64", "--config", &second], &cache).contains(&new));
    assert_eq!(assert_cache_consistent(&cache), {
        let mut v = vec![old.clone(), new.clone()];
        v.sort();
        v
    });

    let report = binfmtd(&["gc"], &cache);
    assert!(
        report.contains(&format!(
            "removed\t{}",
            cache.join("sha256").join(&old).display()
        )),
        "{report}"
    );
    assert_eq!(assert_cache_consistent(&cache), vec![new.clone()]);
    let index = binfmtd::cache::read_index(&cache).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(
        (index[0].arch.as_str(), index[0].sha256.as_str()),
        ("riscv64", new.as_str())
    );
    assert!(index[0].source.contains("/usr/bin/qemu-s390x-static"));

    // Nothing else is unreferenced now.
    assert!(binfmtd(&["gc"], &cache)
        .trim_end()
        .ends_with("freed\t0 bytes"));
}

/// HTTPS_PROXY is honoured: the download tunnels through a CONNECT proxy on loopback,
/// and TLS is still verified against the configured CA end to end.
#[test]
fn downloads_go_through_the_proxy_from_the_environment() {
    let server = support::server::Server::start();
    let proxy = support::proxy::Proxy::start();
    let qemu = real("/usr/bin/qemu-riscv64-static");
    server.route("/q", vec![support::server::Behavior::Serve(qemu.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let text = format!(
        "embedded-default = false\n[download]\nextra-ca-bundle = \"{}\"\n[[source]]\nkind = \"raw\"\nhost = \"{}\"\ntargets = [\"riscv64\"]\nurls = [\"{}\"]\nsha256 = \"{}\"\n",
        server.ca_file.display(),
        binfmtd::arch::host().qemu,
        server.url("/q"),
        sha256(&qemu)
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["fetch", "--arch", "riscv64", "--config"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        *proxy.tunnels.lock().unwrap(),
        vec![format!("127.0.0.1:{}", server.port)]
    );
    assert_eq!(server.hits_for("/q"), 1);
}
