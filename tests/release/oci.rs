//! The multi-arch OCI image: its index must name linux/amd64 and linux/arm64, and what skopeo selects for
//! each platform must carry that platform's release binary (byte for byte) within the size goal.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{artifact, assert_success, dist, run, VERSION};

/// Size goal for one platform's image, compressed, without qemu (BENCHMARKS.md, "releases").
const IMAGE_GOAL: u64 = 10 * 1024 * 1024;

fn skopeo(args: &[&str]) -> String {
    assert_success(
        &format!("skopeo {args:?}"),
        &run(Command::new("skopeo").args(args)),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The archive as shipped, addressed the way `skopeo copy --all oci-archive:...` pushes it.
fn archive() -> String {
    format!(
        "oci-archive:{}:{VERSION}",
        dist().join(format!("binfmtd-{VERSION}-oci.tar")).display()
    )
}

fn blob(dir: &Path, digest: &serde_json::Value) -> PathBuf {
    dir.join(digest.as_str().unwrap().trim_start_matches("sha256:"))
}

#[test]
fn image_index_holds_both_platforms_with_the_right_binary() {
    let image = archive();
    let index = json(&skopeo(&["inspect", "--raw", &image]));
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for (oci_arch, arch) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        check_platform(&image, oci_arch, arch);
    }
}

/// What skopeo selects for linux/OCI_ARCH: that platform's config, one layer holding exactly the
/// release binary for ARCH, within the size goal.
fn check_platform(image: &str, oci_arch: &str, arch: &str) {
    let copy = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", copy.path().display());
    skopeo(&[
        "copy",
        "--quiet",
        "--override-os",
        "linux",
        "--override-arch",
        oci_arch,
        image,
        &dest,
    ]);
    let manifest = json(&std::fs::read_to_string(copy.path().join("manifest.json")).unwrap());
    let config =
        json(&std::fs::read_to_string(blob(copy.path(), &manifest["config"]["digest"])).unwrap());
    assert_eq!(config["architecture"], oci_arch, "{config}");
    assert_eq!(
        config["config"]["Entrypoint"][0], "/usr/bin/binfmtd",
        "{config}"
    );

    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer expected: {manifest}");
    let rootfs = tempfile::tempdir().unwrap();
    let layer = blob(copy.path(), &layers[0]["digest"]);
    assert_success(
        "tar -xzf layer",
        &run(Command::new("tar")
            .arg("-xzf")
            .arg(layer)
            .arg("-C")
            .arg(rootfs.path())),
    );
    let binary = std::fs::read(rootfs.path().join("usr/bin/binfmtd")).unwrap();
    assert_eq!(
        binary,
        std::fs::read(artifact(arch)).unwrap(),
        "{oci_arch} image does not hold the {arch} binary"
    );
    let listing = run(Command::new("find")
        .args([".", "-type", "f"])
        .current_dir(rootfs.path()));
    let listing = assert_success("find", &listing);
    assert_eq!(
        listing.trim(),
        "./usr/bin/binfmtd",
        "the image holds more than the binary"
    );

    let compressed =
        layers[0]["size"].as_u64().unwrap() + manifest["config"]["size"].as_u64().unwrap();
    println!(
        "image linux/{oci_arch}: {compressed} bytes compressed ({:.2} MiB)",
        compressed as f64 / 1048576.0
    );
    assert!(
        compressed <= IMAGE_GOAL,
        "linux/{oci_arch} image is {compressed} bytes, over the 10 MiB goal"
    );
}
