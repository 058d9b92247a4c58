use super::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn lease(holder: Option<&str>, renewed: Option<i64>, duration: i32) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed.map(|s| MicroTime(t(s))),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
        ..Lease::default()
    }
}

#[test]
fn step_table() {
    let held = lease(Some("b"), Some(0), 15);
    let released = lease(None, Some(0), 1);
    let empty = lease(Some(""), Some(0), 15);
    let timeless = lease(Some("b"), None, 15);
    let cases: &[(Option<&Lease>, i64, Step)] = &[
        (None, 0, Step::Create),
        (
            Some(&held),
            5,
            Step::Wait {
                holder: "b".into(),
                expires: t(15),
            },
        ),
        (
            Some(&held),
            14,
            Step::Wait {
                holder: "b".into(),
                expires: t(15),
            },
        ),
        // Expired exactly at renewTime + duration.
        (Some(&held), 15, Step::TakeOver),
        (Some(&held), 100, Step::TakeOver),
        (Some(&released), 0, Step::TakeOver),
        (Some(&empty), 0, Step::TakeOver),
        (Some(&timeless), 0, Step::TakeOver),
    ];
    for (i, (l, now, want)) in cases.iter().enumerate() {
        assert_eq!(step(*l, "a", t(*now)), *want, "case {i}");
    }
    // Our own Lease is renewed whatever its times say.
    assert_eq!(step(Some(&held), "b", t(1000)), Step::Renew);
}

#[test]
fn next_writes_the_holder_times_and_transitions() {
    let d = Duration::from_secs(15);
    let held = lease(Some("b"), Some(0), 15);
    let spec = |l: Option<Lease>| l.unwrap().spec.unwrap();

    let created = spec(next(None, &Step::Create, "a", d, t(1)));
    assert_eq!(created.holder_identity.as_deref(), Some("a"));
    assert_eq!(created.lease_transitions, Some(0));
    assert_eq!(created.acquire_time, Some(MicroTime(t(1))));
    assert_eq!(created.renew_time, Some(MicroTime(t(1))));
    assert_eq!(created.lease_duration_seconds, Some(15));

    let taken = spec(next(Some(&held), &Step::TakeOver, "a", d, t(20)));
    assert_eq!(taken.holder_identity.as_deref(), Some("a"));
    assert_eq!(taken.lease_transitions, Some(4));
    assert_eq!(taken.acquire_time, Some(MicroTime(t(20))));

    let renewed = spec(next(Some(&held), &Step::Renew, "b", d, t(9)));
    assert_eq!(renewed.holder_identity.as_deref(), Some("b"));
    assert_eq!(renewed.lease_transitions, Some(3));
    assert_eq!(renewed.renew_time, Some(MicroTime(t(9))));

    let wait = Step::Wait {
        holder: "b".into(),
        expires: t(15),
    };
    assert_eq!(next(Some(&held), &wait, "a", d, t(2)), None);

    let gone = released(&held, t(3)).spec.unwrap();
    assert_eq!(gone.holder_identity, None);
    assert_eq!(
        step(Some(&released(&held, t(3))), "a", t(3)),
        Step::TakeOver
    );
}
