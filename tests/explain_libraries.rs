//! `binfmtd explain` on libraries and symbol versions: roots assembled from Debian packages,
//! each verdict checked against what really happens when the program is executed in that
//! root (chroot inside the private sandbox of tests/common).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sandbox;
use serde_json::Value;

/// A fixture package tree; fails with the fix when tests/fixtures/fetch.sh has not run.
fn package(rel: &str) -> PathBuf {
    let p = common::fixtures::dir().join(rel);
    assert!(
        p.is_dir(),
        "fixture {} is missing: run `bash tests/fixtures/fetch.sh` first",
        p.display()
    );
    p
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-euc").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh root under the target dir (the sandbox mounts its own /tmp), merged-/usr like
/// Debian's, with the package trees copied in; world-readable for the sandbox's uid.
fn root(name: &str, pkgs: &[&str]) -> PathBuf {
    let r = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("explain-roots/{name}"));
    let _ = fs::remove_dir_all(&r);
    let q = common::sh_quote(r.to_str().unwrap());
    let mut script = format!(
        "mkdir -p {q}/usr/lib {q}/usr/bin {q}/usr/sbin {q}/usr/lib64 {q}/etc\n\
         for d in lib bin sbin lib64; do ln -s usr/$d {q}/$d; done\n"
    );
    for p in pkgs {
        let src = common::sh_quote(package(p).to_str().unwrap());
        script += &format!("tar -C {src} -cf - . | tar -C {q} -xf - --keep-directory-symlink\n");
    }
    sh(&script);
    r
}

fn chmod_readable(root: &Path) {
    sh(&format!(
        "chmod -R a+rX {}",
        common::sh_quote(root.to_str().unwrap())
    ));
}

/// `explain --json --root ROOT ROOT/PROGRAM` with binfmt_misc pointed at an empty directory.
fn explain(root: &Path, program: &str) -> (i32, Value) {
    let nowhere = tempfile::tempdir().unwrap();
    let host_path = root.join(program.trim_start_matches('/'));
    let out = Command::new(env!("CARGO_BIN_EXE_binfmtd"))
        .args(["explain", "--json", "--binfmt-misc"])
        .arg(nowhere.path())
        .arg("--cache-dir")
        .arg(nowhere.path())
        .arg("--root")
        .arg(root)
        .arg(&host_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), j["files"][0].clone())
}

/// Execute PROGRAM ARGS chrooted into ROOT inside the sandbox: (exit code, stderr).
fn execute(root: &Path, program: &str, args: &str) -> Option<(i32, String)> {
    let sb = Sandbox::new()?;
    chmod_readable(root);
    // A container has /proc; glibc needs /proc/self/exe to expand the program's $ORIGIN.
    fs::create_dir_all(root.join("proc")).unwrap();
    let run = sb.run_script(&format!(
        "mount -t proc proc {r}/proc\n\
         rc=0; chroot {r} {program} {args} >/dev/null 2>/tmp/err || rc=$?\n\
         echo \"exit=$rc\"; cat /tmp/err",
        r = common::sh_quote(root.to_str().unwrap())
    ));
    let code = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("exit="))
        .unwrap_or_else(|| panic!("{run}"))
        .parse()
        .unwrap();
    let err = run.stdout.split_once('\n').map(|x| x.1).unwrap_or("");
    Some((code, err.to_string()))
}

/// Explain and execute; the verdict must agree with the execution. Returns both.
fn judge(root: &Path, program: &str, args: &str) -> Option<(Value, i32, String)> {
    let (code, f) = explain(root, program);
    let (exit, err) = execute(root, program, args)?;
    let runs = f["verdict"]["outcome"] == "native";
    assert_eq!(
        runs,
        exit == 0,
        "explain says {:#} but executing it exited {exit}: {err}",
        f["verdict"]
    );
    assert_eq!(code, if runs { 0 } else { 1 }, "explain's exit code");
    Some((f, exit, err))
}

