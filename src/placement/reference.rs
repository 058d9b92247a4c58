//! Image references as a pod names them: `[registry[:port]/]path[:tag][@digest]`.
//! Only what placement needs: split and validate a reference, and name the same repository
//! by another digest. The repository is kept as written (`nginx` stays `nginx`, not
//! `docker.io/library/nginx`): the kubelet applies the same defaults to both.

use super::platforms::valid_digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The repository as written, registry included when given: everything before the tag.
    pub name: &'a str,
    /// The registry part, when the first path component names one.
    pub registry: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("image reference {reference:?} is not valid: {why}. Hint: write it as [registry[:port]/]path[:tag][@sha256:<64 hex>]")]
pub struct RefError {
    pub reference: String,
    pub why: &'static str,
}

/// Longest repository name distribution accepts.
const MAX_NAME: usize = 255;

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+ joined by '.', '_', '__' or runs of '-'.
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|x| x == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

fn registry_ok(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (r, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        !host.is_empty()
            && host.split('.').all(|w| {
                !w.is_empty()
                    && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !w.starts_with('-')
                    && !w.ends_with('-')
            })
    };
    port_ok && host_ok
}

fn tag_ok(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    !t.is_empty()
        && t.len() <= 128
        && word(t.as_bytes()[0])
        && t.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// Split and validate a reference.
pub fn parse(reference: &str) -> Result<ImageRef<'_>, RefError> {
    let err = |why| RefError {
        reference: reference.to_string(),
        why,
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) if valid_digest(d) => (r, Some(d)),
        Some(_) => return Err(err("the part after '@' is not a sha256 or sha512 digest")),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !tag_ok(t)) {
        return Err(err(
            "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ));
    }
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(err(
            "the repository name is empty or longer than 255 characters",
        ));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), path)
        }
        _ => (None, name),
    };
    if registry.is_some_and(|r| !registry_ok(r)) {
        return Err(err(
            "the registry must be a host name or [IPv6] address with an optional :port",
        ));
    }
    if !path.split('/').all(path_component_ok) {
        return Err(err("each path component must be lowercase letters and digits, joined by '.', '_', '__' or '-'"));
    }
    Ok(ImageRef {
        name,
        registry,
        tag,
        digest,
    })
}

/// The same repository named by `digest`: `repo@digest`. A tag is dropped (with a digest
/// the kubelet and containerd ignore it) and an existing digest is replaced.
pub fn pin(reference: &str, digest: &str) -> Result<String, RefError> {
    if !valid_digest(digest) {
        return Err(RefError {
            reference: reference.to_string(),
            why: "the digest to pin to is malformed",
        });
    }
    let r = parse(reference)?;
    Ok(format!("{}@{digest}", r.name))
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
