//! Issue 15, defects 4 and 5, as the attacks were shown: uid 1000 in the private sandbox
//! plants a symlink in a sticky directory where root's `--cache-dir` points, or owns a file
//! root reads on an operator's say-so (the config, a kubeconfig, a CA bundle, a `file://`
//! source). Root must refuse each, naming it, and change nothing it should not.

mod common;

use common::{sections, with_exit, Sandbox};

/// Run a command as the sandbox's unprivileged uid 1000.
const AS_1000: &str = "setpriv --reuid=1000 --regid=1000 --clear-groups";

/// Three files named like a content store's blobs.
const BLOBS: [&str; 3] = [
    "0b4a6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6",
    "5f9e8d7c6b5a49382716a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

/// Defect 4: in the 1777 /tmp, uid 1000 makes `binfmtd-cache -> <a content store>/blobs`
/// and `victim-cache -> /var/lib/victim`. Root's install and gc with `--cache-dir` through
/// either link refuse, delete nothing and create nothing there, and register nothing.
#[test]
fn a_cache_dir_through_another_users_symlink_in_a_sticky_dir_is_refused() {
    let Some(sb) = Sandbox::new() else { return };
    let blobs = BLOBS
        .iter()
        .map(|b| format!("echo blob > /var/lib/store/blobs/sha256/{b}"))
        .collect::<Vec<_>>()
        .join("\n");
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "mkdir -p /var/lib/store/blobs/sha256 /var/lib/victim\n{blobs}\n\
             {AS_1000} ln -s /var/lib/store/blobs /tmp/binfmtd-cache\n\
             {AS_1000} ln -s /var/lib/victim /tmp/victim-cache\n\
             I=\"$BINFMTD install --arch arm64 --interpreter-dir $QEMU_DIR\"\n\
             section install; code $I --cache-dir /tmp/binfmtd-cache 2>&1\n\
             section gc; code $BINFMTD gc --cache-dir /tmp/binfmtd-cache 2>&1\n\
             section blobs; ls -A /var/lib/store/blobs /var/lib/store/blobs/sha256\n\
             section install-victim; code $I --cache-dir /tmp/victim-cache 2>&1\n\
             section victim; ls -A /var/lib/victim\n\
             section entries; entries"
        ))
        .success();
    let s = sections(&run.stdout);
    for (step, link) in [
        ("install", "/tmp/binfmtd-cache"),
        ("gc", "/tmp/binfmtd-cache"),
        ("install-victim", "/tmp/victim-cache"),
    ] {
        let (text, code) = with_exit(&s[step]);
        assert_ne!(code, 0, "{step} must refuse: {run}");
        assert!(
            text.contains(&format!("symlink {link} is owned by uid 1000"))
                && text.contains("protected_symlinks")
                && text.contains("Hint:"),
            "{step}: the message names the link, why, and what to do: {run}"
        );
    }
    let want = format!(
        "sha256\n\n/var/lib/store/blobs/sha256:\n{}\n",
        BLOBS.join("\n")
    );
    assert!(
        s["blobs"].ends_with(&want),
        "the content store lost files: {run}"
    );
    assert_eq!(s["victim"], "", "root created files in the victim: {run}");
    assert_eq!(s["entries"], "", "nothing registered: {run}");
}

/// Shell for the defect 5 scripts: `cfg URL SHA256 CREDENTIALS` prints a config that
/// takes s390x's interpreter from a pinned `file://` URL; `/run/u/evil` is uid 1000's
/// interpreter (a working qemu with a byte appended, so it has a sha256 of its own).
fn file_source_prelude() -> String {
    format!(
        "HOST={host}\n\
         cfg() {{ printf 'arches = [\"s390x\"]\\ncredentials = %s\\nembedded-default = false\\n\
         [[source]]\\nname = \"f\"\\nkind = \"raw\"\\nhost = \"%s\"\\ntargets = [\"s390x\"]\\n\
         urls = [\"file://%s\"]\\nsha256 = \"%s\"\\nallow-file = true\\n' \"$3\" \"$HOST\" \"$1\" \"$2\"; }}\n\
         sha() {{ sha256sum \"$1\" | cut -d' ' -f1; }}\n\
         mkdir -m 0755 /run/u /run/cfg\n\
         cp $QEMU_DIR/qemu-s390x-static /run/u/evil && printf x >> /run/u/evil && chown 1000:1000 /run/u/evil\n\
         EVIL=$(sha /run/u/evil); GOOD=$(sha $QEMU_DIR/qemu-s390x-static)\n",
        host = binfmtd::arch::host().qemu
    )
}

