//! Symbol versions: what each loaded file needs (SHT_GNU_VERNEED: GLIBCXX_3.4.32 from
//! libstdc++.so.6, GCC_7.0.0 from libgcc_s.so.1, OPENSSL_3.0.0 from libssl.so.3, GLIBC_2.38
//! from libc.so.6) checked against what the library loaded for that name defines
//! (SHT_GNU_VERDEF), as glibc's loader does before running anything. Pure.

use std::cmp::Ordering;
use std::path::Path;

use super::dynamic::Dynamic;
use super::problem::Problem;

/// One loaded file as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// The names DT_NEEDED entries match it by (the name it was loaded as, its SONAME).
    pub names: &'a [String],
    /// Its path inside the root, for messages.
    pub path: &'a str,
    pub dynamic: &'a Dynamic,
}

/// `GLIBCXX_3.4.32` -> `GLIBCXX`: everything before the last `_` that a digit follows.
pub fn family(version: &str) -> Option<&str> {
    let (i, _) = version
        .match_indices('_')
        .rfind(|(i, _)| version[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some(&version[..i])
}

/// Numeric order of two versions of one family (3.4.9 < 3.4.10).
pub fn compare(a: &str, b: &str) -> Ordering {
    let nums = |v: &str| -> Vec<u64> {
        let tail = family(v).map_or(v, |f| &v[f.len() + 1..]);
        tail.split('.').map(|n| n.parse().unwrap_or(0)).collect()
    };
    nums(a).cmp(&nums(b))
}

/// The highest version of `version`'s family among `defs`.
pub fn highest_of_family<'d>(defs: &'d [String], version: &str) -> Option<&'d str> {
    let fam = family(version)?;
    defs.iter()
        .map(String::as_str)
        .filter(|d| family(d) == Some(fam))
        .max_by(|a, b| compare(a, b))
}

/// Every non-weak version some object needs that the library loaded for it does not
/// define. A library in `missing` is reported by the resolver, not here; one that is
/// neither missing nor loaded under that name stops glibc's loader (an assertion). A library
/// without version definitions satisfies any need (the loader only warns, in verbose mode).
pub fn check(objects: &[Object], missing: &[&str], root: &Path) -> Vec<Problem> {
    let mut problems = vec![];
    for o in objects {
        for (file, version, weak) in o.dynamic.needs() {
            if weak {
                continue;
            }
            let Some(lib) = objects.iter().find(|l| l.names.iter().any(|n| n == file)) else {
                let p = Problem::VersionsFromUnloaded {
                    library: file.to_string(),
                    needed_by: o.path.to_string(),
                };
                if !missing.contains(&file) && !problems.contains(&p) {
                    problems.push(p);
                }
                continue;
            };
            let defs = &lib.dynamic.version_defs;
            if defs.is_empty() || defs.iter().any(|d| d == version) {
                continue;
            }
            let p = Problem::VersionMissing {
                version: version.to_string(),
                library: file.to_string(),
                path: lib.path.to_string(),
                needed_by: o.path.to_string(),
                available: highest_of_family(defs, version).map(str::to_string),
                root: root.to_path_buf(),
            };
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::dynamic::VersionNeed;

    fn lib(defs: &[&str]) -> Dynamic {
        Dynamic {
            version_defs: defs.iter().map(|d| d.to_string()).collect(),
            ..Dynamic::default()
        }
    }

    #[test]
    fn families_and_numeric_order() {
        assert_eq!(family("GLIBCXX_3.4.32"), Some("GLIBCXX"));
        assert_eq!(family("OPENSSL_3.0.0"), Some("OPENSSL"));
        assert_eq!(family("GLIBC_PRIVATE"), None);
        assert_eq!(family("LIBSSL_1_1_0"), Some("LIBSSL_1_1"));
        assert_eq!(compare("GLIBCXX_3.4.9", "GLIBCXX_3.4.10"), Ordering::Less);
        let defs: Vec<String> = [
            "libstdc++.so.6",
            "GLIBCXX_3.4",
            "GLIBCXX_3.4.30",
            "GLIBCXX_3.4.9",
            "CXXABI_1.3.13",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            highest_of_family(&defs, "GLIBCXX_3.4.32"),
            Some("GLIBCXX_3.4.30")
        );
        assert_eq!(
            highest_of_family(&defs, "CXXABI_1.3.15"),
            Some("CXXABI_1.3.13")
        );
        assert_eq!(highest_of_family(&defs, "GCC_7.0.0"), None);
    }

    #[test]
    fn missing_versions_name_both_versions_and_the_library() {
        let prog = Dynamic {
            version_needs: vec![VersionNeed {
                file: "libstdc++.so.6".into(),
                versions: vec![
                    ("GLIBCXX_3.4.32".into(), false),
                    ("GLIBCXX_3.4.9".into(), false),
                    ("GLIBCXX_3.4.99".into(), true),
                ],
            }],
            ..Dynamic::default()
        };
        let stdcxx = lib(&["GLIBCXX_3.4", "GLIBCXX_3.4.9", "GLIBCXX_3.4.30"]);
        let names = (vec!["prog".to_string()], vec!["libstdc++.so.6".to_string()]);
        let objects = [
            Object {
                names: &names.0,
                path: "/usr/bin/ninja",
                dynamic: &prog,
            },
            Object {
                names: &names.1,
                path: "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                dynamic: &stdcxx,
            },
        ];
        let problems = check(&objects, &[], Path::new("/r"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let msg = problems[0].to_string();
        for part in [
            "GLIBCXX_3.4.32",
            "GLIBCXX_3.4.30",
            "libstdc++.so.6",
            "/usr/bin/ninja",
            "/r",
        ] {
            assert!(msg.contains(part), "{part} not in {msg}");
        }
        // A library without version definitions satisfies everything.
        let bare = lib(&[]);
        let objects = [
            objects[0],
            Object {
                dynamic: &bare,
                ..objects[1]
            },
        ];
        assert!(check(&objects, &[], Path::new("/r")).is_empty());
        // Versions from a library loaded under no such name: the loader cannot check them.
        let objects = [objects[0]];
        let problems = check(&objects, &[], Path::new("/r"));
        assert!(
            matches!(&problems[..], [Problem::VersionsFromUnloaded { .. }]),
            "{problems:?}"
        );
        assert!(check(&objects, &["libstdc++.so.6"], Path::new("/r")).is_empty());
    }
}
