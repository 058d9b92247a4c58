use super::*;

#[test]
fn source_resolution() {
    let p = |s: &str| PathBuf::from(s);
    assert_eq!(
        Source::resolve(Some(p("/a")), Some("/b".into())),
        Source::Kubeconfig(vec![p("/a")])
    );
    assert_eq!(
        Source::resolve(None, Some("/b:/c".into())),
        Source::Kubeconfig(vec![p("/b"), p("/c")])
    );
    let in_cluster = Source::InCluster { dir: None };
    assert_eq!(Source::resolve(None, Some("".into())), in_cluster);
    assert_eq!(Source::resolve(None, None), in_cluster);
    assert_eq!(
        Source::Kubeconfig(vec![p("/b"), p("/c")]).describe(),
        "kubeconfig /b:/c"
    );
}

#[test]
fn in_cluster_kubeconfig_reads_the_given_dir_and_names_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let sa = root.path().join("sa");
    let s = |v: &str| Some(v.to_string());
    let missing = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa));
    let e = missing.unwrap_err();
    assert!(
        e.contains("service-account ca.crt") && e.contains("automount"),
        "{e}"
    );
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("ca.crt"), "ca").unwrap();
    let e = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa)).unwrap_err();
    assert!(e.contains("service-account token"), "{e}");
    std::fs::write(sa.join("token"), "t").unwrap();

    let kc = in_cluster_kubeconfig(s("fd00::1"), s("6443"), Some(&sa)).unwrap();
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://[fd00::1]:6443"));
    let ca = sa.join("ca.crt").display().to_string();
    assert_eq!(cluster.certificate_authority.as_deref(), Some(ca.as_str()));
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    let token = sa.join("token").display().to_string();
    assert_eq!(user.token_file.as_deref(), Some(token.as_str()));
    let kc = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa)).unwrap();
    let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone();
    assert_eq!(server.as_deref(), Some("https://10.0.0.1:443"));

    let e = in_cluster_kubeconfig(None, s("443"), None).unwrap_err();
    assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
    let e = in_cluster_kubeconfig(s("h"), None, None).unwrap_err();
    assert!(e.contains("KUBERNETES_SERVICE_PORT"), "{e}");
}

#[test]
fn node_names_come_only_from_kubelet_users() {
    assert_eq!(node_from_user("system:node:i-0abc123"), Some("i-0abc123"));
    assert_eq!(node_from_user("system:node:"), None);
    assert_eq!(
        node_from_user("system:serviceaccount:kube-system:binfmtd"),
        None
    );
    assert_eq!(node_from_user("admin"), None);
}

fn root_only() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn exec_programs_are_found_as_exec_would() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("plugin"), "#!/bin/sh\n").unwrap();
    let path =
        std::env::join_paths(["relative", "/nonexistent", t.path().to_str().unwrap()]).unwrap();
    let want = t.path().join("plugin").display().to_string();
    assert_eq!(find_program("plugin", Some(path.clone())), Some(want));
    assert_eq!(
        find_program("./x/plugin", Some(path.clone())).as_deref(),
        Some("./x/plugin")
    );
    assert_eq!(find_program("absent", Some(path)), None);
}