/// Defect 5, at start: uid 1000 owns the config `binfmtd run --config` names and has
/// written its own `file://` source, pin and `credentials = true` into it. The agent
/// refuses to start (exit 2), naming the file and the rule, and registers nothing.
#[test]
fn run_refuses_a_config_another_user_owns() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&format!(
            "{prelude}\
             cfg /run/u/evil $EVIL true > /run/cfg/c.toml && chown 1000:1000 /run/cfg/c.toml\n\
             section run; code timeout 10 $BINFMTD run --config /run/cfg/c.toml 2>&1\n\
             section entries; entries",
            prelude = file_source_prelude()
        ))
        .success();
    let s = sections(&run.stdout);
    let (text, code) = with_exit(&s["run"]);
    assert_eq!(code, 2, "{run}");
    assert!(
        text.contains("config /run/cfg/c.toml: it is owned by uid 1000, not root")
            && text.contains("Hint:"),
        "{run}"
    );
    assert_eq!(s["entries"], "", "{run}");
}

/// Defect 5, on reload: the agent runs from a root-owned config; the file is handed to
/// uid 1000, who rewrites it in place to its own source with `credentials = true`. The
/// reload is refused and the running state kept: same interpreter, no C flag.
#[test]
fn a_reload_of_a_config_that_became_untrusted_is_refused() {
    let Some(sb) = Sandbox::new() else { return };
    let run = sb
        .with_qemu(&["s390x"])
        .run_script(&format!(
            "{prelude}\
             mkdir -m 0755 /run/q && cp $QEMU_DIR/qemu-s390x-static /run/q/\n\
             cfg /run/q/qemu-s390x-static $GOOD false > /run/cfg/c.toml\n\
             E=/proc/sys/fs/binfmt_misc/binfmtd-s390x\n\
             $BINFMTD run --config /run/cfg/c.toml 2>>/tmp/agent.log & AGENT=$!\n\
             wait_for grep -q \"^interpreter .*$GOOD\" $E\n\
             section before; grep -e ^flags -e ^interpreter $E\n\
             chown 1000:1000 /run/cfg/c.toml\n\
             cfg /run/u/evil $EVIL true > /tmp/evil.toml\n\
             {AS_1000} sh -c 'cat /tmp/evil.toml > /run/cfg/c.toml'\n\
             kill -HUP $AGENT\n\
             wait_for grep -q 'config refused' /tmp/agent.log\n\
             sleep 0.5\n\
             section after; grep -e ^flags -e ^interpreter $E; kill -0 $AGENT && echo alive\n\
             section log; grep 'config refused' /tmp/agent.log | head -n1\n\
             kill $AGENT; wait $AGENT || true",
            prelude = file_source_prelude()
        ))
        .success();
    let s = sections(&run.stdout);
    assert!(!s["before"].contains('C'), "{run}");
    assert_eq!(
        s["after"],
        format!("{}alive\n", s["before"]),
        "the running state changed: {run}"
    );
    assert!(
        s["log"].contains("/run/cfg/c.toml: it is owned by uid 1000, not root"),
        "{run}"
    );
}

/// Defect 5, kubeconfig: uid 1000 owns the kubeconfig `--kubeconfig` names, whose user is
/// an exec plugin (uid 1000's too) that leaves a marker when it runs. binfmtd exits 3
/// with the kubeconfig named and why; the plugin never ran.
#[test]
fn a_kubeconfig_another_user_owns_never_runs_its_exec_plugin() {
    let Some(sb) = Sandbox::new() else { return };
    let kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
        clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n\
        users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /run/kc/plugin\n      interactiveMode: Never\n\
        contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n";
    let plugin = "#!/bin/sh\nid -u >> /run/marker\n\
        echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n";
    let run = sb
        .with_qemu(&["s390x"])
        .env("KC", kubeconfig)
        .env("PLUGIN", plugin)
        .run_script(
            "mkdir -m 0755 /run/kc\n\
             printf '%s' \"$KC\" > /run/kc/config; printf '%s' \"$PLUGIN\" > /run/kc/plugin\n\
             chmod 0755 /run/kc/plugin && chown 1000:1000 /run/kc/config /run/kc/plugin\n\
             section run; code timeout 10 $BINFMTD run --interpreter-dir $QEMU_DIR --arch s390x \
               --node-labels --node-name n1 --kubeconfig /run/kc/config 2>&1\n\
             section marker; cat /run/marker 2>/dev/null || true",
        )
        .success();
    let s = sections(&run.stdout);
    assert_eq!(s["marker"], "", "root ran uid 1000's exec plugin: {run}");
    let (text, code) = with_exit(&s["run"]);
    assert_eq!(code, 3, "{run}");
    assert!(
        text.contains("kubeconfig /run/kc/config")
            && text.contains("it is owned by uid 1000, not root"),
        "{run}"
    );
}

