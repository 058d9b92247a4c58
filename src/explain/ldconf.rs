//! The ld.so.conf files of a root, read as ldconfig reads them (`include` globs relative to
//! the including file, nested a few levels): only to tell a user that a directory they
//! listed is not in the loader's cache. The loader itself never reads them.

use std::path::{Path, PathBuf};

use super::fs::Root;
use super::ldcache::{glob_match, parse_conf, ConfLine};

/// Nesting of `include` lines followed.
const MAX_INCLUDE_DEPTH: usize = 8;

/// Directories an ld.so.conf (and what it includes) lists.
pub fn conf_dirs(root: &Root, file: &Path, depth: usize) -> Vec<String> {
    let Some(text) = root
        .resolve(file)
        .and_then(|h| std::fs::read_to_string(h).ok())
    else {
        return vec![];
    };
    let mut dirs = vec![];
    for line in parse_conf(&text) {
        match line {
            ConfLine::Dir(d) => dirs.push(d),
            ConfLine::Include(_) if depth >= MAX_INCLUDE_DEPTH => {}
            ConfLine::Include(pattern) => {
                let base = file.parent().unwrap_or(Path::new("/"));
                for f in glob(root, &base.join(pattern)) {
                    dirs.extend(conf_dirs(root, &f, depth + 1));
                }
            }
        }
    }
    dirs
}

/// Files matching `pattern` (a glob in its last component only), sorted as glob(3) does.
fn glob(root: &Root, pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return vec![];
    };
    let name = name.to_string_lossy();
    let Some(host) = root.resolve(dir) else {
        return vec![];
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(host)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
        .map(|e| dir.join(e.file_name()))
        .collect();
    found.sort();
    found
}
