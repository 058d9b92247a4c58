//! Making certificates (rcgen on ring, ECDSA P-256): the CA, and serving certificates it signs.

use super::{ServingCert, Stored, CA_VALIDITY, SERVING_VALIDITY};
use crate::place::PlaceError;

/// Certificates start an hour back: a node whose clock is a little behind still accepts them.
const BACKDATE: i64 = 3_600;

pub(crate) fn cert_err(what: &str, e: impl std::fmt::Display) -> PlaceError {
    PlaceError::Cert {
        what: what.into(),
        detail: e.to_string(),
        hint: "delete the Secret named by --tls-secret; the component generates a new one".into(),
    }
}

fn at(unix: i64) -> Result<time::OffsetDateTime, PlaceError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| cert_err("certificate time", e))
}

fn ca_params(ns: &str) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("binfmtd-placement CA ({ns})"),
    );
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    Ok(p)
}

/// A new CA and a serving certificate it signed.
pub fn generate(ns: &str, names: &[String], now: i64) -> Result<Stored, PlaceError> {
    let ca_key = rcgen::KeyPair::generate().map_err(|e| cert_err("generate the CA key", e))?;
    let mut params = ca_params(ns).map_err(|e| cert_err("CA parameters", e))?;
    params.not_before = at(now - BACKDATE)?;
    params.not_after = at(now + CA_VALIDITY)?;
    let ca = params
        .self_signed(&ca_key)
        .map_err(|e| cert_err("sign the CA", e))?;
    let ca_pem = ca.pem();
    reissue_with(ns, &ca_pem, &ca_key, now + CA_VALIDITY, names, now)
}

/// A new serving certificate from the stored CA.
pub fn reissue(ns: &str, old: &Stored, names: &[String], now: i64) -> Result<Stored, PlaceError> {
    let ca_key =
        rcgen::KeyPair::from_pem(&old.ca_key_pem).map_err(|e| cert_err("read the CA key", e))?;
    reissue_with(
        ns,
        &old.serving.ca_pem,
        &ca_key,
        old.ca_not_after,
        names,
        now,
    )
}

fn reissue_with(
    ns: &str,
    ca_pem: &str,
    ca_key: &rcgen::KeyPair,
    ca_not_after: i64,
    names: &[String],
    now: i64,
) -> Result<Stored, PlaceError> {
    // Signing needs only the CA's name and key: rebuilt from the same parameters, the
    // issuer and authority key identifier match the CA certificate in the caBundle.
    let issuer = ca_params(ns)
        .and_then(|p| p.self_signed(ca_key))
        .map_err(|e| cert_err("rebuild the CA", e))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| cert_err("serving certificate names", e))?;
    let cn = names.get(2).or(names.first()).cloned().unwrap_or_default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let not_after = (now + SERVING_VALIDITY).min(ca_not_after);
    params.not_before = at(now - BACKDATE)?;
    params.not_after = at(not_after)?;
    let key = rcgen::KeyPair::generate().map_err(|e| cert_err("generate the serving key", e))?;
    let cert = params
        .signed_by(&key, &issuer, ca_key)
        .map_err(|e| cert_err("sign the serving certificate", e))?;
    Ok(Stored {
        serving: ServingCert {
            ca_pem: ca_pem.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        },
        ca_key_pem: ca_key.serialize_pem(),
        ca_not_after,
        dns_names: names.to_vec(),
    })
}
