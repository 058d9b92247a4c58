use std::collections::BTreeMap;

use super::*;

#[test]
fn challenges_parse_as_registries_send_them() {
    let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
    assert_eq!(
        challenge(hub),
        Some(Challenge::Bearer {
            realm: "https://auth.docker.io/token".into(),
            service: Some("registry.docker.io".into()),
            scope: Some("repository:library/nginx:pull".into()),
        })
    );
    let unquoted = "bearer realm=https://r/t, service=s";
    assert_eq!(
        challenge(unquoted),
        Some(Challenge::Bearer {
            realm: "https://r/t".into(),
            service: Some("s".into()),
            scope: None
        })
    );
    let escaped = r#"Bearer realm="https://r/t?a=\"b\"""#;
    assert!(matches!(challenge(escaped), Some(Challenge::Bearer { realm, .. }) if realm == r#"https://r/t?a="b""#));
    assert_eq!(challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
    assert_eq!(challenge("Bearer service=x"), None, "no realm: nothing to ask");
    assert_eq!(challenge("Negotiate abc"), None);
    assert_eq!(challenge(""), None);
}

#[test]
fn keys_normalize_to_host_and_path() {
    let table = [
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("quay.io/team/", "quay.io/team"),
        ("r.example/v2/", "r.example"),
    ];
    for (key, want) in table {
        assert_eq!(normalize_key(key), want, "{key}");
    }
}

fn data(key: &str, json: &str) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([(key.to_string(), json.as_bytes().to_vec())])
}

#[test]
fn secrets_give_credentials_from_auth_or_fields() {
    // "u:p:w" -> the password keeps its colon.
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p:w");
    let json = format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "r.io": {{"username": "a", "password": "b"}}, "bad": {{"auth": "!!"}}}}}}"#
    );
    let got = parse_secret(&data(".dockerconfigjson", &json)).unwrap();
    assert_eq!(
        got,
        vec![
            ("docker.io".to_string(), Credential { username: "u".into(), password: "p:w".into() }),
            ("r.io".to_string(), Credential { username: "a".into(), password: "b".into() }),
        ]
    );
    let legacy = parse_secret(&data(".dockercfg", r#"{"r.io": {"username": "a", "password": "b"}}"#)).unwrap();
    assert_eq!(legacy.len(), 1);
    assert!(parse_secret(&data(".dockerconfigjson", "[]")).unwrap_err().contains("not a Docker config"));
    assert!(parse_secret(&data("token", "x")).unwrap_err().contains("neither"));
}

#[test]
fn the_most_specific_matching_key_comes_first() {
    let c = |u: &str| Credential { username: u.into(), password: String::new() };
    let entries = vec![
        ("r.io".to_string(), c("host")),
        ("r.io/team".to_string(), c("team")),
        ("r.io/teams".to_string(), c("other-path")),
        ("q.io".to_string(), c("other-host")),
    ];
    let names = |v: Vec<&Credential>| v.into_iter().map(|c| c.username.clone()).collect::<Vec<_>>();
    assert_eq!(names(matching(&entries, "r.io", "team/app")), ["team", "host"]);
    assert_eq!(names(matching(&entries, "r.io", "other/app")), ["host"]);
    assert!(matching(&entries, "z.io", "team/app").is_empty());
}
