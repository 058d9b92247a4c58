//! Hostile images built in the test: OCI layouts with hand-made blobs, tar members as
//! streams (so a 1 GiB member costs no memory), zstd layers, and a runner with a deadline.

use std::fs;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A fresh directory under the target dir, readable by the sandbox's root (host uid 100000).
pub fn workdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hardening-explain/{name}"));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Store `bytes` as a blob of the layout at `dir`; its descriptor.
pub fn blob(dir: &Path, media: &str, bytes: &[u8]) -> Value {
    let h = hex(&Sha256::digest(bytes));
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(&h), bytes).unwrap();
    json!({"mediaType": media, "digest": format!("sha256:{h}"), "size": bytes.len()})
}

/// A manifest (linux/amd64, Entrypoint `/bin/sh`) over `layers`, stored; its descriptor.
pub fn manifest(dir: &Path, layers: &[Vec<u8>]) -> Value {
    manifest_running(dir, layers, "/bin/sh")
}

pub fn manifest_running(dir: &Path, layers: &[Vec<u8>], entrypoint: &str) -> Value {
    let config = json!({"os": "linux", "architecture": "amd64",
                        "config": {"Entrypoint": [entrypoint]}});
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let layers: Vec<Value> = layers.iter().map(|l| blob(dir, LAYER, l)).collect();
    let m = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers});
    blob(dir, MANIFEST, m.to_string().as_bytes())
}

/// Write `index.json` and `oci-layout` listing `manifests`.
pub fn finish(dir: &Path, manifests: Vec<Value>) -> PathBuf {
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_path_buf()
}

/// One tar member as a stream: header, `body` (exactly `size` bytes), padding.
pub fn member<'a>(
    path: &str,
    kind: tar::EntryType,
    size: u64,
    link: Option<&str>,
    body: impl Read + 'a,
) -> Box<dyn Read + 'a> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o755);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    let pad = (512 - size % 512) % 512;
    Box::new(
        Cursor::new(h.as_bytes().to_vec())
            .chain(body.take(size))
            .chain(io::repeat(0).take(pad)),
    )
}

/// A script of exactly `size` bytes: a `#!` line, then `#` (not zeros: sparse copies
/// must not be what keeps the scratch directory small).
pub fn big_script(path: &str, size: u64) -> Box<dyn Read> {
    let line = b"#!/bin/busybox sh\n";
    member(
        path,
        tar::EntryType::Regular,
        size,
        None,
        Cursor::new(line.to_vec()).chain(io::repeat(b'#')),
    )
}

pub fn hard_link(path: &str, target: &str) -> Box<dyn Read> {
    member(path, tar::EntryType::Link, 0, Some(target), io::empty())
}

/// Members, then the end-of-archive blocks, zstd-compressed.
pub fn zstd_tar(members: Vec<Box<dyn Read>>) -> Vec<u8> {
    let mut parts = std::collections::VecDeque::from(members);
    parts.push_back(Box::new(io::repeat(0).take(1024)));
    ruzstd::encoding::compress_to_vec(Concat(parts), ruzstd::encoding::CompressionLevel::Fastest)
}

/// Readers one after another (a chain of 40,000 `Read::chain`s would overflow the stack).
pub struct Concat(pub std::collections::VecDeque<Box<dyn Read>>);

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(r) = self.0.front_mut() {
            match r.read(buf)? {
                0 if !buf.is_empty() => {
                    self.0.pop_front();
                }
                n => return Ok(n),
            }
        }
        Ok(0)
    }
}

/// Run `cmd` to completion or panic after `secs` (killing it): (exit code, stdout, stderr).
pub fn run_with_deadline(cmd: &mut Command, secs: u64) -> (i32, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {secs} s; stderr: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = fs::read_to_string(&err).unwrap();
    (status.code().unwrap_or(-1), fs::read(&out).unwrap(), stderr)
}

/// `binfmtd explain --json --image PATH` with binfmt_misc pointed at an empty directory,
/// and a TMPDIR of its own: a run killed at its deadline leaves its scratch there, not in
/// the shared one.
pub fn explain(image: &Path, secs: u64) -> (i32, Vec<u8>, String) {
    let nowhere = tempfile::tempdir().unwrap();
    run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_binfmtd"))
            .args(["explain", "--json", "--native", "x86_64", "--binfmt-misc"])
            .arg(nowhere.path())
            .arg("--cache-dir")
            .arg(nowhere.path())
            .arg("--image")
            .arg(image)
            .env("TMPDIR", nowhere.path()),
        secs,
    )
}

pub fn chmod_readable(dir: &Path) {
    let st = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// A layer holding only a `#!/bin/busybox sh` script at `bin/sh`.
pub fn small_layer() -> Vec<u8> {
    zstd_tar(vec![big_script("bin/sh", 64)])
}

/// The layer blob named by the (only) manifest of the layout.
pub fn layer_blob(layout: &Path) -> PathBuf {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let blobs = layout.join("blobs/sha256");
    let m: Value =
        serde_json::from_slice(&fs::read(blobs.join(&m["sha256:".len()..])).unwrap()).unwrap();
    let l = m["layers"][0]["digest"].as_str().unwrap();
    blobs.join(&l["sha256:".len()..])
}

/// Move the file at `path` into the layout as a layer blob; its descriptor.
pub fn blob_file(dir: &Path, path: &Path) -> Value {
    let mut hasher = Sha256::new();
    io::copy(&mut fs::File::open(path).unwrap(), &mut hasher).unwrap();
    let h = hex(&hasher.finalize());
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let size = fs::metadata(path).unwrap().len();
    fs::rename(path, dir.join("blobs/sha256").join(&h)).unwrap();
    json!({"mediaType": LAYER, "digest": format!("sha256:{h}"), "size": size})
}
