//! `binfmtd explain` on libraries and symbol versions: roots assembled from Debian packages,
//! each verdict checked against what really happens when the program is executed in that
//! root (chroot inside the private sandbox of tests/common). The loader's search rules on
//! roots built here (stale ld.so.cache, musl, RPATH inheritance) are in
//! tests/explain_loader_rules.rs; the helpers in tests/explain_common.

mod common;
mod explain_common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use explain_common::{judge, problem, root, sh};

#[test]
fn curl_with_only_libc_misses_its_direct_library() {
    // The report's case: a root with libc and the loader, and Debian's curl copied in.
    let r = root(
        "curl-bare",
        &["bookworm/amd64/libc6", "bookworm/amd64/curl"],
    );
    let Some((f, exit, err)) = judge(&r, "/usr/bin/curl", "--version") else {
        return;
    };
    assert_eq!(exit, 127, "{err}");
    assert!(
        err.contains("libcurl.so.4: cannot open shared object file"),
        "{err}"
    );
    let p = problem(&f, "library-missing");
    assert_eq!(p["library"], "libcurl.so.4");
    assert_eq!(p["needed_by"], "/usr/bin/curl");
    let searched: Vec<&str> = p["searched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        searched.contains(&"/usr/lib/x86_64-linux-gnu"),
        "{searched:?}"
    );
    assert!(p["message"].as_str().unwrap().contains("libcurl.so.4"));
}

#[test]
fn curl_with_libcurl_misses_an_indirect_library() {
    let r = root(
        "curl-indirect",
        &[
            "bookworm/amd64/libc6",
            "bookworm/amd64/curl",
            "bookworm/amd64/libcurl4",
            "bookworm/amd64/zlib1g",
        ],
    );
    let Some((f, exit, err)) = judge(&r, "/usr/bin/curl", "--version") else {
        return;
    };
    assert_eq!(exit, 127);
    // The loader stops at the first library it cannot find; explain names that one too.
    let first = err.split(':').nth(2).unwrap_or("").trim().to_string();
    let missing: Vec<&Value> = f["verdict"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == "library-missing")
        .collect();
    assert!(
        missing.iter().any(|p| p["library"] == first.as_str()),
        "{first}: {f:#}"
    );
    for p in &missing {
        assert_eq!(
            p["needed_by"], "/lib/x86_64-linux-gnu/libcurl.so.4",
            "{p:#}"
        );
    }
    let libs = f["libraries"].as_array().unwrap();
    assert!(libs
        .iter()
        .any(|l| l["name"] == "libcurl.so.4" && l["needed_by"] == "/usr/bin/curl"));
}

/// pigz from Debian, moved to /opt/pigz/bin with RUNPATH $ORIGIN/../lib and its libz there.
fn origin_root(name: &str, with_lib: bool) -> PathBuf {
    let r = root(
        name,
        &[
            "bookworm/amd64/libc6",
            "bookworm/amd64/pigz",
            "bookworm/amd64/zlib1g",
        ],
    );
    let q = common::sh_quote(r.to_str().unwrap());
    sh(&format!(
        "mkdir -p {q}/opt/pigz/bin {q}/opt/pigz/lib\n\
         mv {q}/usr/bin/pigz {q}/opt/pigz/bin/pigz\n\
         patchelf --set-rpath '$ORIGIN/../lib' {q}/opt/pigz/bin/pigz\n\
         mv {q}/usr/lib/x86_64-linux-gnu/libz.so.1* {q}/opt/pigz/lib/\n\
         {}",
        if with_lib {
            String::new()
        } else {
            format!("rm {q}/opt/pigz/lib/libz.so.1*")
        }
    ));
    r
}

