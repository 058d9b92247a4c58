//! The host's own binfmt_misc, observed only: every sandbox run is bracketed by two
//! snapshots that must be equal, so a test that leaks into the host fails loudly.

use std::collections::BTreeMap;
use std::path::Path;

pub const HOST_BINFMT: &str = "/proc/sys/fs/binfmt_misc";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// Nothing of type binfmt_misc is mounted at /proc/sys/fs/binfmt_misc.
    NotMounted,
    /// Every file of the instance but `register` (write-only), by name, with its contents.
    Mounted(BTreeMap<String, String>),
}

pub fn snapshot() -> Snapshot {
    let root = Path::new(HOST_BINFMT);
    if !is_binfmt_misc(root) {
        return Snapshot::NotMounted;
    }
    let mut files = BTreeMap::new();
    let dir = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("cannot list the host's {HOST_BINFMT}: {e}"));
    for ent in dir {
        let name = ent
            .expect("read a host binfmt_misc directory entry")
            .file_name();
        let name = name.to_string_lossy().into_owned();
        if name == "register" {
            continue;
        }
        // An entry removed between listing and reading is a change too: record it as such.
        let text = std::fs::read_to_string(root.join(&name))
            .unwrap_or_else(|e| format!("<unreadable: {e}>"));
        files.insert(name, text);
    }
    Snapshot::Mounted(files)
}

/// Is binfmt_misc mounted at `path`? (binfmtd's own check: statfs says binfmt_misc.)
pub fn is_binfmt_misc(path: &Path) -> bool {
    binfmtd::kernel::BinfmtFs::open(path).is_ok()
}