/// A kubeconfig whose current context names `ca`, `key` and `cmd` (relative to its dir).
fn write_kubeconfig(dir: &Path) -> PathBuf {
    let kc = "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
              clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority: ca.crt\n\
              users:\n- name: u\n  user:\n    client-key: sub/key.pem\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: ./plugin\n\
              - name: other\n  user:\n    client-key: /nonexistent/key\n\
              - name: gcp\n  user:\n    auth-provider:\n      name: gcp\n      config:\n        cmd-path: ./plugin\n\
              contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n";
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for f in ["ca.crt", "sub/key.pem", "plugin"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let path = dir.join("config");
    std::fs::write(&path, kc).unwrap();
    path
}

#[test]
fn referenced_files_are_held_to_the_trust_rule() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let path = write_kubeconfig(t.path());
    let mut kc = read_kubeconfig(&path).unwrap();
    // Only the current context's user is looked at: `other` names a missing key.
    check_references(&mut kc).unwrap();
    let ca = kc.clusters[0].cluster.as_ref().unwrap();
    let want = t.path().join("ca.crt").display().to_string();
    assert_eq!(ca.certificate_authority.as_deref(), Some(want.as_str()));
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    let cmd = user.exec.as_ref().unwrap().command.as_deref();
    let want = t.path().join("plugin").display().to_string();
    assert_eq!(cmd, Some(want.as_str()));

    for (file, what) in [
        ("ca.crt", "certificate-authority"),
        ("sub/key.pem", "client-key"),
        ("plugin", "exec command"),
    ] {
        std::os::unix::fs::chown(t.path().join(file), Some(1000), None).unwrap();
        let mut kc = read_kubeconfig(&path).unwrap();
        let e = check_references(&mut kc).unwrap_err();
        assert!(
            e.starts_with(what) && e.contains("owned by uid 1000"),
            "{e}"
        );
        std::os::unix::fs::chown(t.path().join(file), Some(0), None).unwrap();
    }
    // The gcp auth provider's command, when its user is the current one.
    let mut kc = read_kubeconfig(&path).unwrap();
    kc.contexts[0].context.as_mut().unwrap().user = Some("gcp".into());
    let plugin = t.path().join("plugin");
    kc.auth_infos[2]
        .auth_info
        .as_mut()
        .unwrap()
        .auth_provider
        .as_mut()
        .unwrap()
        .config
        .insert("cmd-path".into(), plugin.display().to_string());
    check_references(&mut kc).unwrap();
    std::os::unix::fs::chown(&plugin, Some(1000), None).unwrap();
    let e = check_references(&mut kc).unwrap_err();
    assert!(
        e.starts_with("auth-provider cmd-path") && e.contains("owned by uid 1000"),
        "{e}"
    );
    std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
    let e = read_kubeconfig(&path).unwrap_err();
    assert!(
        e.contains("owned by uid 1000") && e.contains("Hint:"),
        "{e}"
    );
}

/// The service account's files as the kubelet lays them out (`..data` symlinks in a 1777
/// tmpfs): root's are used; a token or CA another user owns is refused.
#[test]
fn service_account_files_are_held_to_the_trust_rule() {
    if !root_only() {
        eprintln!("skipped: needs root to own the test tree");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sa = t.path().join("sa");
    std::fs::create_dir_all(sa.join("..2026_12_03")).unwrap();
    std::fs::set_permissions(&sa, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    for f in ["token", "ca.crt"] {
        std::fs::write(sa.join("..2026_12_03").join(f), "x").unwrap();
        std::os::unix::fs::symlink(format!("..data/{f}"), sa.join(f)).unwrap();
    }
    std::os::unix::fs::symlink("..2026_12_03", sa.join("..data")).unwrap();
    let s = |v: &str| Some(v.to_string());
    let load = || {
        let mut kc = in_cluster_kubeconfig(s("10.0.0.1"), s("443"), Some(&sa)).unwrap();
        check_references(&mut kc).map(|_| kc)
    };
    let kc = load().unwrap();
    let ca = kc.clusters[0].cluster.as_ref().unwrap();
    let real = sa.join("..2026_12_03/ca.crt").display().to_string();
    assert_eq!(ca.certificate_authority.as_deref(), Some(real.as_str()));
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    let token = sa.join("token").display().to_string();
    assert_eq!(
        user.token_file.as_deref(),
        Some(token.as_str()),
        "kept, for rotation"
    );
    for f in ["token", "ca.crt"] {
        let file = sa.join("..2026_12_03").join(f);
        std::os::unix::fs::chown(&file, Some(1000), None).unwrap();
        let e = load().unwrap_err();
        assert!(e.contains("owned by uid 1000"), "{f}: {e}");
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
    }
}
