use super::eligible;
use crate::placement::nodes::NodeCaps;
use crate::placement::test_support::*;
use k8s_openapi::api::core::v1::Pod;

#[test]
fn the_eligibility_table() {
    let app = || pod(&[], &[("app", "x:1")]);
    let node = || {
        labelled(
            labelled(caps("n1", "arm64", &["amd64"], true), "pool", "batch"),
            "cpus",
            "16",
        )
    };
    let req = |exprs| with_required(app(), vec![term(exprs)]);
    let rows: Vec<(&str, Pod, NodeCaps, bool)> = vec![
        ("no constraints", app(), node(), true),
        (
            "nodeSelector matches",
            with_selector(app(), "pool", "batch"),
            node(),
            true,
        ),
        (
            "nodeSelector differs",
            with_selector(app(), "pool", "web"),
            node(),
            false,
        ),
        (
            "nodeSelector key missing",
            with_selector(app(), "gpu", "yes"),
            node(),
            false,
        ),
        (
            "In",
            req(vec![expr("pool", "In", &["web", "batch"])]),
            node(),
            true,
        ),
        (
            "In, key missing",
            req(vec![expr("gpu", "In", &["yes"])]),
            node(),
            false,
        ),
        (
            "NotIn",
            req(vec![expr("pool", "NotIn", &["web"])]),
            node(),
            true,
        ),
        (
            "NotIn, value listed",
            req(vec![expr("pool", "NotIn", &["batch"])]),
            node(),
            false,
        ),
        (
            "NotIn, key missing matches",
            req(vec![expr("gpu", "NotIn", &["yes"])]),
            node(),
            true,
        ),
        (
            "Exists",
            req(vec![expr("pool", "Exists", &[])]),
            node(),
            true,
        ),
        (
            "DoesNotExist",
            req(vec![expr("pool", "DoesNotExist", &[])]),
            node(),
            false,
        ),
        ("Gt", req(vec![expr("cpus", "Gt", &["8"])]), node(), true),
        (
            "Gt, equal is not greater",
            req(vec![expr("cpus", "Gt", &["16"])]),
            node(),
            false,
        ),
        ("Lt", req(vec![expr("cpus", "Lt", &["32"])]), node(), true),
        (
            "Gt on a non-number",
            req(vec![expr("pool", "Gt", &["1"])]),
            node(),
            false,
        ),
        (
            "unknown operator matches nothing",
            req(vec![expr("pool", "Like", &["b"])]),
            node(),
            false,
        ),
        (
            "expressions are ANDed",
            req(vec![
                expr("pool", "In", &["batch"]),
                expr("cpus", "Lt", &["4"]),
            ]),
            node(),
            false,
        ),
        (
            "terms are ORed",
            with_required(
                app(),
                vec![
                    term(vec![expr("pool", "In", &["web"])]),
                    term(vec![expr("cpus", "Gt", &["4"])]),
                ],
            ),
            node(),
            true,
        ),
        (
            "empty term matches nothing",
            with_required(app(), vec![term(vec![])]),
            node(),
            false,
        ),
        (
            "matchFields on the node name",
            with_required(
                app(),
                vec![with_fields(
                    term(vec![]),
                    vec![expr("metadata.name", "In", &["n1"])],
                )],
            ),
            node(),
            true,
        ),
        (
            "matchFields on another name",
            with_required(
                app(),
                vec![with_fields(
                    term(vec![]),
                    vec![expr("metadata.name", "In", &["n2"])],
                )],
            ),
            node(),
            false,
        ),
        (
            "NoSchedule taint, not tolerated",
            app(),
            tainted(node(), "dedicated", Some("gpu"), "NoSchedule"),
            false,
        ),
        (
            "NoExecute taint, not tolerated",
            app(),
            tainted(node(), "dedicated", None, "NoExecute"),
            false,
        ),
        (
            "PreferNoSchedule does not exclude",
            app(),
            tainted(node(), "dedicated", Some("gpu"), "PreferNoSchedule"),
            true,
        ),
        (
            "tolerated by Equal",
            tolerating(
                app(),
                Some("dedicated"),
                "Equal",
                Some("gpu"),
                Some("NoSchedule"),
            ),
            tainted(node(), "dedicated", Some("gpu"), "NoSchedule"),
            true,
        ),
        (
            "Equal with another value",
            tolerating(app(), Some("dedicated"), "Equal", Some("web"), None),
            tainted(node(), "dedicated", Some("gpu"), "NoSchedule"),
            false,
        ),
        (
            "Exists on the key, any effect",
            tolerating(app(), Some("dedicated"), "Exists", None, None),
            tainted(node(), "dedicated", Some("gpu"), "NoExecute"),
            true,
        ),
        (
            "toleration for another effect",
            tolerating(app(), Some("dedicated"), "Exists", None, Some("NoExecute")),
            tainted(node(), "dedicated", Some("gpu"), "NoSchedule"),
            false,
        ),
        (
            "empty key with Exists tolerates everything",
            tolerating(app(), None, "Exists", None, None),
            tainted(
                tainted(node(), "a", None, "NoSchedule"),
                "b",
                Some("c"),
                "NoExecute",
            ),
            true,
        ),
        (
            "one of two taints tolerated",
            tolerating(app(), Some("a"), "Exists", None, None),
            tainted(
                tainted(node(), "a", None, "NoSchedule"),
                "b",
                Some("c"),
                "NoExecute",
            ),
            false,
        ),
    ];
    for (case, p, n, want) in rows {
        assert_eq!(eligible(&p, &n), want, "{case}");
    }
}
