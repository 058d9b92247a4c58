//! Where a reference's manifests are fetched: the registry host the API is served from,
//! the repository path on it, and the tag or digest, with Docker Hub's defaults applied the
//! way containerd applies them (`nginx` is `registry-1.docker.io/library/nginx:latest`).

use crate::placement::reference::{self, RefError};

/// Docker Hub, as references name it and as its API is served.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The registry as the reference names it (`docker.io` when it names none): the key for
    /// pull secrets and the cache.
    pub registry: String,
    /// The host[:port] the distribution API is served on.
    pub api_host: String,
    /// The repository path on the registry (`library/nginx`).
    pub repository: String,
    /// The tag (`latest` when neither tag nor digest is given), or `None` with a digest.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Location {
    /// What the manifest URL names: the digest when there is one (containerd ignores the
    /// tag then), else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The cache key of this tag or digest: registry, repository and reference.
    pub fn key(&self) -> String {
        let sep = if self.digest.is_some() { '@' } else { ':' };
        format!(
            "{}/{}{sep}{}",
            self.registry,
            self.repository,
            self.reference()
        )
    }

    /// The cache key of the same repository at `digest`.
    pub fn digest_key(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }

    /// The token scope a registry's auth server is asked for.
    pub fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }
}

/// Where `image` lives, or why it is not a reference.
pub fn locate(image: &str) -> Result<Location, RefError> {
    let r = reference::parse(image)?;
    let path = match r.registry {
        Some(reg) => &r.name[reg.len() + 1..],
        None => r.name,
    };
    let registry = r.registry.unwrap_or(DOCKER_HUB).to_string();
    let hub = registry == DOCKER_HUB || registry == "index.docker.io";
    let repository = if hub && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    let api_host = if hub {
        DOCKER_HUB_API.to_string()
    } else {
        registry.clone()
    };
    let tag = match (r.tag, r.digest) {
        (_, Some(_)) => None,
        (Some(t), None) => Some(t.to_string()),
        (None, None) => Some("latest".to_string()),
    };
    Ok(Location {
        registry: if hub { DOCKER_HUB.into() } else { registry },
        api_host,
        repository,
        tag,
        digest: r.digest.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_locate_as_containerd_reads_them() {
        let table = [
            ("nginx", "docker.io", "registry-1.docker.io", "library/nginx", "latest"),
            ("nginx:1.27", "docker.io", "registry-1.docker.io", "library/nginx", "1.27"),
            ("bitnami/redis:7", "docker.io", "registry-1.docker.io", "bitnami/redis", "7"),
            ("docker.io/nginx", "docker.io", "registry-1.docker.io", "library/nginx", "latest"),
            ("index.docker.io/a/b", "docker.io", "registry-1.docker.io", "a/b", "latest"),
            ("127.0.0.1:5000/x/y:t", "127.0.0.1:5000", "127.0.0.1:5000", "x/y", "t"),
            ("localhost/y", "localhost", "localhost", "y", "latest"),
            ("quay.io/a/b/c:v1", "quay.io", "quay.io", "a/b/c", "v1"),
        ];
        for (image, registry, host, repo, reference) in table {
            let l = locate(image).unwrap();
            assert_eq!(
                (l.registry.as_str(), l.api_host.as_str(), l.repository.as_str(), l.reference()),
                (registry, host, repo, reference),
                "{image}"
            );
        }
    }

    #[test]
    fn a_digest_wins_over_the_tag_and_keys_differ() {
        let d = format!("sha256:{}", "a".repeat(64));
        let l = locate(&format!("r.io/x:t@{d}")).unwrap();
        assert_eq!((l.tag.as_deref(), l.reference()), (None, d.as_str()));
        assert_eq!(l.key(), format!("r.io/x@{d}"));
        assert_eq!(locate("r.io/x:t").unwrap().key(), "r.io/x:t");
        assert_eq!(locate("r.io/x").unwrap().scope(), "repository:x:pull");
    }

    #[test]
    fn bad_references_are_refused() {
        assert!(locate("UPPER/case").is_err());
        assert!(locate("x@sha256:short").is_err());
    }
}
