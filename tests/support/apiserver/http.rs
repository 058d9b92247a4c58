//! The HTTP side of the test API server: HTTP/1.1 keep-alive over TLS, routing, and the
//! Node, SelfSubjectReview and discovery handlers with the real server's semantics.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Logged, State};

struct Request {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// HTTP/1.1 with keep-alive, as a real API server: requests until the client closes.
pub(super) fn serve_connection(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    state: Arc<Mutex<State>>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
    // Like Go's net/http: no Nagle delay on a response.
    tcp.set_nodelay(true).ok();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(tls);
    while let Some(req) = read_request(&mut reader) {
        let (code, extra, body) = handle(&req, &state);
        let tls = reader.get_mut();
        let mut out = format!(
            "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
            reason(code),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        if tls.write_all(&out).is_err() {
            return;
        }
        let _ = tls.flush();
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    assert!(
        !headers.contains_key("transfer-encoding"),
        "the test API server reads Content-Length bodies only"
    );
    let len: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

type Answer = (u16, String, Vec<u8>);

fn handle(req: &Request, state: &Mutex<State>) -> Answer {
    let mut s = state.lock().unwrap();
    let token = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_string);
    let user = token.as_ref().and_then(|t| s.tokens.get(t).cloned());
    let answer = route(req, user.as_deref(), &mut s);
    s.log.push(Logged {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        user,
        token,
        content_type: req.headers.get("content-type").cloned(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        code: answer.0,
        at: Instant::now(),
    });
    answer
}

fn route(req: &Request, user: Option<&str>, s: &mut State) -> Answer {
    let Some(user) = user else {
        return status(401, "Unauthorized", "Unauthorized");
    };
    if let Some(pos) = s.faults.iter().position(|f| f.method == req.method) {
        let f = s.faults.remove(pos).unwrap();
        let mut a = status(f.code, reason(f.code), "injected by the test");
        if let Some(secs) = f.retry_after {
            a.1 = format!("Retry-After: {secs}\r\n");
        }
        return a;
    }
    let path: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), path.as_slice()) {
        ("GET", ["api"]) => ok(json!({"kind": "APIVersions", "versions": ["v1"]})),
        ("GET", ["apis"]) => ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        ("GET", ["api", "v1"]) => ok(json!({
            "kind": "APIResourceList", "groupVersion": "v1",
            "resources": [{"name": "nodes", "singularName": "node", "namespaced": false,
                           "kind": "Node", "verbs": ["get", "list", "patch", "watch"]}]})),
        ("GET", ["api", "v1", "nodes"]) => list_nodes(req, user, s),
        ("GET", ["api", "v1", "nodes", name]) => get_node(name, user, s),
        ("PATCH", ["api", "v1", "nodes", name]) => patch_node(req, name, user, s),
        ("POST", ["_test", action @ ("deny" | "allow")]) => {
            let arg = |k: &str| {
                req.query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .unwrap_or_default()
                    .replace("%3A", ":")
            };
            let rule = (arg("user"), arg("verb"));
            if *action == "deny" {
                s.denied.insert(rule);
            } else {
                s.denied.remove(&rule);
            }
            ok(json!({}))
        }
        ("POST", ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]) => ok(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": user, "groups": ["system:authenticated"]}}})),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn authorize(s: &State, user: &str, verb: &str, name: Option<&str>) -> Option<Answer> {
    if !s.denied.contains(&(user.to_string(), verb.to_string())) {
        return None;
    }
    let what = name.map_or("nodes".to_string(), |n| format!("nodes \"{n}\""));
    Some(status(
        403,
        "Forbidden",
        &format!("{what} is forbidden: User \"{user}\" cannot {verb} resource \"nodes\" in API group \"\" at the cluster scope"),
    ))
}

fn get_node(name: &str, user: &str, s: &State) -> Answer {
    if let Some(denied) = authorize(s, user, "get", Some(name)) {
        return denied;
    }
    match s.nodes.get(name) {
        Some(n) => ok(n.clone()),
        None => not_found(name),
    }
}

fn list_nodes(req: &Request, user: &str, s: &State) -> Answer {
    if let Some(denied) = authorize(s, user, "list", None) {
        return denied;
    }
    let wanted = req
        .query
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldSelector="))
        .map(|sel| sel.replace("%3D", "=").replace("%3d", "="));
    let items: Vec<Value> = s
        .nodes
        .iter()
        .filter(|(n, _)| {
            wanted
                .as_deref()
                .is_none_or(|w| w == format!("metadata.name={n}"))
        })
        .map(|(_, v)| v.clone())
        .collect();
    ok(json!({"apiVersion": "v1", "kind": "NodeList",
              "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}))
}

fn patch_node(req: &Request, name: &str, user: &str, s: &mut State) -> Answer {
    if let Some(denied) = authorize(s, user, "patch", Some(name)) {
        return denied;
    }
    if req.headers.get("content-type").map(String::as_str) != Some("application/merge-patch+json") {
        return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
        return status(400, "BadRequest", "error decoding patch: invalid JSON");
    };
    let Some(node) = s.nodes.get(name).cloned() else {
        return not_found(name);
    };
    let current_rv = node["metadata"]["resourceVersion"].clone();
    if let Some(rv) = patch["metadata"].get("resourceVersion") {
        if *rv != current_rv {
            return status(409, "Conflict", &format!("Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
        }
    }
    let mut merged = node;
    merge(&mut merged, &patch);
    if let Some(labels) = merged["metadata"]["labels"].as_object() {
        if labels.values().any(|v| !v.is_string()) {
            return status(
                422,
                "Invalid",
                "Node in version \"v1\" cannot be handled as a Node: label values must be strings",
            );
        }
    }
    s.resource_version += 1;
    merged["metadata"]["resourceVersion"] = Value::String(s.resource_version.to_string());
    s.nodes.insert(name.to_string(), merged.clone());
    ok(merged)
}

/// RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn ok(v: Value) -> Answer {
    (200, String::new(), serde_json::to_vec(&v).unwrap())
}

fn not_found(name: &str) -> Answer {
    status(404, "NotFound", &format!("nodes \"{name}\" not found"))
}

/// A `Status` body like the API server's.
fn status(code: u16, reason: &str, message: &str) -> Answer {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (code, String::new(), serde_json::to_vec(&body).unwrap())
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Error",
    }
}
