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
