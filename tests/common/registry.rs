//! Real OCI registries on loopback (Debian's docker-registry, started by tests/k8s/registry.sh)
//! holding the images the placement tests resolve, one set per test binary: started on first
//! use, stopped and removed when the binary exits (registry.sh's `--until-exit`).
//!
//! Three registries share one test CA (`ca_pem`): anonymous; basic auth (htpasswd, a 401 with a
//! Basic challenge); token auth (a 401 with a Bearer challenge naming a token service that
//! checks credentials and issues a signed JWT, as Docker Hub, GHCR and ECR do). Each holds the
//! images registry.sh lists: `multi:v1` (amd64 + arm64 index), `amd64only:v1` and
//! `arm64only:v1` (one platform + a buildx-style attestation manifest), `single:v1` and
//! `single-arm64:v1` (one manifest, no index); the anonymous one also `broken:v1` (a manifest
//! whose config blob is not an image config).
//!
//! A missing registry package skips the test with the command that installs it; under CI=true
//! it fails it (tests/deps.sh installs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// How a registry authenticates pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    /// htpasswd: user `alice`, password `BASIC_PASSWORD`.
    Basic,
    /// token service: user `bob`, password `TOKEN_PASSWORD`.
    Token,
}

pub const BASIC_USER: &str = "alice";
pub const BASIC_PASSWORD: &str = "basic-s3cret";
pub const TOKEN_USER: &str = "bob";
pub const TOKEN_PASSWORD: &str = "token-s3cret";

/// One running registry and what it holds.
#[derive(Debug)]
pub struct Registry {
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`, the host part of image references.
    pub host: String,
    pub auth: Auth,
    /// The test CA every registry's certificate chains to (PEM).
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// "name:tag" -> {"digest": the tag's digest, "<arch>": that platform's manifest digest}.
    pub images: BTreeMap<String, BTreeMap<String, String>>,
}

impl Registry {
    /// `host/name:tag`.
    pub fn reference(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.host)
    }

    /// The digest of `name:tag` itself (an index's, or a single manifest's).
    pub fn digest(&self, name_tag: &str) -> &str {
        self.field(name_tag, "digest")
    }

    /// The digest of `name:tag`'s manifest for `arch` (GOARCH name).
    pub fn platform_digest(&self, name_tag: &str, arch: &str) -> &str {
        self.field(name_tag, arch)
    }

    fn field(&self, name_tag: &str, key: &str) -> &str {
        self.images
            .get(name_tag)
            .and_then(|m| m.get(key))
            .unwrap_or_else(|| {
                panic!(
                    "registry {} has no {key} for {name_tag}: {:?}",
                    self.host, self.images
                )
            })
    }

    /// (user, password) for `Basic` and `Token`; None when anonymous.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        match self.auth {
            Auth::Anonymous => None,
            Auth::Basic => Some((BASIC_USER, BASIC_PASSWORD)),
            Auth::Token => Some((TOKEN_USER, TOKEN_PASSWORD)),
        }
    }

    /// A `kubernetes.io/dockerconfigjson` payload for this registry's credentials.
    pub fn dockerconfigjson(&self) -> String {
        let (u, p) = self
            .credentials()
            .expect("an anonymous registry needs no pull secret");
        let auth = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{u}:{p}"),
        );
        serde_json::json!({"auths": {self.host.clone(): {"username": u, "password": p, "auth": auth}}})
            .to_string()
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
static ANON: OnceLock<Registry> = OnceLock::new();
static BASIC: OnceLock<Registry> = OnceLock::new();
static TOKEN: OnceLock<Registry> = OnceLock::new();

/// The binary's registry with `auth` (started on first use, images pushed), or None after
/// printing why registries cannot run here (a panic under CI=true).
pub fn registry(auth: Auth) -> Option<&'static Registry> {
    match CHECK.get_or_init(available) {
        Ok(()) => {}
        Err(missing) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: {missing}");
            return None;
        }
        Err(missing) => panic!("CI=true, so this test may not skip: {missing}"),
    }
    // The anonymous registry's CA is everyone's: one bundle trusts all three.
    let anon = ANON.get_or_init(|| start(Auth::Anonymous, None));
    Some(match auth {
        Auth::Anonymous => anon,
        Auth::Basic => BASIC.get_or_init(|| start(Auth::Basic, Some(&anon.dir))),
        Auth::Token => TOKEN.get_or_init(|| start(Auth::Token, Some(&anon.dir))),
    })
}

fn available() -> Result<(), String> {
    for (cmd, pkg) in [
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("skopeo", "skopeo"),
        ("umoci", "umoci"),
        ("jq", "jq"),
        ("openssl", "openssl"),
        ("curl", "curl"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "no {cmd} on PATH. Hint: apt-get install {pkg} (tests/deps.sh installs it)"
            ));
        }
    }
    Ok(())
}

fn start(auth: Auth, ca_from: Option<&Path>) -> Registry {
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-registry-")
        .tempdir()
        .unwrap()
        .keep();
    let script = repo().join("tests/k8s/registry.sh");
    let mut up = Command::new("bash");
    up.arg(&script).arg("up").arg(&dir);
    match auth {
        Auth::Anonymous => {}
        Auth::Basic => {
            up.args(["--basic", &format!("{BASIC_USER}:{BASIC_PASSWORD}")]);
        }
        Auth::Token => {
            up.args(["--token", &format!("{TOKEN_USER}:{TOKEN_PASSWORD}")]);
        }
    }
    if let Some(ca) = ca_from {
        up.arg("--ca").arg(ca);
    }
    up.arg("--until-exit").arg(std::process::id().to_string());
    run(&mut up, "registry.sh up");
    let mut images = Command::new("bash");
    images.arg(&script).arg("images").arg(&dir);
    if std::env::var_os("FIXTURES").is_none() {
        images.env("FIXTURES", repo().join("target/fixtures"));
    }
    run(&mut images, "registry.sh images");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("registry.sh left no {name} in {}: {e}", dir.display()))
    };
    let ca_path = dir.join("ca.crt");
    Registry {
        host: read("host").trim().to_string(),
        auth,
        ca_pem: read("ca.crt"),
        ca_path,
        images: serde_json::from_str(&read("images.json")).expect("images.json is a map of maps"),
        dir,
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run bash: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
