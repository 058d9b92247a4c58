//! `RawConfig` -> `Config`: every check, every error naming its field and the fix. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    embedded_sources, ArchiveFormat, Config, DownloadOptions, Origin, RawConfig, RawDownload,
    RawSource, Remote, Source,
};
use crate::arch::{self, Arch};

/// One problem in the config: the field (`source[1].sha256`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Check everything and collect every problem, not just the first.
pub fn validate(raw: &RawConfig) -> Result<Config, Vec<FieldError>> {
    with_reserved_names(raw, &super::default::embedded_names())
}

/// `validate`, refusing source names in `reserved` (the embedded sources' own names).
pub(crate) fn with_reserved_names(
    raw: &RawConfig,
    reserved: &[String],
) -> Result<Config, Vec<FieldError>> {
    let mut errors = Vec::new();
    let download = download(&raw.download, &mut errors);
    let mut sources: Vec<Source> = raw
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| source(i, s, &mut errors))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        if reserved.contains(&s.name) {
            errors.push(err(
                format!("source[{i}].name"),
                format!(
                    "{:?} is the name of an embedded default source; give this source its own name",
                    s.name
                ),
            ));
        } else if !names.insert(s.name.clone()) {
            errors.push(err(
                format!("source[{i}].name"),
                format!(
                    "{:?} is used by an earlier source; give each source its own name",
                    s.name
                ),
            ));
        }
    }
    if raw.embedded_default.unwrap_or(true) {
        sources.extend(embedded_sources());
    }
    if errors.is_empty() {
        Ok(Config {
            download,
            sources,
            agent: Default::default(),
        })
    } else {
        Err(errors)
    }
}

fn download(raw: &RawDownload, errors: &mut Vec<FieldError>) -> DownloadOptions {
    let d = DownloadOptions::default();
    let secs = |v: Option<u64>, def: Duration, field: &str, errors: &mut Vec<FieldError>| match v {
        Some(0) => {
            errors.push(err(
                format!("download.{field}"),
                "must be at least 1 (seconds)",
            ));
            def
        }
        Some(s) => Duration::from_secs(s),
        None => def,
    };
    let connect_timeout = secs(
        raw.connect_timeout_secs,
        d.connect_timeout,
        "connect-timeout-secs",
        errors,
    );
    let read_timeout = secs(
        raw.read_timeout_secs,
        d.read_timeout,
        "read-timeout-secs",
        errors,
    );
    let attempt_timeout = secs(
        raw.attempt_timeout_secs,
        d.attempt_timeout,
        "attempt-timeout-secs",
        errors,
    );
    let total_timeout = secs(
        raw.total_timeout_secs,
        d.total_timeout,
        "total-timeout-secs",
        errors,
    );
    if raw.retries.is_some_and(|r| r > 20) {
        errors.push(err(
            "download.retries",
            "at most 20 rounds; a mirror that failed 20 times will not recover",
        ));
    }
    if raw.max_bytes == Some(0) {
        errors.push(err(
            "download.max-bytes",
            "must be more than 0; leave it out for the 512 MiB default",
        ));
    }
    DownloadOptions {
        connect_timeout,
        read_timeout,
        retries: raw.retries.unwrap_or(d.retries),
        backoff: raw
            .backoff_ms
            .map(Duration::from_millis)
            .unwrap_or(d.backoff),
        max_bytes: raw.max_bytes.unwrap_or(d.max_bytes),
        extra_ca_bundle: raw.extra_ca_bundle.clone(),
        attempt_timeout,
        total_timeout,
        min_rate: raw.min_bytes_per_sec.unwrap_or(d.min_rate),
    }
}

fn source(i: usize, raw: &RawSource, errors: &mut Vec<FieldError>) -> Option<Source> {
    let at = |f: &str| format!("source[{i}].{f}");
    let before = errors.len();
    let host = resolve(&raw.host, &at("host"), errors);
    let targets = raw.targets.as_ref().map(|t| {
        if t.is_empty() {
            errors.push(err(
                at("targets"),
                "is empty; list guest arches (e.g. [\"riscv64\"]) or leave it out for all",
            ));
        }
        t.iter()
            .filter_map(|n| resolve(n, &at("targets"), errors))
            .collect::<Vec<_>>()
    });
    let single = targets.as_ref().is_some_and(|t| t.len() == 1);
    let origin = origin(raw, single, &at, errors);
    let member_sha256 = pins(raw, &at, errors);
    if errors.len() > before {
        return None;
    }
    Some(Source {
        name: raw.name.clone().unwrap_or_else(|| format!("source[{i}]")),
        host: host?,
        targets,
        origin: origin?,
        member_sha256,
    })
}

fn resolve(name: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<&'static Arch> {
    arch::lookup(name)
        .map_err(|e| errors.push(err(field, e.to_string())))
        .ok()
}

/// One source's checks that several kinds share, collecting into `errors`.
struct Fields<'a> {
    raw: &'a RawSource,
    single: bool,
    at: &'a dyn Fn(&str) -> String,
}

impl Fields<'_> {
    fn needs_single(&self, what: &str, errors: &mut Vec<FieldError>) {
        if !self.single {
            errors.push(err((self.at)("targets"), format!("a {what} serves one guest arch: set targets = [\"<arch>\"] with exactly one name")));
        }
    }

    fn template(&self, errors: &mut Vec<FieldError>) -> Option<String> {
        let Some(m) = self.raw.member.clone() else {
            errors.push(err(
                (self.at)("member"),
                "is required for this kind: the path inside it, e.g. \"./usr/bin/qemu-{cpu}\"",
            ));
            return None;
        };
        if !self.single && !m.contains("{cpu}") {
            errors.push(err((self.at)("member"), format!("{m:?} has no {{cpu}} placeholder but the source serves several arches; use e.g. \"./usr/bin/qemu-{{cpu}}\" or list one target")));
        }
        Some(m)
    }

    fn forbid(&self, field: &str, set: bool, errors: &mut Vec<FieldError>) {
        if set {
            errors.push(err(
                (self.at)(field),
                format!("does not apply to kind = {:?}; remove it", self.raw.kind),
            ));
        }
    }
}

