//! The distribution API over HTTPS (reqwest on rustls/ring): GET a manifest or a blob,
//! answering 401 challenges as registries send them (Bearer: a token from the realm, with
//! the credential as basic auth when there is one; Basic: the credential itself), bodies
//! read against a byte cap before they are kept. Tokens are reused until they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{header, Client, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::auth::{challenge, Challenge, Credential};
use super::names::Location;
use super::{Fetch, RegistryError, Served};
use crate::placement::platforms::MAX_BYTES;

/// Every kind placement reads, indexes first (a registry then serves the index of a tag).
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A token without `expires_in` is good for 60 s (the distribution token spec's default).
const TOKEN_DEFAULT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(Credential),
}

/// (api host, scope, username) -> token and when it expires.
type Tokens = HashMap<(String, String, String), (String, Instant)>;

pub struct Http {
    client: Client,
    tokens: Mutex<Tokens>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Http {
    /// A client trusting the system roots plus the PEM bundles in `extra_ca`.
    pub fn new(extra_ca: &[PathBuf]) -> Result<Http, String> {
        let mut b = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("binfmtd-placement/", env!("CARGO_PKG_VERSION")));
        for path in extra_ca {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read registry CA bundle {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "registry CA bundle {} is not PEM certificates: {e}",
                    path.display()
                )
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "registry CA bundle {} holds no certificate",
                    path.display()
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot build the registry HTTP client: {e}"))?;
        Ok(Http {
            client,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn token_key(loc: &Location, cred: Option<&Credential>) -> (String, String, String) {
        let user = cred.map(|c| c.username.clone()).unwrap_or_default();
        (loc.api_host.clone(), loc.scope(), user)
    }

    fn cached_token(&self, loc: &Location, cred: Option<&Credential>) -> Option<Auth> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let (t, until) = tokens.get(&Self::token_key(loc, cred))?;
        (Instant::now() < *until).then(|| Auth::Bearer(t.clone()))
    }

    fn unreachable(loc: &Location, e: reqwest::Error) -> RegistryError {
        // The source chain says why (DNS, refused, TLS trust): keep all of it.
        let detail = crate::fetch::http::chain(&e);
        RegistryError::Unreachable {
            registry: loc.registry.clone(),
            detail,
        }
    }

    fn with(req: RequestBuilder, auth: &Option<Auth>) -> RequestBuilder {
        match auth {
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            Some(Auth::Basic(c)) => req.basic_auth(&c.username, Some(&c.password)),
            None => req,
        }
    }

    /// Ask the realm for a pull token for this repository.
    async fn token(
        &self,
        loc: &Location,
        realm: &str,
        service: Option<&str>,
        cred: Option<&Credential>,
    ) -> Result<Option<Auth>, RegistryError> {
        let scope = loc.scope();
        let mut query: Vec<(&str, &str)> = vec![("scope", &scope)];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let req = self.client.get(realm).query(&query);
        let req = Self::with(req, &cred.cloned().map(Auth::Basic));
        let resp = req.send().await.map_err(|e| Self::unreachable(loc, e))?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(RegistryError::Status {
                registry: loc.registry.clone(),
                what: format!("a token from {realm}"),
                code: resp.status().as_u16(),
            });
        }
        let body = read_capped(loc, "the token answer", resp).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Status {
                registry: loc.registry.clone(),
                what: format!("a token from {realm} (not JSON: {e})"),
                code: 200,
            })?;
        let Some(token) = answer.token.or(answer.access_token) else {
            return Ok(None);
        };
        let life = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(TOKEN_DEFAULT);
        // Renew a little early: a token must not expire between the manifest and its config.
        let until = Instant::now() + life.saturating_sub(Duration::from_secs(5));
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() > 4096 {
            tokens.retain(|_, (_, u)| *u > Instant::now());
        }
        tokens.insert(Self::token_key(loc, cred), (token.clone(), until));
        Ok(Some(Auth::Bearer(token)))
    }

    /// GET `url` as each credential in turn (or anonymously), answering one challenge each.
    async fn get(
        &self,
        loc: &Location,
        url: &str,
        accept: &str,
        creds: &[&Credential],
    ) -> Result<Response, RegistryError> {
        let candidates: Vec<Option<&Credential>> = if creds.is_empty() {
            vec![None]
        } else {
            creds.iter().map(|c| Some(*c)).collect()
        };
        let mut last = (StatusCode::UNAUTHORIZED, String::new());
        for cred in candidates {
            let send = |auth: &Option<Auth>| {
                Self::with(self.client.get(url).header(header::ACCEPT, accept), auth).send()
            };
            let auth = self.cached_token(loc, cred);
            let resp = send(&auth).await.map_err(|e| Self::unreachable(loc, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                if resp.status() == StatusCode::FORBIDDEN {
                    last = (resp.status(), String::new());
                    continue;
                }
                return Ok(resp);
            }
            let header = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let auth = match challenge(&header) {
                Some(Challenge::Bearer { realm, service, .. }) => {
                    self.token(loc, &realm, service.as_deref(), cred).await?
                }
                Some(Challenge::Basic) => cred.cloned().map(Auth::Basic),
                None => None,
            };
            let Some(auth) = auth else {
                last = (StatusCode::UNAUTHORIZED, explain(&header, cred));
                continue;
            };
            let resp = send(&Some(auth))
                .await
                .map_err(|e| Self::unreachable(loc, e))?;
            if matches!(
                resp.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) {
                last = (resp.status(), explain(&header, cred));
                continue;
            }
            return Ok(resp);
        }
        Err(RegistryError::AuthRefused {
            registry: loc.registry.clone(),
            repository: loc.repository.clone(),
            code: last.0.as_u16(),
            detail: last.1,
        })
    }
}

fn explain(header: &str, cred: Option<&Credential>) -> String {
    match cred {
        Some(c) => format!(" to user {:?}", c.username),
        None if header.is_empty() => " to anonymous pulls".into(),
        None => format!(" to anonymous pulls (challenge: {header})"),
    }
}

/// The body, refused as soon as it passes the cap (a Content-Length over it: at once).
async fn read_capped(
    loc: &Location,
    what: &str,
    mut resp: Response,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        registry: loc.registry.clone(),
        what: what.to_string(),
        cap: MAX_BYTES,
    };
    if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Http::unreachable(loc, e))? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn status_error(loc: &Location, what: String, code: StatusCode) -> RegistryError {
    if code == StatusCode::NOT_FOUND {
        return RegistryError::NotFound { image: loc.key() };
    }
    RegistryError::Status {
        registry: loc.registry.clone(),
        what,
        code: code.as_u16(),
    }
}

impl Fetch for Http {
    async fn manifest(
        &self,
        loc: &Location,
        creds: &[&Credential],
    ) -> Result<Served, RegistryError> {
        let url = format!(
            "https://{}/v2/{}/manifests/{}",
            loc.api_host,
            loc.repository,
            loc.reference()
        );
        let resp = self.get(loc, &url, ACCEPT, creds).await?;
        let what = format!("the manifest of {}", loc.key());
        if !resp.status().is_success() {
            return Err(status_error(loc, what, resp.status()));
        }
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = read_capped(loc, &what, resp).await?;
        Ok(Served {
            media_type,
            body,
            digest,
        })
    }

    async fn blob(
        &self,
        loc: &Location,
        digest: &str,
        creds: &[&Credential],
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "https://{}/v2/{}/blobs/{digest}",
            loc.api_host, loc.repository
        );
        let resp = self.get(loc, &url, "*/*", creds).await?;
        let what = format!("config blob {digest} of {}", loc.key());
        if !resp.status().is_success() {
            return Err(status_error(loc, what, resp.status()));
        }
        read_capped(loc, &what, resp).await
    }
}
