//! `binfmtd explain --image` against hostile images, each built here by the test: a tiny
//! zstd layer holding a 1 GiB `bin/sh`, a `bin/sh` with 30 hard links, indexes that point
//! 12 times at the same child five levels deep, one layer with 20,000 root-level opaque
//! markers, a layer blob that is a symlink to /dev/zero or a FIFO, and a docker-archive
//! tar with 100,000 filler members. Every run has a deadline, so a regression fails
//! instead of hanging.

mod common;
#[path = "hardening_explain/crafted.rs"]
mod crafted;
mod explain_common;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{sh_quote, Sandbox};
use crafted::*;
use serde_json::{json, Value};

/// Defect 6: what `explain --image` writes to its scratch directory is capped per file and
/// in total, and a hard link is a link. Measured by the filesystem itself: TMPDIR is a
/// 48 MiB tmpfs, which the unfixed code overflows (1 GiB, then 31 copies).
#[test]
fn scratch_writes_are_capped_and_hard_links_are_links() {
    let Some(sb) = Sandbox::new() else { return };
    let dir = workdir("scratch");
    let huge = finish(
        &dir.join("huge"),
        vec![manifest(
            &dir.join("huge"),
            &[zstd_tar(vec![big_script("bin/sh", 1 << 30)])],
        )],
    );
    let linked = |name: &str, size: u64| {
        let mut members = vec![big_script("bin/sh", size)];
        members.extend((0..30).map(|i| hard_link(&format!("bin/sh{i}"), "bin/sh")));
        let d = dir.join(name);
        finish(
            &d,
            vec![manifest_running(&d, &[zstd_tar(members)], "/bin/sh29")],
        )
    };
    // 64 MiB: over the per-file cap. 3 MiB: under it, so only linking keeps it small
    // (the unfixed code ignored its failed copies: the entrypoint, a link, went missing).
    let over = linked("links-64m", 64 << 20);
    let under = linked("links-3m", 3 << 20);
    let layer_bytes = fs::metadata(dir.join("huge/blobs/sha256"))
        .map(|_| dir_bytes(&dir.join("huge/blobs/sha256")))
        .unwrap();
    assert!(
        layer_bytes < 1 << 20,
        "the 1 GiB layer is {layer_bytes} bytes"
    );
    chmod_readable(&dir);
    let mut script = String::from(
        "mkdir /tmp/scratch && mount -t tmpfs -o size=48m tmpfs /tmp/scratch\n\
         export TMPDIR=/tmp/scratch\n",
    );
    for (name, path) in [("huge", &huge), ("over", &over), ("under", &under)] {
        script += &format!(
            "rc=0; \"$BINFMTD\" explain --json --native x86_64 --image {} >/tmp/{name}.json \
               2>/tmp/{name}.err || rc=$?\n\
             echo \"{name}-exit=$rc left=$(ls -A /tmp/scratch | wc -l)\"; cat /tmp/{name}.err\n\
             tr -d '\\n' </tmp/{name}.json; echo\n",
            sh_quote(path.to_str().unwrap())
        );
    }
    let run = sb.run_script(&script).success();
    for name in ["huge", "over", "under"] {
        let line = format!("{name}-exit=1 left=0");
        assert!(run.stdout.contains(&line), "{name}: {run}");
        let j: Value = run
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with(&line))
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{name}: no JSON in {run}"));
        // explain still answers: a script whose interpreter the image lacks.
        let f = &j["files"][0];
        let entrypoint = if name == "huge" {
            "/bin/sh"
        } else {
            "/bin/sh29"
        };
        assert_eq!(f["path"], entrypoint, "{j:#}");
        assert_eq!(f["type"], "script", "{j:#}");
        assert_eq!(f["verdict"]["problems"][0]["code"], "interpreter-missing");
        let limited = j["image"]["limited"].as_array().unwrap();
        if name == "under" {
            assert!(limited.is_empty(), "{j:#}");
        } else {
            assert_eq!(limited[0]["path"], "/bin/sh", "{j:#}");
        }
    }
}

