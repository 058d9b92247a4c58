//! Registry credentials, pure: the `WWW-Authenticate` challenge a registry answers 401 with,
//! and the credentials for a registry out of pull secrets (`kubernetes.io/dockerconfigjson`
//! and the older `kubernetes.io/dockercfg`), matched the way the kubelet matches them: by
//! registry host, and by repository path prefix when the key names one.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

/// What a registry asks for on 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm` (with `service` and `scope`), then send it as Bearer.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the username and password on every request.
    Basic,
}

/// Split `key="value", key=value` auth parameters (RFC 7235), quotes and escapes honoured.
fn params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        out.insert(key, value);
        rest = rest.trim_start().trim_start_matches(',');
    }
    out
}

/// The challenge in a `WWW-Authenticate` header; `None` for schemes binfmtd cannot answer.
pub fn challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut p = params(rest);
            let realm = p.remove("realm").filter(|r| !r.is_empty())?;
            Some(Challenge::Bearer {
                realm,
                service: p.remove("service"),
                scope: p.remove("scope"),
            })
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The host (and path, when given) a config key names: scheme and a `/v1/`-style API
/// suffix dropped, Docker Hub's many names folded into `docker.io`.
pub fn normalize_key(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    };
    if path.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

fn credential(a: DockerAuth) -> Option<Credential> {
    if let (Some(username), Some(password)) = (a.username.clone(), a.password.clone()) {
        if !username.is_empty() {
            return Some(Credential { username, password });
        }
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.auth?.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credential {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// The entries of one pull secret's data: `.dockerconfigjson` (`{"auths": {...}}`) or
/// `.dockercfg` (the map itself). Entries without usable credentials are dropped.
pub fn parse_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<(String, Credential)>, String> {
    let auths = if let Some(b) = data.get(".dockerconfigjson") {
        serde_json::from_slice::<DockerConfig>(b)
            .map_err(|e| format!(".dockerconfigjson is not a Docker config: {e}"))?
            .auths
    } else if let Some(b) = data.get(".dockercfg") {
        serde_json::from_slice::<BTreeMap<String, DockerAuth>>(b)
            .map_err(|e| format!(".dockercfg is not a Docker config: {e}"))?
    } else {
        return Err("it has neither .dockerconfigjson nor .dockercfg".into());
    };
    Ok(auths
        .into_iter()
        .filter_map(|(k, a)| credential(a).map(|c| (normalize_key(&k), c)))
        .collect())
}

/// The credentials for `registry`/`repository`, most specific key first (the kubelet tries
/// them in that order); keys for other hosts or other paths are left out.
pub fn matching<'a>(
    entries: &'a [(String, Credential)],
    registry: &str,
    repository: &str,
) -> Vec<&'a Credential> {
    let full = format!("{registry}/{repository}");
    let mut hits: Vec<(usize, usize, &Credential)> = entries
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| {
            k == registry
                || *k == full
                || (full.starts_with(k.as_str()) && full.as_bytes().get(k.len()) == Some(&b'/'))
        })
        .map(|(i, (k, c))| (k.len(), i, c))
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    hits.into_iter().map(|(_, _, c)| c).collect()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
