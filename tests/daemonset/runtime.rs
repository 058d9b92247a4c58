//! The DaemonSet's pod, in a real container runtime: the released OCI image run by containerd (ctr,
//! crun underneath) inside the sandbox, with the pod's settings: privileged, the sandbox's pid
//! namespace as the "host" PID namespace (hostPID), the cache bind-mounted at the same path
//! (the hostPath), the config file mounted at /etc/binfmtd in the container only, like the
//! ConfigMap (binfmtd reads it through the pod's namespace after entering the host's). The
//! sandbox's own mount namespace is the "host"'s, and binfmt_misc is NOT mounted there, as on
//! Amazon Linux 2023 before its automount fires.
//!
//! `binfmtd run --mount-namespace /proc/1/ns/mnt` registers in the host's namespace; when the pod is
//! stopped (SIGTERM) the entries stay, and a second, unprivileged arm64 container runs. The control
//! case, a one-shot install without --mount-namespace, shows the trap this avoids: it reports
//! success, and its entries vanish with the container. The bundled image goes through the overlay's
//! own init container and config, with nothing to download.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
#[path = "manifests.rs"]
mod manifests;

use crate::common::containerd::{image_script, SETUP};
use crate::common::{fixtures, sections, with_exit, Busybox, Sandbox};
use crate::{assert_success, dist, run, VERSION};

/// Everything up to the point where a pod could start: "host" mounts, containerd, both images, the
/// config beside them (the container mounts it at /etc/binfmtd); then `$pod ARGS` runs the pod's container (image tag TAG) in the foreground.
fn host_script(bb: &Busybox, tag: &str) -> String {
    format!(
        "sandbox_run\n\
         cp \"$INPUT/image.tar\" /run/binfmtd-oci.tar\n\
         mkdir -p /run/config && cp \"$INPUT/config.toml\" /run/config/config.toml\n\
         sandbox_tmp\n\
         mkdir -p /var/lib/binfmtd\n\
         sandbox_qemu\n\
         {SETUP}\n{image}\n\
         ctr -a /run/ctd/sock images import --platform linux/amd64 --base-name test.invalid/binfmtd \
             /run/binfmtd-oci.tar >/dev/null\n\
         mounted() {{ grep -c ' /proc/sys/fs/binfmt_misc ' /proc/self/mounts || true; }}\n\
         section host-before; mounted; entries\n\
         container=\"ctr -a /run/ctd/sock run --rm --with-ns pid:/proc/1/ns/pid \
             --mount type=bind,src=/var/lib/binfmtd,dst=/var/lib/binfmtd,options=rbind:rw \
             --mount type=bind,src=/run/config,dst=/etc/binfmtd,options=rbind:ro \
             --mount type=bind,src=/run/qemu,dst=/run/qemu,options=rbind:ro \
             --runc-binary /run/ctd/runc --snapshotter native\"\n\
         pod=\"$container --privileged --pid-file /run/pod.pid test.invalid/binfmtd:{tag} pod /usr/bin/binfmtd\"\n\
         probe() {{ nsenter --net=/proc/$(cat /run/pod.pid)/ns/net curl -fsS http://127.0.0.1:9464/$1; }}\n\
         arm64() {{ ctr -a /run/ctd/sock run --rm --platform linux/arm64 --runc-binary /run/ctd/runc \
             --snapshotter native test.invalid/busybox:latest arm64 uname -m; }}\n",
        image = image_script(bb),
    )
}

/// The agent pod's life: start, wait until ready, stop with SIGTERM, then run an arm64 container.
const AGENT_LIFE: &str = "\
$pod run --mount-namespace /proc/1/ns/mnt --config /etc/binfmtd/config.toml \
    --cache-dir /var/lib/binfmtd --listen 0.0.0.0:9464 >/tmp/agent.log 2>&1 &
agent=$!
ready=no
for i in $(seq 600); do
    if [ -s /run/pod.pid ] && probe readyz >/dev/null 2>&1; then ready=yes; break; fi
    sleep 0.1
