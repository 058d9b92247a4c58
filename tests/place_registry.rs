//! The registry client against real registries on loopback (Debian's docker-registry with a
//! test CA: anonymous, htpasswd basic auth, and token auth with a Bearer challenge), holding
//! images built here: a multi-arch index, one-arch indexes with buildx attestation
//! manifests, and single-platform manifests.

mod common;

use binfmtd::place::registry::{
    cache, http::Http, names, Cache, Credential, Fetch, RegistryError, Resolver,
};
use binfmtd::placement::platforms::{digest_of, Kind};
use common::registry::{registry, Auth, Registry};

fn resolver(ca: &[std::path::PathBuf]) -> Resolver<Http> {
    Resolver::new(
        Http::new(ca).unwrap(),
        Cache::new(cache::CAPACITY, cache::TAG_TTL),
    )
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn secrets(r: &Registry) -> Vec<(String, Credential)> {
    let (u, p) = r.credentials().unwrap();
    vec![(
        r.host.clone(),
        Credential {
            username: u.into(),
            password: p.into(),
        },
    )]
}

fn arches(set: &binfmtd::placement::platforms::PlatformSet) -> Vec<&'static str> {
    set.arches().into_iter().collect()
}

#[test]
fn anonymous_registry_images_resolve_to_their_platforms() {
    let Some(r) = registry(Auth::Anonymous) else {
        return;
    };
    let res = resolver(std::slice::from_ref(&r.ca_path));
    block(async {
        let multi = res.resolve(&r.reference("multi:v1"), &[]).await.unwrap();
        assert_eq!(
            (multi.kind, arches(&multi)),
            (Kind::Index, vec!["amd64", "arm64"])
        );
        assert_eq!(
            multi.entry_for("arm64").unwrap().digest,
            r.platform_digest("multi:v1", "arm64")
        );
        let amd = res
            .resolve(&r.reference("amd64only:v1"), &[])
            .await
            .unwrap();
        assert_eq!(
            (amd.kind, arches(&amd), amd.ignored),
            (Kind::Index, vec!["amd64"], 1),
            "the attestation manifest is left out"
        );
        let single = res
            .resolve(&r.reference("single-arm64:v1"), &[])
            .await
            .unwrap();
        assert_eq!(
            (single.kind, arches(&single)),
            (Kind::Manifest, vec!["arm64"])
        );
        // By digest: the index's own (as the registry serves the tag: images.json's "digest" is
        // of the document without its final newline), and one platform's manifest.
        let loc = names::locate(&r.reference("amd64only:v1")).unwrap();
        let served = res.fetch.manifest(&loc, &[]).await.unwrap();
        assert_eq!(
            served.digest.as_deref(),
            Some(digest_of(&served.body).as_str())
        );
        let by_digest = format!("{}/amd64only@{}", r.host, digest_of(&served.body));
        assert_eq!(
            arches(&res.resolve(&by_digest, &[]).await.unwrap()),
            ["amd64"]
        );
        let pinned = format!(
            "{}/multi@{}",
            r.host,
            r.platform_digest("multi:v1", "amd64")
        );
        let p = res.resolve(&pinned, &[]).await.unwrap();
        assert_eq!((p.kind, arches(&p)), (Kind::Manifest, vec!["amd64"]));
        let missing = res
            .resolve(&r.reference("nothing:v1"), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(missing, RegistryError::NotFound { .. }),
            "{missing}"
        );
    });
    let (tags, digests) = res.cached();
    // Three tags, each also under its digest (so the index by digest was a hit), and the
    // pinned platform manifest.
    assert_eq!((tags, digests), (3, 4));
}

#[test]
fn without_the_test_ca_the_registry_is_untrusted_and_says_so() {
    let Some(r) = registry(Auth::Anonymous) else {
        return;
    };
    let err = block(resolver(&[]).resolve(&r.reference("multi:v1"), &[])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&r.host) && text.contains("--registry-ca"),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("certificate"),
        "names the TLS failure: {text}"
    );
}

#[test]
fn basic_auth_registry_needs_the_pull_secret() {
    let Some(r) = registry(Auth::Basic) else {
        return;
    };
    let res = resolver(std::slice::from_ref(&r.ca_path));
    block(async {
        let refused = res
            .resolve(&r.reference("amd64only:v1"), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RegistryError::AuthRefused { code: 401, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("imagePullSecret"), "{refused}");
        let mut wrong = secrets(r);
        wrong[0].1.password = "not-it".into();
        let refused = res
            .resolve(&r.reference("amd64only:v1"), &wrong)
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(&format!("to user \"{}\"", wrong[0].1.username)),
            "{refused}"
        );
        // A wrong credential first, the right one second: the second is used, as the kubelet does.
        let mut both = wrong.clone();
        both.push((format!("{}/amd64only", r.host), secrets(r)[0].1.clone()));
        let set = res
            .resolve(&r.reference("amd64only:v1"), &both)
            .await
            .unwrap();
        assert_eq!(arches(&set), ["amd64"]);
        let single = res
            .resolve(&r.reference("single:v1"), &secrets(r))
            .await
            .unwrap();
        assert_eq!(
            (single.kind, arches(&single)),
            (Kind::Manifest, vec!["amd64"]),
            "the config blob needs the credential too"
        );
    });
}

#[test]
fn token_auth_registry_answers_the_bearer_challenge() {
    let Some(r) = registry(Auth::Token) else {
        return;
    };
    let res = resolver(std::slice::from_ref(&r.ca_path));
    block(async {
        let refused = res
            .resolve(&r.reference("multi:v1"), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RegistryError::AuthRefused { .. }),
            "{refused}"
        );
        let set = res
            .resolve(&r.reference("single-arm64:v1"), &secrets(r))
            .await
            .unwrap();
        assert_eq!(arches(&set), ["arm64"]);
        let set = res
            .resolve(&r.reference("multi:v1"), &secrets(r))
            .await
            .unwrap();
        assert_eq!(arches(&set), ["amd64", "arm64"]);
    });
}

#[test]
fn a_closed_port_is_unreachable_and_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = block(resolver(&[]).resolve(&format!("127.0.0.1:{port}/x:v1"), &[])).unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_config_that_is_not_an_image_config_is_refused_and_named() {
    let Some(r) = registry(Auth::Anonymous) else {
        return;
    };
    let image = r.reference("broken:v1");
    let err = block(resolver(std::slice::from_ref(&r.ca_path)).resolve(&image, &[])).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RegistryError::Refused {
                source: binfmtd::placement::platforms::PlatformError::Malformed { .. },
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&image) && text.contains("config") && text.contains("not valid JSON"),
        "names the image and what is wrong: {text}"
    );
}