fn problem<'a>(f: &'a Value, code: &str) -> &'a Value {
    f["verdict"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {f:#}"))
}

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

#[test]
fn stale_ld_so_cache_hides_a_conf_directory_until_ldconfig() {
    let r = root(
        "stale-cache",
        &[
            "bookworm/amd64/libc6",
            "bookworm/amd64/pigz",
            "bookworm/amd64/zlib1g",
        ],
    );
    let q = common::sh_quote(r.to_str().unwrap());
    sh(&format!(
        "mkdir -p {q}/opt/zlib/lib && mv {q}/usr/lib/x86_64-linux-gnu/libz.so.1* {q}/opt/zlib/lib/\n\
         echo 'include /etc/ld.so.conf.d/*.conf' > {q}/etc/ld.so.conf\n\
         ldconfig -r {q}\n\
         echo /opt/zlib/lib > {q}/etc/ld.so.conf.d/zlib.conf"
    ));
    let Some((f, exit, _)) = judge(&r, "/usr/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 127);
    let p = problem(&f, "library-missing");
    assert!(
        p["hint"].as_str().unwrap().contains("/opt/zlib/lib"),
        "{p:#}"
    );
    assert!(p["searched"].to_string().contains("/etc/ld.so.cache"));

    sh(&format!("ldconfig -r {q}"));
    let Some((f, exit, _)) = judge(&r, "/usr/bin/pigz", "--version") else {
        return;
    };
    assert_eq!(exit, 0);
    let z = &f["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "libz.so.1")
        .unwrap()["path"];
    assert_eq!(z, "/opt/zlib/lib/libz.so.1");
    // The cache parser agrees with glibc's own reader of that cache.
    let cache =
        binfmtd::explain::ldcache::parse_cache(&fs::read(r.join("etc/ld.so.cache")).unwrap())
            .unwrap();
    let listed = sh(&format!("ldconfig -p -C {q}/etc/ld.so.cache"));
    let pairs: Vec<(String, String)> = listed
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" (")?;
            Some((name.to_string(), rest.split_once("=> ")?.1.to_string()))
        })
        .collect();
    let ours: Vec<(String, String)> = cache
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.path.clone()))
        .collect();
    assert_eq!(ours, pairs);
}

/// A musl program and its library, built with Debian's musl-gcc, in a root with Debian's
/// musl (loader at /lib/ld-musl-x86_64.so.1, /etc/ld-musl-x86_64.path).
fn musl_root(name: &str, with_lib: bool) -> PathBuf {
    let r = root(name, &["bookworm/amd64/musl"]);
    let q = common::sh_quote(r.to_str().unwrap());
    let lib = if with_lib {
        format!("cp \"$b/libgreet.so.1\" {q}/usr/lib/x86_64-linux-musl/")
    } else {
        String::new()
    };
    sh(&format!(
        "b=$(mktemp -d)\n\
         printf 'int greet(void) {{ return 0; }}\\n' > \"$b/greet.c\"\n\
         printf 'int greet(void);\\nint main(void) {{ return greet(); }}\\n' > \"$b/main.c\"\n\
         musl-gcc -shared -fPIC -Wl,-soname,libgreet.so.1 -o \"$b/libgreet.so.1\" \"$b/greet.c\"\n\
         ln -s libgreet.so.1 \"$b/libgreet.so\"\n\
         musl-gcc -o {q}/usr/bin/greet \"$b/main.c\" -L\"$b\" -lgreet\n\
         {lib}\nrm -r \"$b\""
    ));
    r
}