/// Defect 6, the total: 47 programs of 4 MiB, then 560 of 200 KiB, then the entrypoint
/// (200 KiB), all in `bin` (295 MiB in all). Whole copies stop while a reserve is left, the rest are
/// read in part, and past 256 MiB files are not written at all: TMPDIR is a 260 MiB
/// tmpfs, which the unfixed code overflows. The report names what was not read.
#[test]
fn scratch_writes_stop_at_the_total_cap() {
    let Some(sb) = Sandbox::new() else { return };
    let dir = workdir("total");
    let mut members: Vec<Box<dyn Read>> = (0..47)
        .map(|i| big_script(&format!("bin/a{i:03}"), 4 << 20))
        .collect();
    members.extend((0..560).map(|i| big_script(&format!("bin/b{i:03}"), 200 << 10)));
    members.push(big_script("bin/z-entry", 200 << 10));
    let layout = finish(
        &dir,
        vec![manifest_running(&dir, &[zstd_tar(members)], "/bin/z-entry")],
    );
    chmod_readable(&dir);
    let run = sb
        .run_script(&format!(
            "mkdir /tmp/scratch && mount -t tmpfs -o size=260m tmpfs /tmp/scratch\n\
             rc=0; TMPDIR=/tmp/scratch \"$BINFMTD\" explain --native x86_64 --image {l} \
               >/tmp/human 2>&1 || rc=$?\n\
             rc2=0; TMPDIR=/tmp/scratch \"$BINFMTD\" explain --json --native x86_64 --image {l} \
               >/tmp/j 2>/tmp/err || rc2=$?\n\
             echo \"exit=$rc,$rc2\"; cat /tmp/human /tmp/err; tr -d '\\n' </tmp/j; echo",
            l = sh_quote(layout.to_str().unwrap())
        ))
        .success();
    assert!(run.stdout.contains("exit=1,1"), "{run}");
    assert!(
        run.stdout.contains("file(s) not read (")
            && run
                .stdout
                .contains("/bin/z-entry (0 MiB) was not read: explain writes at most 256 MiB"),
        "{run}"
    );
    let j: Value = run
        .stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON in {run}"));
    let limited = j["image"]["limited"].as_array().unwrap();
    let read = |how: &str| limited.iter().filter(|l| l["read"] == how).count();
    assert!(read("ranges") > 400 && read("nothing") > 0, "{j:#}");
    assert_eq!(limited.last().unwrap()["path"], "/bin/z-entry", "{j:#}");
}

/// Defect 7: indexes that point 12 times at the same child, five levels deep (12^5 =
/// 248,832 manifests when nothing is deduplicated). Must finish fast with small output.
#[test]
fn index_fan_out_is_deduplicated() {
    let dir = workdir("fan-out");
    let mut child = manifest(&dir, &[small_layer()]);
    child["platform"] = json!({"os": "linux", "architecture": "amd64"});
    for _ in 0..4 {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX,
                           "manifests": vec![child.clone(); 12]});
        child = blob(&dir, INDEX, index.to_string().as_bytes());
    }
    let layout = finish(&dir, vec![child; 12]);
    let (code, out, err) = explain(&layout, 30);
    assert!(out.len() < 64 << 10, "{} bytes of output", out.len());
    assert_eq!(code, 1, "{err}");
    let j: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        j["image"]["platforms"].as_array().unwrap().len(),
        1,
        "{j:#}"
    );
    assert_eq!(j["files"][0]["path"], "/bin/sh");
}

/// Defect 7, breadth without duplicates: more distinct manifests than the cap is refused,
/// naming the cap.
#[test]
fn index_with_too_many_distinct_manifests_is_refused() {
    let dir = workdir("too-many");
    let m = manifest(&dir, &[small_layer()]);
    // Distinct digests of the same manifest bytes are not possible: vary the annotations.
    let many: Vec<Value> = (0..5000)
        .map(|i| {
            let mut d = m.clone();
            d["digest"] = json!(format!("sha256:{:064x}", i));
            d
        })
        .collect();
    let layout = finish(&dir, many);
    let (code, _, err) = explain(&layout, 30);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("more than") && err.contains("manifests"),
        "{err}"
    );
}

