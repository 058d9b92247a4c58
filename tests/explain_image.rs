//! `binfmtd explain --image` on images built here with umoci from Debian packages: a
//! two-platform OCI layout (linux/amd64 and linux/arm64) judged with and without the arm64
//! emulator registered in the private sandbox, an image whose entrypoint lost a library to
//! a whiteout layer, and the same images saved as docker-archive and oci-archive tars
//! (skopeo). Each verdict is checked by running the image's rootfs (chroot, in the sandbox).

mod common;
mod explain_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use binfmtd::arch;
use common::fixtures::qemu_in_sandbox;
use common::{register_cmd, sh_quote, Sandbox};
use explain_common::sh;
use serde_json::{json, Value};

/// A fixture package tree, quoted for sh.
fn package(rel: &str) -> String {
    sh_quote(explain_common::package(rel).to_str().unwrap())
}

/// Built once per test binary run: layout `all` (tags amd64, arm64, broken) and the
/// unpacked rootfs of each tag, for executing.
struct Images {
    dir: PathBuf,
}

impl Images {
    fn build(name: &str) -> Images {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("explain-image-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let d = sh_quote(dir.to_str().unwrap());
        let copy = |pkg: &str, bundle: &str| {
            format!(
                "tar -C {} -cf - . | tar -C {d}/{bundle}/rootfs -xf -\n",
                package(pkg)
            )
        };
        let mut s = format!("cd {d}\numoci init --layout all\n");
        for tag in ["amd64", "arm64"] {
            s += &format!(
                "umoci new --image all:{tag}\numoci unpack --image all:{tag} {tag} >/dev/null\n"
            );
        }
        for p in [
            "bookworm/amd64/libc6",
            "bookworm/amd64/pigz",
            "bookworm/amd64/zlib1g",
        ] {
            s += &copy(p, "amd64");
        }
        s += &format!(
            "mkdir -p arm64/rootfs/bin && cp {}/bin/busybox arm64/rootfs/bin/\n",
            package("bookworm/arm64/busybox-static")
        );
        s += "umoci repack --image all:amd64 amd64\numoci repack --image all:arm64 arm64\n\
              umoci config --image all:amd64 --architecture amd64 --os linux \
                --config.entrypoint /usr/bin/pigz --config.cmd --version\n\
              umoci config --image all:arm64 --architecture arm64 --os linux \
                --config.entrypoint busybox --config.cmd uname --config.cmd -m \
                --config.env PATH=/usr/bin:/bin\n\
              umoci unpack --image all:amd64 broken >/dev/null\n\
              rm broken/rootfs/lib/x86_64-linux-gnu/libz.so.1*\n\
              umoci repack --image all:broken broken\n\
              mkdir -p amd64/rootfs/proc broken/rootfs/proc\n\
              chmod -R a+rX .\n";
        sh(&s);
        Images { dir }
    }

    /// A layout holding only `tags`, as a multi-platform index (platform in each descriptor).
    fn layout(&self, name: &str, tags: &[&str]) -> PathBuf {
        let out = self.dir.join(name);
        sh(&format!(
            "cp -a {0}/all {1}",
            sh_quote(self.dir.to_str().unwrap()),
            sh_quote(out.to_str().unwrap())
        ));
        let index: Value =
            serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
        let manifests: Vec<Value> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| {
                let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
                let arch = if tag == "arm64" { "arm64" } else { "amd64" };
                let mut m = m.clone();
                m["platform"] = json!({"os": "linux", "architecture": arch});
                tags.contains(&tag).then_some(m)
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(out.join("index.json"), index.to_string()).unwrap();
        out
    }

    fn path(&self, rel: &str) -> String {
        sh_quote(self.dir.join(rel).to_str().unwrap())
    }
}

/// Shell: run explain --json ARGS, print `NAME-exit=N` and the JSON on one line.
fn explain_step(name: &str, args: &str) -> String {
    format!(
        "rc=0; \"$BINFMTD\" explain --json {args} >/tmp/{name}.json || rc=$?\n\
         echo \"{name}-exit=$rc\"; tr -d '\\n' </tmp/{name}.json; echo\n"
    )
}

fn step(stdout: &str, name: &str) -> (i32, Value) {
    let marker = format!("{name}-exit=");
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(&marker));
    let code = lines
        .next()
        .and_then(|l| l.strip_prefix(&marker))
        .unwrap_or_else(|| panic!("no {marker} in {stdout}"))
        .parse()
        .unwrap();
    let j = serde_json::from_str(lines.next().unwrap()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, j)
}

fn platform<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["image"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == name)
        .unwrap_or_else(|| panic!("no {name} in {j:#}"))
}