#[test]
fn origin_runpath_resolves_next_to_the_program() {
    let r = origin_root("origin", true);
    let runpath = sh(&format!("readelf -d {}/opt/pigz/bin/pigz", r.display()));
    assert!(
        runpath.contains("RUNPATH") && runpath.contains("$ORIGIN/../lib"),
        "{runpath}"
    );
    let Some((f, exit, _)) = judge(&r, "/opt/pigz/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 0);
    assert_eq!(f["elf"]["runpath"][0], "$ORIGIN/../lib");
    let libs = f["libraries"].as_array().unwrap();
    let z = libs.iter().find(|l| l["name"] == "libz.so.1").unwrap();
    assert_eq!(z["path"], "/opt/pigz/bin/../lib/libz.so.1");

    // Without the library there, the same program cannot run, and $ORIGIN is expanded.
    let r = origin_root("origin-missing", false);
    let Some((f, exit, _)) = judge(&r, "/opt/pigz/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 127);
    let p = problem(&f, "library-missing");
    assert_eq!(p["searched"][0], "/opt/pigz/bin/../lib");

    // $ORIGIN inside DT_NEEDED itself (a path, opened as is after expansion; bundled
    // runtimes do this), without any RUNPATH: the library is found there. patchelf also
    // renamed pigz's ZLIB_ version references to that unexpanded string, under which
    // nothing is loaded (glibc knows the object by its expanded path), and glibc's loader
    // stops on that with an assertion; explain says both.
    let r = origin_root("origin-needed", true);
    sh(&format!(
        "patchelf --remove-rpath --replace-needed libz.so.1 '$ORIGIN/../lib/libz.so.1' {}/opt/pigz/bin/pigz",
        r.display()
    ));
    let Some((f, exit, err)) = judge(&r, "/opt/pigz/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 127, "{err}");
    assert!(err.contains("_dl_check_map_versions"), "{err}");
    let libs = f["libraries"].as_array().unwrap();
    let z = libs
        .iter()
        .find(|l| l["name"] == "$ORIGIN/../lib/libz.so.1")
        .unwrap();
    assert_eq!(z["path"], "/opt/pigz/bin/../lib/libz.so.1");
    let p = problem(&f, "versions-from-unloaded");
    assert_eq!(p["library"], "$ORIGIN/../lib/libz.so.1");
}

#[test]
fn newer_libstdcxx_requirement_names_both_versions() {
    // trixie's ninja against trixie's libc but bookworm's libstdc++.
    let r = root(
        "glibcxx",
        &[
            "trixie/amd64/libc6",
            "bookworm/amd64/libstdc++6",
            "bookworm/amd64/libgcc-s1",
            "trixie/amd64/ninja-build",
        ],
    );
    let lib = r.join("usr/lib/x86_64-linux-gnu/libstdc++.so.6");
    let highest = |file: &Path| {
        let text = sh(&format!("readelf -V --wide {}", file.display()));
        let mut v: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .filter(|w| w.starts_with("GLIBCXX_3.4."))
            .map(str::to_string)
            .collect();
        v.sort_by_key(|w| w[12..].parse::<u32>().unwrap_or(0));
        v.pop().unwrap()
    };
    let (needed, available) = (highest(&r.join("usr/bin/ninja")), highest(&lib));
    assert!(needed > available, "{needed} vs {available}");
    let Some((f, exit, err)) = judge(&r, "/usr/bin/ninja", "--version") else {
        return;
    };
    assert_ne!(exit, 0);
    assert!(
        err.contains(&format!("version `{needed}' not found")),
        "{err}"
    );
    let p = f["verdict"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["version"] == needed.as_str())
        .unwrap_or_else(|| panic!("no {needed} in {f:#}"));
    assert_eq!(p["code"], "version-missing");
    assert_eq!(p["library"], "libstdc++.so.6");
    assert_eq!(p["available"], available.as_str());
    let msg = p["message"].as_str().unwrap();
    assert!(
        msg.contains(&needed) && msg.contains(&available) && msg.contains("libstdc++.so.6"),
        "{msg}"
    );
}

#[test]
fn library_for_another_arch_is_skipped_as_the_loader_skips_it() {
    let r = root(
        "other-arch",
        &[
            "bookworm/amd64/libc6",
            "bookworm/amd64/pigz",
            "bookworm/arm64/zlib1g",
        ],
    );
    // The arm64 libz sits in the arm64 multiarch dir and, copied, in /usr/lib, which the
    // x86_64 loader does search.
    sh(&format!(
        "cp -L {0}/usr/lib/aarch64-linux-gnu/libz.so.1 {0}/usr/lib/libz.so.1",
        r.display()
    ));
    let Some((f, exit, err)) = judge(&r, "/usr/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 127, "{err}");
    let p = problem(&f, "library-missing");
    assert_eq!(p["library"], "libz.so.1");
    let skipped = p["skipped"].to_string();
    assert!(
        skipped.contains("/usr/lib/libz.so.1 is for aarch64"),
        "{skipped}"
    );
}
