//! The webhook's serving certificate, without cert-manager: a private CA and a serving
//! certificate for `<service>.<ns>.svc` generated here (rcgen on ring), kept in one Secret
//! that every replica shares, and the CA kept as the caBundle of every webhook of the
//! MutatingWebhookConfiguration.
//!
//! Two replicas starting together both find no Secret and both generate; the API server lets
//! exactly one `create` succeed, and the other reads the winner's Secret and uses it, so the
//! cluster ends with one certificate. Renewal is the same race on `replace` with the
//! resourceVersion read: the loser's write conflicts and it reads again.
//!
//! Lifetimes: the CA lives `CA_VALIDITY` (10 years) and is kept across renewals, so the
//! caBundle the API server trusts does not change when the serving certificate is renewed
//! (no window where the API server and the webhook disagree). The serving certificate lives
//! `SERVING_VALIDITY` (1 year) and is reissued once less than `RENEW_BEFORE` (30 days) is
//! left, or when the DNS names it must carry changed. A CA with less than `CA_RENEW_BEFORE`
//! left is replaced with everything else.
//!
//! The decision (`action`) and the caBundle patch (`ca_bundle_patch`) are plain functions
//! over values; `ensure` and `keep` are the API edge; `issue` makes certificates (rcgen).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::PlaceError;
pub(crate) use issue::cert_err;
pub use issue::{generate, reissue};

mod issue;

pub const CA_VALIDITY: i64 = 10 * 365 * DAY;
pub const CA_RENEW_BEFORE: i64 = 365 * DAY;
pub const SERVING_VALIDITY: i64 = 365 * DAY;
pub const RENEW_BEFORE: i64 = 30 * DAY;
const DAY: i64 = 86_400;

/// Annotations on the Secret: what the PEM says, so deciding needs no X.509 parser.
pub const NOT_AFTER: &str = "binfmtd.io/serving-not-after";
pub const CA_NOT_AFTER: &str = "binfmtd.io/ca-not-after";
pub const DNS_NAMES: &str = "binfmtd.io/dns-names";
const FIELD_MANAGER: &str = "binfmtd-placement";

/// What the webhook serves and the API server trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct ServingCert {
    /// The CA certificate: the caBundle.
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for ServingCert {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Everything the Secret holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    pub serving: ServingCert,
    pub ca_key_pem: String,
    pub ca_not_after: i64,
    pub dns_names: Vec<String>,
}

/// What to do with the Secret as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No Secret: generate and create it.
    Create,
    /// Good as it is.
    Use,
    /// A new serving certificate from the same CA (the caBundle stays).
    Reissue,
    /// A new CA and serving certificate: the Secret is unreadable or the CA nearly expired.
    Regenerate,
}

/// The names the serving certificate carries: what the API server dials for a Service
/// reference (`<service>.<ns>.svc`), the cluster-domain form, and any `extra` (tests dial
/// 127.0.0.1).
pub fn dns_names(service: &str, ns: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        service.to_string(),
        format!("{service}.{ns}"),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
    ];
    names.extend(extra.iter().cloned());
    names
}

/// Decide from the Secret as read (`Err`: present but unreadable, with why).
pub fn action(stored: Option<&Result<Stored, String>>, names: &[String], now: i64) -> Action {
    let Some(stored) = stored else {
        return Action::Create;
    };
    let Ok(s) = stored else {
        return Action::Regenerate;
    };
    if s.ca_not_after - now < CA_RENEW_BEFORE {
        Action::Regenerate
    } else if s.serving.not_after - now < RENEW_BEFORE || s.dns_names != names {
        Action::Reissue
    } else {
        Action::Use
    }
}

