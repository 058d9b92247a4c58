//! The parsers behind `explain` besides the ELF one, as fuzz targets shared by the fuzzer
//! (fuzz/fuzz_explain.rs) and the test suite (tests/explain_parser.rs): ld.so.cache,
//! ld.so.conf (and its glob), the image index/manifest/config/docker manifest.json JSON,
//! digests and layer member paths, and the whiteout/symlink logic of merged layers.

use binfmtd::explain::image::{
    blob_path, parse_config, parse_docker_manifest, parse_index, parse_manifest,
};
use binfmtd::explain::layers::{clean, Kind, Tree};
use binfmtd::explain::ldcache::{glob_match, parse_cache, parse_conf};

/// Which parser an input goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    LdCache,
    LdConf,
    Image,
}

pub const TARGETS: [Target; 3] = [Target::LdCache, Target::LdConf, Target::Image];

pub const CONF_SEEDS: &[&str] = &[
    "include /etc/ld.so.conf.d/*.conf\n",
    "# libc default configuration\n/usr/local/lib\n",
    "/opt/a/lib, /opt/b/lib:/opt/c=libc6\nhwcap 1 x\ninclude\tsub/*.conf other.conf\n",
];

pub const IMAGE_SEEDS: &[&str] = &[
    r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:659b193b82586d2ca8ec2b87d016bf974d31548ad234e97da8d3ea2e073ad5c5","size":349,"platform":{"os":"linux","architecture":"arm64","variant":"v8"},"annotations":{"org.opencontainers.image.ref.name":"amd64"}}]}"#,
    r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0123","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:abcd","size":10}]}"#,
    r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/usr/bin/pigz"],"Cmd":["--version"],"Env":["PATH=/usr/bin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
    r#"[{"Config":"blobs/sha256/aa","RepoTags":["x:1"],"Layers":["blobs/sha256/bb","layer/../layer.tar"]}]"#,
];

/// Run one input through `t`; returns whether it was accepted (parsed without error).
pub fn run(t: Target, input: &[u8]) -> bool {
    match t {
        Target::LdCache => match parse_cache(input) {
            Ok(c) => {
                let _ = c.dirs();
                if let Some(e) = c.entries.first() {
                    let _ = c.lookup(&e.name).count();
                }
                true
            }
            Err(_) => false,
        },
        Target::LdConf => {
            let text = String::from_utf8_lossy(input);
            let lines = parse_conf(&text);
            let (pattern, name) = text.split_once('\n').unwrap_or((&text, ""));
            let _ = glob_match(pattern, name);
            !lines.is_empty()
        }
        Target::Image => image(input),
    }
}

fn image(input: &[u8]) -> bool {
    let accepted = [
        parse_index(input).is_ok(),
        parse_manifest(input).is_ok(),
        parse_config(input)
            .map(|(p, r)| (p.arch(), r.argv(), r.path()))
            .is_ok(),
        parse_docker_manifest(input).is_ok(),
    ];
    let text = String::from_utf8_lossy(input);
    let _ = blob_path(&text);
    // Member paths through the merged tree: whiteouts, opaque dirs, symlink resolution.
    let mut tree = Tree::default();
    for (i, line) in text.split(['\n', '"', ',']).enumerate().take(64) {
        let Some(path) = clean(line) else { continue };
        let kind = match i % 4 {
            0 => Kind::Dir,
            1 => Kind::Symlink(line.chars().rev().collect()),
            2 => Kind::File {
                ord: i,
                mode: 0o755,
            },
            _ => Kind::Hardlink(path.clone()),
        };
        tree.apply(i % 3, &path, kind);
        let _ = tree.resolve(line);
    }
    accepted.iter().any(|&a| a)
}