done
section probes; echo \"readyz=$ready\"; probe healthz
section host-running; mounted; entries
section interpreter; sed -n 's/^interpreter //p' /proc/sys/fs/binfmt_misc/binfmtd-aarch64
section stop
t0=$(date +%s%N)
ctr -a /run/ctd/sock task kill -s SIGTERM pod
code wait $agent
echo \"stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))\"
section host-after; mounted; entries
section arm64; code arm64
section log; cat /tmp/agent.log
kill $ctd; wait $ctd || true";

/// A sandbox whose script finds the image and the config in $INPUT (readable by its uid).
fn sandbox(image: &Path, config: &str) -> Option<(Sandbox, tempfile::TempDir)> {
    let sb = Sandbox::new()?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(image, dir.path().join("image.tar")).unwrap();
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    for f in ["image.tar", "config.toml"] {
        let p = dir.path().join(f);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.path().to_str().unwrap().to_string();
    Some((sb.bare().with_qemu(&["aarch64"]).env("INPUT", input), dir))
}

/// The agent's checks: it mounted binfmt_misc in the host namespace and registered there, its
/// probes answered, SIGTERM stopped it quickly with exit 0, and the entries outlived it.
fn assert_agent_life(run: &crate::common::Run, bb: &Busybox) -> String {
    let s = sections(&run.stdout);
    assert_eq!(
        s["host-before"], "0\n",
        "binfmt_misc must start unmounted: {run}"
    );
    assert!(s["probes"].starts_with("readyz=yes\nok"), "{run}");
    let running = s["host-running"].lines().collect::<Vec<_>>();
    assert_eq!(
        running[0], "1",
        "the agent must mount binfmt_misc in the host's namespace: {run}"
    );
    assert!(running.contains(&"binfmtd-aarch64"), "{run}");
    let (before_ms, code) = with_exit(s["stop"].split("stop_ms=").next().unwrap());
    assert_eq!((before_ms, code), ("", 0), "SIGTERM must exit 0: {run}");
    let ms: u64 = s["stop"]
        .rsplit("stop_ms=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(ms < 3000, "SIGTERM took {ms} ms: {run}");
    assert_eq!(
        s["host-after"], s["host-running"],
        "entries must outlive the pod: {run}"
    );
    assert_eq!(s["arm64"], format!("{}\nexit=0\n", bb.uname), "{run}");
    // Verified into the cache, which is the host's /var/lib/binfmtd: the entry names a host path.
    let interpreter = s["interpreter"].trim().to_string();
    assert!(
        interpreter.starts_with("/var/lib/binfmtd/"),
        "{interpreter}: {run}"
    );
    interpreter
}

/// A local source standing in for the download (the sandbox's qemu copies).
const LOCAL_CONFIG: &str = "arches = [\"arm64\"]\nembedded-default = false\n\n[[source]]\n\
    name = \"node-qemu\"\nkind = \"local\"\nhost = \"amd64\"\npath = \"/run/qemu\"\nmember = \"qemu-{cpu}-static\"\n";

fn released_image() -> std::path::PathBuf {
    dist().join(format!("binfmtd-{VERSION}-oci.tar"))
}

#[test]
fn the_agent_pod_registers_in_the_host_namespace_and_entries_outlive_it() {
    let bb = Busybox::by_debian("arm64");
    let Some((sb, _keep)) = sandbox(&released_image(), LOCAL_CONFIG) else {
        return;
    };
    let run = sb
        .run_script(&format!("{}{AGENT_LIFE}", host_script(&bb, VERSION)))
        .success();
    assert_agent_life(&run, &bb);
}

#[test]
fn control_a_one_shot_install_in_a_private_mount_loses_its_entries() {
    let bb = Busybox::by_debian("arm64");
    let Some((sb, _keep)) = sandbox(&released_image(), LOCAL_CONFIG) else {
        return;
    };
    let run = sb
        .run_script(&format!(
            "{host}\
             section install; code $pod install --arch arm64 --interpreter-dir /run/qemu \
                 --cache-dir /var/lib/binfmtd 2>/tmp/install.err\n\
             section host-after; mounted; entries\n\
             section arm64; code arm64\n\
             section stderr; cat /tmp/install.err\n\
             kill $ctd; wait $ctd || true",
            host = host_script(&bb, VERSION),
        ))
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["host-before"], "0\n", "{run}");
    let (_, code) = with_exit(&s["install"]);
    assert_eq!(code, 0, "the one-shot install reports success: {run}");
    assert!(
        s["stderr"].contains("mount namespace other than the host"),
        "{run}"
    );
    assert_eq!(
        s["host-after"], "0\n",
        "nothing registered in the host's namespace: {run}"
    );
    assert!(s["arm64"].ends_with("exit=1\n"), "{run}");
    assert!(run.stderr.contains("Exec format error"), "{run}");
}

/// The bundled image for linux/amd64, built by packaging/oci.sh (BUNDLE=) from the release binary
/// and Debian's qemu-user files (the fixtures hold the very package binfmtd's default pins).
fn bundled_image(out: &Path) -> std::path::PathBuf {
    let binary = format!("binfmtd-{VERSION}-x86_64-linux-musl");
    std::fs::copy(dist().join(&binary), out.join(&binary)).unwrap();
    let qemu = fixtures::dir().join("trixie/amd64/qemu-user/usr/bin");
    let bundle = out.join("bundle/amd64");
    std::fs::create_dir_all(&bundle).unwrap();
    for f in ["qemu-aarch64", "qemu-x86_64"] {
        std::fs::copy(qemu.join(f), bundle.join(f)).unwrap();
    }
    let built = run(Command::new("bash")
        .arg(manifests::repo().join("packaging/oci.sh"))
        .arg(out)
        .arg("x86_64")
        .env("VERSION", VERSION)
        .env("BUNDLE", out.join("bundle")));
    assert_success("BUNDLE=... packaging/oci.sh", &built);
    out.join(format!("binfmtd-{VERSION}-bundled-oci.tar"))
}

#[test]
fn the_bundled_pod_seeds_the_cache_and_registers_without_downloading() {
    let bb = Busybox::by_debian("arm64");
    let objs = manifests::objects(&manifests::kustomize("daemonset/overlays/bundled"));
    let config = manifests::find(&objs, "ConfigMap", "binfmtd-config")["data"]["config.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let init = &manifests::find(&objs, "DaemonSet", "binfmtd")["spec"]["template"]["spec"]
        ["initContainers"][0];
    let init_args: Vec<String> = serde_json::from_value(init["args"].clone()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let Some((sb, _keep)) = sandbox(&bundled_image(work.path()), &config) else {
        return;
    };
    let tag = format!("{VERSION}-bundled");
    let run = sb
        .run_script(&format!(
            "{host}\
             section seed\n\
             if $container test.invalid/binfmtd:{tag} seed /usr/bin/binfmtd {args} >/tmp/seed.log 2>&1; \
                 then echo seeded; else echo failed; fi\n\
             cat /tmp/seed.log\n\
             {AGENT_LIFE}",
            host = host_script(&bb, &tag),
            args = init_args.join(" "),
        ))
        .success();
    let seed = &sections(&run.stdout)["seed"];
    assert!(seed.starts_with("seeded\n"), "{run}");
    for source in [
        "bundled-amd64-aarch64 (raw file://",
        "bundled-amd64-x86_64 (raw file://",
    ] {
        assert!(
            seed.contains(source),
            "the init container must verify {source}...: {run}"
        );
    }
    let interpreter = assert_agent_life(&run, &bb);
    // The bundled qemu-aarch64, by the overlay's pin, reused from the cache the init container seeded.
    assert!(
        interpreter.ends_with("73cc2584f119f9e74c85c0a8549dbb6fd104ae3897a06a7500797f9e5b4d0943"),
        "{run}"
    );
}