/// Defect 5, download inputs: a root-owned config whose `download.extra-ca-bundle` is
/// uid 1000's (a valid PEM: only the owner is wrong), and one whose `file://` source is
/// uid 1000's file under its own pin. Both are refused, naming the file; nothing registered.
#[test]
fn an_untrusted_ca_bundle_and_file_source_are_refused() {
    let Some(sb) = Sandbox::new() else { return };
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()])
        .unwrap()
        .cert
        .pem();
    let run = sb
        .with_qemu(&["s390x"])
        .env("CA", ca)
        .run_script(&format!(
            "{prelude}\
             printf '%s' \"$CA\" > /run/u/ca.pem && chown 1000:1000 /run/u/ca.pem\n\
             printf 'embedded-default = false\\n[download]\\nextra-ca-bundle = \"/run/u/ca.pem\"\\nretries = 0\\n\
             [[source]]\\nname = \"h\"\\nkind = \"raw\"\\nhost = \"%s\"\\ntargets = [\"s390x\"]\\n\
             urls = [\"https://127.0.0.1:1/q\"]\\nsha256 = \"%s\"\\n' $HOST $GOOD > /run/cfg/ca.toml\n\
             cfg /run/u/evil $EVIL false > /run/cfg/file.toml\n\
             section ca; code $BINFMTD fetch --arch s390x --config /run/cfg/ca.toml --cache-dir /run/cache 2>&1\n\
             section file; code $BINFMTD install --arch s390x --config /run/cfg/file.toml --cache-dir /run/cache 2>&1\n\
             section entries; entries\n\
             section objects; ls /run/cache/sha256",
            prelude = file_source_prelude()
        ))
        .success();
    let s = sections(&run.stdout);
    for (step, file) in [("ca", "/run/u/ca.pem"), ("file", "/run/u/evil")] {
        let (text, code) = with_exit(&s[step]);
        assert_ne!(code, 0, "{step}: {run}");
        assert!(
            text.contains(&format!("{file}: it is owned by uid 1000, not root"))
                && text.contains("Hint:"),
            "{step}: {run}"
        );
    }
    assert_eq!(s["entries"], "", "{run}");
    assert_eq!(s["objects"], "", "nothing enters the cache: {run}");
}

/// Defect 5 through `--mount-namespace`: the pod's config is read through the handle on
/// the pod's root, and held to the same rule there. In the pod's own mount namespace (a
/// 1777 tmpfs the host never sees), a config uid 1000 owns, and a root-owned config reached
/// through uid 1000's symlink, are both refused; root's own config is used.
#[test]
fn pod_files_read_through_the_pod_root_are_held_to_the_rule() {
    let Some(sb) = Sandbox::new() else { return };
    let pod = "mount -t tmpfs tmpfs /run/pod\n\
        printf 'arches = [\"s390x\"]\\n' > /run/pod/root.toml\n\
        cp /run/pod/root.toml /run/pod/user.toml && chown 1000:1000 /run/pod/user.toml\n\
        setpriv --reuid=1000 --regid=1000 --clear-groups ln -s root.toml /run/pod/link.toml\n\
        for c in user link root; do\n\
          echo \"=== $c\"; rc=0\n\
          $BINFMTD install --mount-namespace /proc/1/ns/mnt --config /run/pod/$c.toml \
            --interpreter-dir $QEMU_DIR --arch s390x 2>&1 || rc=$?\n\
          echo \"exit=$rc\"\n\
        done";
    let run = sb
        .with_qemu(&["s390x"])
        .env("POD", pod)
        .run_script(
            "mkdir -p /run/pod\n\
             unshare --mount sh -c \"$POD\"\n\
             section entries; entries; ls -A /run/pod",
        )
        .success();
    let s = sections(&run.stdout);
    for (step, why) in [
        ("user", "it is owned by uid 1000, not root"),
        ("link", "/run/pod/link.toml is owned by uid 1000"),
    ] {
        let (text, code) = with_exit(&s[step]);
        assert_eq!(code, 2, "{step}: {run}");
        assert!(
            text.contains(why) && text.contains("Hint:"),
            "{step}: {run}"
        );
    }
    assert_eq!(with_exit(&s["root"]).1, 0, "{run}");
    assert_eq!(s["entries"], "binfmtd-s390x\n", "{run}");
}