#[test]
fn two_platform_layout_with_and_without_the_arm64_emulator() {
    let Some(sb) = Sandbox::new() else { return };
    let images = Images::build("two");
    let layout = images.layout("two-platform", &["amd64", "arm64"]);
    let l = sh_quote(layout.to_str().unwrap());
    let aarch64 = arch::lookup("arm64").unwrap();
    let run = sb
        .with_qemu(&["aarch64"])
        .run_script(&format!(
            "{before}{before_arm}\
             if chroot {arm} /bin/busybox uname -m >/dev/null 2>&1; then echo arm-ran-before; fi\n\
             {reg}\n\
             {after}{after_arm}\
             echo \"arm=$(chroot {arm} /bin/busybox uname -m)\"\n\
             mount -t proc proc {amd}/proc\n\
             chroot {amd} /usr/bin/pigz --version >/dev/null 2>&1 && echo amd-ran\n",
            before = explain_step("before", &format!("--image {l}")),
            before_arm = explain_step("before-arm", &format!("--image {l} --platform linux/arm64")),
            after = explain_step("after", &format!("--image {l}")),
            after_arm = explain_step("after-arm", &format!("--image {l} --platform linux/arm64")),
            reg = register_cmd(aarch64, &qemu_in_sandbox("aarch64"), "F"),
            arm = images.path("arm64/rootfs"),
            amd = images.path("amd64/rootfs"),
        ))
        .success();

    // Without the emulator: amd64 is pulled and runs; arm64 cannot run here.
    let (code, j) = step(&run.stdout, "before");
    assert_eq!(code, 0, "{run}");
    assert_eq!(j["image"]["format"], "oci-layout");
    assert_eq!(j["image"]["chosen"], "linux/amd64");
    assert_eq!(platform(&j, "linux/amd64")["verdict"]["outcome"], "native");
    let arm = &platform(&j, "linux/arm64")["verdict"];
    assert_eq!(arm["outcome"], "cannot-run", "{j:#}");
    assert_eq!(arm["problems"][0]["code"], "no-emulator");
    assert_eq!(j["image"]["command"], json!(["/usr/bin/pigz", "--version"]));
    assert_eq!(j["files"][0]["path"], "/usr/bin/pigz");
    assert_eq!(j["files"][0]["verdict"]["outcome"], "native");
    assert!(run.stdout.contains("amd-ran\n"), "{run}");
    let (code, j) = step(&run.stdout, "before-arm");
    assert_eq!(code, 1);
    // busybox is found through the image's own PATH.
    assert_eq!(j["files"][0]["path"], "/bin/busybox");
    assert_eq!(j["files"][0]["verdict"]["outcome"], "cannot-run");
    assert!(!run.stdout.contains("arm-ran-before"), "{run}");

    // With it registered: arm64 runs emulated through that entry, and it really does.
    let (code, j) = step(&run.stdout, "after");
    assert_eq!(code, 0);
    let arm = &platform(&j, "linux/arm64")["verdict"];
    assert_eq!(arm["outcome"], "emulated", "{j:#}");
    assert_eq!(arm["entry"]["name"], "binfmtd-aarch64");
    assert_eq!(j["image"]["chosen"], "linux/amd64");
    let (code, j) = step(&run.stdout, "after-arm");
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["files"][0]["verdict"]["outcome"], "emulated");
    assert!(run.stdout.contains("arm=aarch64\n"), "{run}");
}