/// Defect 8: n files then n root-level `.wh..wh..opq` markers in one layer. Each marker
/// scanned the whole tree (28.8 s for n = 20,000 in release builds); applied once per
/// layer it is a moment.
#[test]
fn many_opaque_markers_in_one_layer_are_applied_once() {
    let dir = workdir("opaque");
    let n = 20_000;
    let mut members = vec![big_script("bin/sh", 64)];
    members.extend((0..n).map(|i| {
        member(
            &format!("f{i}"),
            tar::EntryType::Regular,
            0,
            None,
            io::empty(),
        )
    }));
    members.extend((0..n).map(|_| {
        member(
            ".wh..wh..opq",
            tar::EntryType::Regular,
            0,
            None,
            io::empty(),
        )
    }));
    let layout = finish(&dir, vec![manifest(&dir, &[zstd_tar(members)])]);
    let start = Instant::now();
    let (code, out, err) = explain(&layout, 60);
    let took = start.elapsed();
    assert_eq!(code, 1, "{err}");
    let j: Value = serde_json::from_slice(&out).unwrap();
    // Markers hide lower layers only: the layer's own bin/sh is still there.
    assert_eq!(j["files"][0]["type"], "script", "{j:#}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// Defect 9: a layer blob that is a symlink to /dev/zero, or a FIFO, is refused promptly
/// (the unfixed code read /dev/zero without end, and blocked opening the FIFO).
#[test]
fn layer_blob_that_is_not_a_regular_file_is_refused() {
    for (name, make) in [
        ("dev-zero", "symlink"),
        ("fifo", "fifo"),
        ("oversized", "grow"),
    ] {
        let dir = workdir(&format!("blob-{name}"));
        let m = manifest(&dir, &[small_layer()]);
        let layout = finish(&dir, vec![m]);
        let layer = layer_blob(&layout);
        fs::remove_file(&layer).unwrap();
        match make {
            "symlink" => std::os::unix::fs::symlink("/dev/zero", &layer).unwrap(),
            "fifo" => nix::unistd::mkfifo(&layer, nix::sys::stat::Mode::S_IRUSR).unwrap(),
            // A regular file far longer than its descriptor's size: read only that far.
            _ => {
                let f = fs::File::create(&layer).unwrap();
                f.set_len(8 << 30).unwrap();
                f.set_permissions(fs::Permissions::from_mode(0o644))
                    .unwrap();
            }
        }
        let (code, _, err) = explain(&layout, 20);
        assert_eq!(code, 2, "{name}: {err}");
        let hex = layer.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(hex), "{name}: {err}");
        let why = match make {
            "grow" => "size",
            _ => "not a regular file",
        };
        assert!(err.contains(why), "{name}: {err}");
    }
}

/// Suspected: a tar source kept one index entry per member, so memory grew with the member
/// count (250,000 empty members with 80-byte names: 73 MB RSS, and it grows with any
/// number). A docker-archive tar holding a valid image plus 100,000 filler members is
/// refused, naming the member cap, instead of being indexed whole.
#[test]
fn image_tar_with_too_many_members_is_refused() {
    let dir = workdir("members");
    let tar_path = dir.join("image.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes).unwrap();
    };
    let config = json!({"os": "linux", "architecture": "amd64",
                        "config": {"Entrypoint": ["/bin/sh"]}});
    add("config.json", config.to_string().as_bytes());
    let mut layer = vec![];
    Concat(
        [
            big_script("bin/sh", 64),
            Box::new(io::repeat(0).take(1024)) as Box<dyn Read>,
        ]
        .into(),
    )
    .read_to_end(&mut layer)
    .unwrap();
    add("layer.tar", &layer);
    let manifest = json!([{"Config": "config.json", "Layers": ["layer.tar"]}]);
    add("manifest.json", manifest.to_string().as_bytes());
    for i in 0..100_000 {
        add(&format!("filler/{}{i:07}", "x".repeat(64)), b"");
    }
    b.finish().unwrap();
    drop(b);
    let (code, _, err) = explain(&tar_path, 60);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than 65536 members"), "{err}");
}

/// A program over the per-file cap is judged from its ranges, and judged right: this
/// crate's own binfmtd binary (dynamic, its .dynamic tens of MiB in when built with debug
/// info), padded to at least 40 MiB with bytes after its section headers so they are not
/// at the end either, in a plain-tar layer with Debian's libc6 and libgcc-s1. Its ELF facts
/// through `--image` equal those of the binary explained directly.
#[test]
fn program_over_the_file_cap_is_judged_from_its_loader_ranges() {
    let dir = workdir("large-elf");
    let bin = Path::new(env!("CARGO_BIN_EXE_binfmtd"));
    let len = fs::metadata(bin).unwrap().len();
    let size = len.max(40 << 20) + (1 << 20);
    let tar_path = dir.join("layer.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    b.follow_symlinks(false);
    for p in ["libc6", "libgcc-s1"] {
        let pkg = explain_common::package(&format!("bookworm/amd64/{p}"));
        b.append_dir_all(".", pkg).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o755);
    let body = fs::File::open(bin).unwrap().chain(io::repeat(b'Z'));
    b.append_data(&mut h, "usr/bin/big", body.take(size))
        .unwrap();
    b.into_inner().unwrap();
    let layer = blob_file(&dir, &tar_path);
    let config = json!({"os": "linux", "architecture": "amd64",
                        "config": {"Entrypoint": ["/usr/bin/big"]}});
    let config = blob(
        &dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let m = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
    let layout = finish(&dir, vec![blob(&dir, MANIFEST, m.to_string().as_bytes())]);
    let (code, out, err) = explain(&layout, 120);
    let j: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(code, 0, "{j:#}");
    let f = &j["files"][0];
    assert_eq!(f["verdict"]["outcome"], "native", "{j:#}");
    assert_eq!(
        j["image"]["limited"],
        json!([{"path": "/usr/bin/big", "size": size, "read": "ranges"}]),
        "{j:#}"
    );
    let direct = run_with_deadline(
        Command::new(bin)
            .args(["explain", "--json", "--native", "x86_64"])
            .arg(bin),
        60,
    );
    let direct: Value = serde_json::from_slice(&direct.1).unwrap();
    assert_eq!(f["elf"], direct["files"][0]["elf"], "{j:#}");
    assert!(f["elf"]["needed"]
        .as_array()
        .unwrap()
        .contains(&json!("libc.so.6")));
}

/// Defect 6, inodes: 5,000 symlinks, each 41 directories deep on its own path (a few KB
/// compressed), would put 210,000 entries into the scratch directory (on ext4, a block
/// per directory); explain stops at the entry cap with a reason instead. TMPDIR is a
/// tmpfs, so the 200,000 entries before the cap cost seconds, not minutes.
#[test]
fn scratch_entries_are_capped() {
    let Some(sb) = Sandbox::new() else { return };
    let dir = workdir("entries");
    let deep = vec!["d"; 40].join("/");
    let mut members = vec![big_script("bin/sh", 64)];
    members.extend((0..5_000).map(|i| {
        member(
            &format!("t{i}/{deep}/l"),
            tar::EntryType::Symlink,
            0,
            Some("/bin/sh"),
            io::empty(),
        )
    }));
    let layout = finish(&dir, vec![manifest(&dir, &[zstd_tar(members)])]);
    chmod_readable(&dir);
    let run = sb
        .run_script(&format!(
            "mkdir /tmp/scratch && mount -t tmpfs tmpfs /tmp/scratch\n\
             rc=0; TMPDIR=/tmp/scratch timeout 100 \"$BINFMTD\" explain --native x86_64 \
               --image {} >/dev/null 2>/tmp/err || rc=$?\n\
             echo \"exit=$rc left=$(ls -A /tmp/scratch | wc -l)\"; cat /tmp/err",
            sh_quote(layout.to_str().unwrap())
        ))
        .success();
    assert!(run.stdout.contains("exit=2 left=0"), "{run}");
    assert!(
        run.stdout
            .contains("more than 200000 directories, symlinks and files"),
        "{run}"
    );
}
