use super::*;

fn names() -> Vec<String> {
    dns_names("binfmtd-placement", "binfmtd", &[])
}

fn stored(not_after: i64, ca_not_after: i64) -> Result<Stored, String> {
    Ok(Stored {
        serving: ServingCert {
            ca_pem: "ca".into(),
            cert_pem: "c".into(),
            key_pem: "k".into(),
            not_after,
        },
        ca_key_pem: "cak".into(),
        ca_not_after,
        dns_names: names(),
    })
}

#[test]
fn the_names_are_what_the_api_server_dials() {
    assert_eq!(
        dns_names("svc", "ns", &["127.0.0.1".into()]),
        [
            "svc",
            "svc.ns",
            "svc.ns.svc",
            "svc.ns.svc.cluster.local",
            "127.0.0.1"
        ]
    );
}

#[test]
fn action_table() {
    let now = 1_000_000_000;
    let fresh = stored(now + SERVING_VALIDITY, now + CA_VALIDITY);
    let renew_due = stored(now + RENEW_BEFORE - 1, now + CA_VALIDITY);
    let just_ok = stored(now + RENEW_BEFORE, now + CA_VALIDITY);
    let ca_due = stored(now + SERVING_VALIDITY, now + CA_RENEW_BEFORE - 1);
    let unreadable: Result<Stored, String> = Err("no tls.key".into());
    let mut renamed = fresh.clone();
    renamed.as_mut().unwrap().dns_names.pop();
    let cases: &[(Option<&Result<Stored, String>>, Action)] = &[
        (None, Action::Create),
        (Some(&fresh), Action::Use),
        (Some(&just_ok), Action::Use),
        (Some(&renew_due), Action::Reissue),
        (Some(&renamed), Action::Reissue),
        (Some(&ca_due), Action::Regenerate),
        (Some(&unreadable), Action::Regenerate),
    ];
    for (i, (s, want)) in cases.iter().enumerate() {
        assert_eq!(action(*s, &names(), now), *want, "case {i}");
    }
}

#[test]
fn a_secret_round_trips_and_a_broken_one_says_what_is_missing() {
    let s = generate("binfmtd", &names(), now()).unwrap();
    let secret = to_secret("tls", "binfmtd", &s);
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(from_secret(&secret).unwrap() == s);
    let mut broken = secret.clone();
    broken.data.as_mut().unwrap().remove("tls.key");
    assert_eq!(from_secret(&broken).err().unwrap(), "no tls.key");
    let mut broken = secret;
    broken
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(NOT_AFTER);
    assert!(from_secret(&broken).err().unwrap().contains(NOT_AFTER));
}

/// A reissued certificate chains to the CA already in the caBundle: what rustls (the same
/// verification the webhook's clients do) accepts for the service's name.
#[test]
fn a_reissued_certificate_verifies_against_the_original_ca() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let t = now();
    let first = generate("binfmtd", &names(), t).unwrap();
    let second = reissue("binfmtd", &first, &names(), t + 10).unwrap();
    assert_eq!(first.serving.ca_pem, second.serving.ca_pem);
    assert_ne!(first.serving.cert_pem, second.serving.cert_pem);
    assert_eq!(second.serving.not_after, t + 10 + SERVING_VALIDITY);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(first.serving.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
    let now_t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(t as u64 + 20));
    for s in [&first, &second] {
        let leaf = CertificateDer::from_pem_slice(s.serving.cert_pem.as_bytes()).unwrap();
        let name = ServerName::try_from("binfmtd-placement.binfmtd.svc").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], now_t)
            .unwrap();
        let wrong = ServerName::try_from("other.binfmtd.svc").unwrap();
        assert!(verifier
            .verify_server_cert(&leaf, &[], &wrong, &[], now_t)
            .is_err());
    }
    // A serving certificate never outlives its CA.
    let mut old_ca = first.clone();
    old_ca.ca_not_after = t + 100;
    assert_eq!(
        reissue("binfmtd", &old_ca, &names(), t)
            .unwrap()
            .serving
            .not_after,
        t + 100
    );
}

#[test]
fn the_ca_bundle_patch_touches_only_webhooks_without_it() {
    use base64::Engine;
    let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca);
    let mwc = json!({"webhooks": [
        {"name": "a", "clientConfig": {"caBundle": b64, "service": {"name": "s"}}},
        {"name": "b", "clientConfig": {"caBundle": "b2xk"}},
        {"name": "c", "clientConfig": {}},
    ]});
    assert_eq!(
        ca_bundle_patch(&mwc, ca),
        Some(json!({"webhooks": [
            {"name": "b", "clientConfig": {"caBundle": b64}},
            {"name": "c", "clientConfig": {"caBundle": b64}},
        ]}))
    );
    let done = json!({"webhooks": [{"name": "a", "clientConfig": {"caBundle": b64}}]});
    assert_eq!(ca_bundle_patch(&done, ca), None);
    assert_eq!(ca_bundle_patch(&json!({}), ca), None);
}