/// Read what `to_secret` wrote.
pub fn from_secret(secret: &Secret) -> Result<Stored, String> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |k: &str| -> Result<String, String> {
        let v = data.get(k).ok_or_else(|| format!("no {k}"))?;
        String::from_utf8(v.0.clone()).map_err(|_| format!("{k} is not PEM text"))
    };
    let no_notes = BTreeMap::new();
    let notes = secret.metadata.annotations.as_ref().unwrap_or(&no_notes);
    let secs = |k: &str| -> Result<i64, String> {
        notes
            .get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no annotation {k}"))
    };
    Ok(Stored {
        serving: ServingCert {
            ca_pem: text("ca.crt")?,
            cert_pem: text("tls.crt")?,
            key_pem: text("tls.key")?,
            not_after: secs(NOT_AFTER)?,
        },
        ca_key_pem: text("ca.key")?,
        ca_not_after: secs(CA_NOT_AFTER)?,
        dns_names: notes
            .get(DNS_NAMES)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// The Secret (type kubernetes.io/tls) holding `s`.
pub fn to_secret(name: &str, ns: &str, s: &Stored) -> Secret {
    let bytes = |v: &str| ByteString(v.as_bytes().to_vec());
    let data = BTreeMap::from([
        ("ca.crt".to_string(), bytes(&s.serving.ca_pem)),
        ("ca.key".to_string(), bytes(&s.ca_key_pem)),
        ("tls.crt".to_string(), bytes(&s.serving.cert_pem)),
        ("tls.key".to_string(), bytes(&s.serving.key_pem)),
    ]);
    let notes = BTreeMap::from([
        (NOT_AFTER.to_string(), s.serving.not_after.to_string()),
        (CA_NOT_AFTER.to_string(), s.ca_not_after.to_string()),
        (DNS_NAMES.to_string(), s.dns_names.join(",")),
    ]);
    let mut secret = Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(ns.into());
    secret.metadata.annotations = Some(notes);
    secret.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        "binfmtd-placement".to_string(),
    )]));
    secret
}

/// The strategic merge patch that sets `ca_pem` as the caBundle of every webhook of `mwc`
/// (a MutatingWebhookConfiguration as JSON) that lacks it; None when all have it. Webhooks
/// merge by name, so other fields and other webhooks are untouched.
pub fn ca_bundle_patch(mwc: &Value, ca_pem: &str) -> Option<Value> {
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let stale: Vec<Value> = mwc
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|w| w.pointer("/clientConfig/caBundle").and_then(Value::as_str) != Some(&want))
        .filter_map(|w| w.get("name").and_then(Value::as_str))
        .map(|name| json!({"name": name, "clientConfig": {"caBundle": want}}))
        .collect();
    (!stale.is_empty()).then(|| json!({"webhooks": stale}))
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `ensure_for` with the Service's names only (what runs in the cluster).
pub async fn ensure(
    client: Client,
    ns: &str,
    secret: &str,
    service: &str,
    webhook_config: &str,
) -> Result<ServingCert, PlaceError> {
    ensure_for(client, ns, secret, service, webhook_config, &[]).await
}