#[test]
fn entrypoint_missing_a_library_inside_the_image_cannot_run() {
    let Some(sb) = Sandbox::new() else { return };
    let images = Images::build("broken");
    let layout = images.layout("broken-layout", &["broken"]);
    let run = sb
        .run_script(&format!(
            "{step}mount -t proc proc {root}/proc\n\
             rc=0; chroot {root} /usr/bin/pigz --version >/dev/null 2>/tmp/err || rc=$?\n\
             echo \"exec-exit=$rc\"; cat /tmp/err",
            step = explain_step(
                "broken",
                &format!("--image {}", sh_quote(layout.to_str().unwrap()))
            ),
            root = images.path("broken/rootfs"),
        ))
        .success();
    let (code, j) = step(&run.stdout, "broken");
    assert_eq!(code, 1, "{run}");
    // The platform itself runs natively; its entrypoint does not: libz was whited out.
    assert_eq!(platform(&j, "linux/amd64")["verdict"]["outcome"], "native");
    let v = &j["files"][0]["verdict"];
    assert_eq!(v["outcome"], "cannot-run", "{j:#}");
    assert_eq!(v["problems"][0]["code"], "library-missing");
    assert_eq!(v["problems"][0]["library"], "libz.so.1");
    // Named after the image, not the scratch directory it was checked in.
    let msg = v["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{} [linux/amd64]", layout.display())),
        "{msg}"
    );
    assert_eq!(j["image"]["runs"], false);
    assert!(run.stdout.contains("exec-exit=127"), "{run}");
    assert!(
        run.stdout
            .contains("libz.so.1: cannot open shared object file"),
        "{run}"
    );
    // The layer that removed it is a whiteout, not a rebuilt tree.
    let layers = layer_listing(&layout);
    assert!(layers.contains(".wh.libz.so.1"), "{layers}");
}

/// Every member name of every layer of a layout (tar tzf over the blobs).
fn layer_listing(layout: &Path) -> String {
    sh(&format!(
        "cd {} && for b in blobs/sha256/*; do tar tzf \"$b\" 2>/dev/null || true; done",
        sh_quote(layout.to_str().unwrap())
    ))
}

/// `docker save`-style tars made by skopeo from the same images: docker-archive
/// (manifest.json) and oci-archive (index.json inside the tar). No sandbox needed: nothing
/// is executed; the verdicts match the layout's, checked by execution above.
#[test]
fn docker_and_oci_archives_read_in_place() {
    let images = Images::build("archives");
    let d = sh_quote(images.dir.to_str().unwrap());
    sh(&format!(
        "cd {d}\n\
         skopeo copy -q oci:all:amd64 docker-archive:docker.tar:example/pigz:1\n\
         skopeo copy -q oci:all:broken oci-archive:oci.tar:broken"
    ));
    // A TMPDIR of its own: other tests' runs of explain come and go in the shared one.
    let tmp = tempfile::tempdir().unwrap();
    let explain = |tar: &str| {
        let nowhere = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
            .args(["explain", "--json", "--binfmt-misc"])
            .arg(nowhere.path())
            .arg("--cache-dir")
            .arg(nowhere.path())
            .arg("--image")
            .arg(images.dir.join(tar))
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), j)
    };
    let (code, j) = explain("docker.tar");
    assert_eq!(
        (code, j["image"]["format"].as_str()),
        (0, Some("docker-archive")),
        "{j:#}"
    );
    assert_eq!(j["files"][0]["verdict"]["outcome"], "native");
    let (code, j) = explain("oci.tar");
    assert_eq!(
        (code, j["image"]["format"].as_str()),
        (1, Some("oci-archive")),
        "{j:#}"
    );
    assert_eq!(
        j["files"][0]["verdict"]["problems"][0]["library"],
        "libz.so.1"
    );
    // Nothing of the image is left behind in the temporary directory.
    let leftovers = fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(leftovers, 0);
}

#[test]
fn not_an_image_is_a_usage_error_naming_it() {
    let nowhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["explain", "--image"])
        .arg(nowhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&nowhere.path().display().to_string()) && err.contains("index.json"),
        "{err}"
    );
}

/// A blob whose bytes no longer match its digest (a layer altered after the fact) is
/// refused with the blob named, before anything is judged from it.
#[test]
fn altered_layer_is_refused_naming_the_blob() {
    let images = Images::build("altered");
    let layout = images.layout("altered-layout", &["amd64"]);
    // The largest blob is the layer with libc6 in it.
    let blob = sh(&format!(
        "cd {} && ls -S blobs/sha256 | head -1",
        sh_quote(layout.to_str().unwrap())
    ));
    let path = layout.join("blobs/sha256").join(blob.trim());
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["explain", "--image"])
        .arg(&layout)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(blob.trim()) && err.contains("not the digest that names it"),
        "{err}"
    );
}