fn origin(
    raw: &RawSource,
    single: bool,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> Option<Origin> {
    let f = Fields { raw, single, at };
    match raw.kind.as_str() {
        "raw" => {
            f.needs_single("raw binary", errors);
            f.forbid("member", raw.member.is_some(), errors);
            f.forbid("path", raw.path.is_some(), errors);
            remote(raw, at, errors).map(Origin::Raw)
        }
        "tar" | "deb" => {
            f.forbid("path", raw.path.is_some(), errors);
            let member = f.template(errors);
            let format = if raw.kind == "deb" {
                ArchiveFormat::Deb
            } else {
                ArchiveFormat::Tar
            };
            let remote = remote(raw, at, errors)?;
            Some(Origin::Archive {
                remote,
                format,
                member: member?,
            })
        }
        "local" => local(&f, errors),
        other => {
            errors.push(err(
                at("kind"),
                format!(
                    "{other:?} is not a source kind; use \"raw\", \"tar\", \"deb\" or \"local\""
                ),
            ));
            None
        }
    }
}

fn local(f: &Fields, errors: &mut Vec<FieldError>) -> Option<Origin> {
    f.forbid("urls", !f.raw.urls.is_empty(), errors);
    f.forbid("sha256", f.raw.sha256.is_some(), errors);
    // Download settings: accepted and ignored, they would suggest a check that never runs.
    f.forbid("size", f.raw.size.is_some(), errors);
    f.forbid("allow-http", f.raw.allow_http.is_some(), errors);
    f.forbid("allow-file", f.raw.allow_file.is_some(), errors);
    let Some(path) = f.raw.path.clone() else {
        errors.push(err(
            (f.at)("path"),
            "is required for kind = \"local\": a file, or a directory with member = \"qemu-{cpu}\"",
        ));
        return None;
    };
    if !path.is_absolute() {
        errors.push(err(
            (f.at)("path"),
            format!("{} is relative; use an absolute path", path.display()),
        ));
    }
    if f.raw.member.is_some() {
        Some(Origin::LocalDir {
            dir: path,
            member: f.template(errors)?,
        })
    } else {
        f.needs_single("local file", errors);
        Some(Origin::LocalFile(path))
    }
}

/// Mirrors: at least one, each https unless the source allows http/file.
fn urls(raw: &RawSource, at: &dyn Fn(&str) -> String, errors: &mut Vec<FieldError>) {
    if raw.urls.is_empty() {
        errors.push(err(
            at("urls"),
            "is empty; list one or more mirror URLs, tried in order",
        ));
    }
    for (j, url) in raw.urls.iter().enumerate() {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let allowed = match scheme.as_deref() {
            Some("https") => true,
            Some("http") => raw.allow_http == Some(true),
            Some("file") if !url[7..].starts_with('/') => {
                errors.push(err(
                    format!("{}[{j}]", at("urls")),
                    format!("{url:?} names a host (file://HOST/PATH), which binfmtd would misread as a relative path; write a local file as file:///ABSOLUTE/PATH"),
                ));
                continue;
            }
            Some("file") => raw.allow_file == Some(true),
            _ => {
                errors.push(err(
                    format!("{}[{j}]", at("urls")),
                    format!("{url:?} is not a URL; use https://HOST/PATH"),
                ));
                continue;
            }
        };
        if !allowed {
            let flag = if scheme.as_deref() == Some("http") {
                "allow-http"
            } else {
                "allow-file"
            };
            errors.push(err(format!("{}[{j}]", at("urls")), format!("{url:?} is not https; use https, or set {flag} = true for this source (the sha256 pin still protects the content)")));
        }
    }
}

fn remote(
    raw: &RawSource,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> Option<Remote> {
    urls(raw, at, errors);
    let sha256 = match &raw.sha256 {
        None => {
            errors.push(err(
                at("sha256"),
                "is required: pin what you download (`sha256sum FILE`)",
            ));
            None
        }
        Some(h) if !is_sha256(h) => {
            errors.push(err(
                at("sha256"),
                format!("{h:?} is not 64 hex digits; paste the output of `sha256sum FILE`"),
            ));
            None
        }
        Some(h) => Some(h.to_ascii_lowercase()),
    };
    if raw.size == Some(0) {
        errors.push(err(
            at("size"),
            "must be the file's size in bytes, more than 0",
        ));
    }
    Some(Remote {
        urls: raw.urls.clone(),
        sha256: sha256?,
        size: raw.size,
        allow_http: raw.allow_http == Some(true),
        allow_file: raw.allow_file == Some(true),
    })
}

fn pins(
    raw: &RawSource,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for (name, hash) in &raw.member_sha256 {
        let field = format!("{}.{name}", at("member-sha256"));
        let Some(arch) = resolve(name, &field, errors) else {
            continue;
        };
        if !is_sha256(hash) {
            errors.push(err(
                field,
                format!("{hash:?} is not 64 hex digits; paste the output of `sha256sum FILE`"),
            ));
            continue;
        }
        out.insert(arch.qemu, hash.to_ascii_lowercase());
    }
    out
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