/// Load the serving certificate from Secret `secret` in `ns`, generating, reissuing or
/// regenerating it as `action` says, then keep its CA in every webhook of `webhook_config`.
/// `extra_names`: more names (or IP addresses) for the certificate.
pub async fn ensure_for(
    client: Client,
    ns: &str,
    secret: &str,
    service: &str,
    webhook_config: &str,
    extra_names: &[String],
) -> Result<ServingCert, PlaceError> {
    let names = dns_names(service, ns, extra_names);
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let what = |verb: &str| format!("{verb} Secret {ns}/{secret}");
    // Each round reads the Secret and writes at most once; a conflict means another
    // replica wrote first, and the next round reads theirs.
    let mut last = None;
    let mut chosen = None;
    for _ in 0..5 {
        let found = api
            .get_opt(secret)
            .await
            .map_err(|e| PlaceError::kube(what("get"), &e))?;
        let stored = found.as_ref().map(from_secret);
        let now = now();
        let written = match action(stored.as_ref(), &names, now) {
            Action::Use => {
                chosen = stored.and_then(Result::ok);
                break;
            }
            Action::Create => {
                let new = generate(ns, &names, now)?;
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                api.create(&pp, &to_secret(secret, ns, &new))
                    .await
                    .map(|_| new)
                    .map_err(|e| (what("create"), e))
            }
            act => {
                let new = match (&stored, act) {
                    (Some(Ok(old)), Action::Reissue) => reissue(ns, old, &names, now)?,
                    _ => generate(ns, &names, now)?,
                };
                if let Some(Err(why)) = &stored {
                    tracing::warn!(secret = %format!("{ns}/{secret}"), "the serving certificate's Secret is unreadable ({why}); replacing it with a new CA and certificate");
                }
                let mut s = to_secret(secret, ns, &new);
                s.metadata.resource_version = found
                    .as_ref()
                    .and_then(|f| f.metadata.resource_version.clone());
                api.replace(secret, &PostParams::default(), &s)
                    .await
                    .map(|_| new)
                    .map_err(|e| (what("replace"), e))
            }
        };
        match written {
            Ok(new) => {
                tracing::info!(secret = %format!("{ns}/{secret}"), not_after = new.serving.not_after, "wrote the webhook's serving certificate");
                chosen = Some(new);
                break;
            }
            // 409: AlreadyExists on create, Conflict on replace: another replica won.
            Err((_, kube::Error::Api(s))) if s.code == 409 => {
                last = Some("409 from a racing replica")
            }
            Err((w, e)) => return Err(PlaceError::kube(w, &e)),
        }
    }
    let stored = chosen.ok_or_else(|| PlaceError::Kube {
        what: what("write"),
        detail: format!("still conflicting after 5 rounds ({})", last.unwrap_or("")),
        hint: "something else keeps rewriting the Secret: check who (kubectl get secret -o yaml, managedFields)".into(),
    })?;
    keep_ca_bundle(client, webhook_config, &stored.serving.ca_pem).await?;
    Ok(stored.serving)
}

/// Set the caBundle of every webhook of `name`, patching only when one differs. A missing
/// configuration is not an error: placement was turned off by deleting it.
pub async fn keep_ca_bundle(client: Client, name: &str, ca_pem: &str) -> Result<bool, PlaceError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let what = |verb: &str| format!("{verb} MutatingWebhookConfiguration {name}");
    let Some(mwc) = api
        .get_opt(name)
        .await
        .map_err(|e| PlaceError::kube(what("get"), &e))?
    else {
        tracing::warn!("MutatingWebhookConfiguration {name} does not exist: no pod is gated until it is applied again (daemonset/components/placement)");
        return Ok(false);
    };
    let mwc =
        serde_json::to_value(&mwc).map_err(|e| cert_err("encode the webhook configuration", e))?;
    let Some(patch) = ca_bundle_patch(&mwc, ca_pem) else {
        return Ok(false);
    };
    let pp = PatchParams::default();
    api.patch(name, &pp, &Patch::Strategic(patch))
        .await
        .map_err(|e| PlaceError::kube(what("patch the caBundle of"), &e))?;
    tracing::info!("set the caBundle of MutatingWebhookConfiguration {name}");
    Ok(true)
}

/// How often the component runs `keep`'s check: the certificate is reissued 30 days before it
/// ends, and a caBundle lost (the configuration deleted and re-applied) comes back within this
/// long.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Run `ensure_for` every `every`, forever; `on_new` gets each certificate that differs from
/// the last one (the webhook reloads it). Errors are logged and retried at the next round:
/// the certificate in use stays valid for at least `RENEW_BEFORE`.
#[allow(clippy::too_many_arguments)]
pub async fn keep(
    client: Client,
    ns: &str,
    secret: &str,
    service: &str,
    webhook_config: &str,
    extra_names: &[String],
    mut current: ServingCert,
    every: std::time::Duration,
    on_new: impl Fn(&ServingCert),
) {
    loop {
        tokio::time::sleep(every).await;
        match ensure_for(
            client.clone(),
            ns,
            secret,
            service,
            webhook_config,
            extra_names,
        )
        .await
        {
            Ok(c) if c != current => {
                on_new(&c);
                current = c;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("serving certificate: {e}; retrying in {every:?}"),
        }
    }
}

#[cfg(test)]
mod tests;
