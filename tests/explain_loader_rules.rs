//! The dynamic loaders' search rules, each on a root built here and each verdict checked
//! by executing the program there (chroot inside the private sandbox): a stale
//! ld.so.cache hides an ld.so.conf directory until ldconfig, musl's path file, and DT_RPATH
//! inherited by dependencies where DT_RUNPATH is not.

mod common;
mod explain_common;

use std::fs;
use std::path::PathBuf;

use explain_common::{judge, problem, root, sh};

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
