use super::*;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

#[test]
fn pin_every_shape() {
    let a = d('a');
    let b = d('b');
    /// (case, reference, registry, tag, pinned to digest b)
    type Row<'a> = (&'a str, String, Option<&'a str>, Option<&'a str>, String);
    let rows: Vec<Row> = vec![
        (
            "bare docker hub name",
            "nginx".into(),
            None,
            None,
            format!("nginx@{b}"),
        ),
        (
            "hub name with tag",
            "nginx:1.27-alpine".into(),
            None,
            Some("1.27-alpine"),
            format!("nginx@{b}"),
        ),
        (
            "hub user repo",
            "bitnami/redis:7.2".into(),
            None,
            Some("7.2"),
            format!("bitnami/redis@{b}"),
        ),
        (
            "explicit docker.io",
            "docker.io/library/busybox:latest".into(),
            Some("docker.io"),
            Some("latest"),
            format!("docker.io/library/busybox@{b}"),
        ),
        (
            "registry with port, no tag",
            "registry.local:5000/team/app".into(),
            Some("registry.local:5000"),
            None,
            format!("registry.local:5000/team/app@{b}"),
        ),
        (
            "registry with port and tag",
            "registry.local:5000/team/app:v1.2.3".into(),
            Some("registry.local:5000"),
            Some("v1.2.3"),
            format!("registry.local:5000/team/app@{b}"),
        ),
        (
            "localhost with port",
            "localhost:5000/app:dev".into(),
            Some("localhost:5000"),
            Some("dev"),
            format!("localhost:5000/app@{b}"),
        ),
        (
            "localhost without port",
            "localhost/app".into(),
            Some("localhost"),
            None,
            format!("localhost/app@{b}"),
        ),
        (
            "ipv4 registry",
            "127.0.0.1:5000/a/b/c:t".into(),
            Some("127.0.0.1:5000"),
            Some("t"),
            format!("127.0.0.1:5000/a/b/c@{b}"),
        ),
        (
            "ipv6 registry",
            "[::1]:5000/app:1".into(),
            Some("[::1]:5000"),
            Some("1"),
            format!("[::1]:5000/app@{b}"),
        ),
        (
            "ecr",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc:2024-01".into(),
            Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some("2024-01"),
            format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc@{b}"),
        ),
        (
            "already digested (index digest)",
            format!("ghcr.io/org/app@{a}"),
            Some("ghcr.io"),
            None,
            format!("ghcr.io/org/app@{b}"),
        ),
        (
            "tag and digest",
            format!("ghcr.io/org/app:1.0@{a}"),
            Some("ghcr.io"),
            Some("1.0"),
            format!("ghcr.io/org/app@{b}"),
        ),
        (
            "separators in path",
            "quay.io/my_org/my-app.v2__x:T_1".into(),
            Some("quay.io"),
            Some("T_1"),
            format!("quay.io/my_org/my-app.v2__x@{b}"),
        ),
        (
            "first component without dot is a path",
            "team/app:1".into(),
            None,
            Some("1"),
            format!("team/app@{b}"),
        ),
    ];
    for (case, reference, registry, tag, want) in rows {
        let r = parse(&reference).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(r.registry, registry, "{case}");
        assert_eq!(r.tag, tag, "{case}");
        assert_eq!(pin(&reference, &b).unwrap(), want, "{case}");
        assert_eq!(
            parse(&want).unwrap().digest,
            Some(b.as_str()),
            "{case}: the pinned form parses back"
        );
    }
}

#[test]
fn refusals() {
    let a = d('a');
    let rows: Vec<(&str, String, &str)> = vec![
        ("empty", "".into(), "empty"),
        ("uppercase path", "Nginx:1".into(), "lowercase"),
        ("trailing slash", "nginx/".into(), "lowercase"),
        ("double slash", "a//b".into(), "lowercase"),
        ("leading separator", "-nginx".into(), "lowercase"),
        ("triple underscore", "a___b".into(), "lowercase"),
        ("space", "nginx latest".into(), "lowercase"),
        ("empty tag", "nginx:".into(), "tag"),
        ("tag starting with dot", "nginx:.x".into(), "tag"),
        ("tag too long", format!("nginx:{}", "t".repeat(129)), "tag"),
        ("bad digest", "nginx@sha256:1234".into(), "after '@'"),
        ("two digests", format!("nginx@{a}@{a}"), "after '@'"),
        ("bad port", "reg.io:50x0/app".into(), "registry"),
        ("port too long", "reg.io:500000/app".into(), "registry"),
        (
            "host label with dash at end",
            "reg-.io/app".into(),
            "registry",
        ),
        ("name too long", format!("r.io/{}", "a".repeat(260)), "255"),
    ];
    for (case, reference, want) in rows {
        let e = parse(&reference).expect_err(case);
        assert!(e.to_string().contains(want), "{case}: {e}");
        assert!(e.to_string().contains("Hint:"), "{case}");
    }
    let e = pin("nginx", "sha256:nope").unwrap_err();
    assert!(e.why.contains("digest to pin"), "{e}");
}