#[test]
fn musl_program_resolves_through_the_musl_path_file() {
    let r = musl_root("musl", true);
    let Some((f, exit, err)) = judge(&r, "/usr/bin/greet", "") else {
        return;
    };
    assert_eq!(exit, 0, "{err}");
    assert_eq!(f["elf"]["interpreter"], "/lib/ld-musl-x86_64.so.1");
    let libs = f["libraries"].as_array().unwrap();
    // libc.so is the loader itself; libgreet is found in the path file's first directory
    // (/lib is /usr/lib in this merged-/usr root).
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert_eq!(libs[0]["path"], "/lib/x86_64-linux-musl/libgreet.so.1");

    let r = musl_root("musl-missing", false);
    let Some((f, exit, _)) = judge(&r, "/usr/bin/greet", "") else {
        return;
    };
    assert_eq!(exit, 127);
    let p = problem(&f, "library-missing");
    assert_eq!(p["library"], "libgreet.so.1");
    assert_eq!(
        p["searched"],
        serde_json::json!(["/lib/x86_64-linux-musl", "/usr/lib/x86_64-linux-musl"])
    );
}

/// prog -> libA (in /usr/lib; found as /lib/libA.so, /lib being searched first and being
/// /usr/lib) -> libB (only in /opt/deps), with /opt/deps as prog's RPATH
/// or RUNPATH, built here with gcc into a root with Debian's libc6.
fn inherit_root(name: &str, new_dtags: bool) -> PathBuf {
    let r = root(name, &["bookworm/amd64/libc6"]);
    let q = common::sh_quote(r.to_str().unwrap());
    let dtags = if new_dtags {
        "--enable-new-dtags"
    } else {
        "--disable-new-dtags"
    };
    sh(&format!(
        "b=$(mktemp -d)\n\
         printf 'int b(void) {{ return 0; }}\\n' > \"$b/b.c\"\n\
         printf 'int b(void);\\nint a(void) {{ return b(); }}\\n' > \"$b/a.c\"\n\
         printf 'int a(void);\\nint main(void) {{ return a(); }}\\n' > \"$b/m.c\"\n\
         mkdir -p {q}/opt/deps\n\
         gcc -shared -fPIC -Wl,-soname,libB.so -o {q}/opt/deps/libB.so \"$b/b.c\"\n\
         gcc -shared -fPIC -Wl,-soname,libA.so -o {q}/usr/lib/libA.so \"$b/a.c\" -L{q}/opt/deps -lB\n\
         gcc -o {q}/usr/bin/prog \"$b/m.c\" -L{q}/usr/lib -lA -Wl,-rpath-link,{q}/opt/deps \
             -Wl,{dtags} -Wl,-rpath,/opt/deps\n\
         rm -r \"$b\""
    ));
    r
}

#[test]
fn rpath_is_inherited_by_dependencies_and_runpath_is_not() {
    let r = inherit_root("rpath", false);
    let Some((f, exit, err)) = judge(&r, "/usr/bin/prog", "") else {
        return;
    };
    assert_eq!(exit, 0, "{err}");
    assert_eq!(f["elf"]["rpath"], serde_json::json!(["/opt/deps"]));
    let libs = f["libraries"].as_array().unwrap();
    let b = libs.iter().find(|l| l["name"] == "libB.so").unwrap();
    assert_eq!(
        (b["path"].as_str(), b["needed_by"].as_str()),
        (Some("/opt/deps/libB.so"), Some("/lib/libA.so"))
    );

    let r = inherit_root("runpath", true);
    let Some((f, exit, err)) = judge(&r, "/usr/bin/prog", "") else {
        return;
    };
    assert_eq!(exit, 127, "{err}");
    assert!(
        err.contains("libB.so: cannot open shared object file"),
        "{err}"
    );
    assert_eq!(f["elf"]["runpath"], serde_json::json!(["/opt/deps"]));
    let p = problem(&f, "library-missing");
    assert_eq!(
        (p["library"].as_str(), p["needed_by"].as_str()),
        (Some("libB.so"), Some("/lib/libA.so"))
    );
    assert!(!p["searched"].to_string().contains("/opt/deps"), "{p:#}");
}
