//! The arch table's magic and mask, cross-checked against Debian's binfmt.d files
//! (installed by qemu-user-static / qemu-user-binfmt), which carry qemu's own values.

use std::fs;

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn magic_and_mask_match_debian_binfmt_d() {
    let dir = "/usr/lib/binfmt.d";
    let files: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!("{dir}: {e}; tests/run.sh installs qemu-user-static, which ships these files")
        })
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().starts_with("qemu-"))
        .collect();
    assert!(
        files.len() >= 20,
        "expected Debian's qemu binfmt.d files in {dir}, found {}",
        files.len()
    );
    let mut checked = 0;
    for f in files {
        let text = fs::read_to_string(f.path()).unwrap();
        for line in text.lines().filter(|l| l.starts_with(':')) {
            let parts: Vec<&str> = line.split(':').collect();
            let cpu = parts[1].trim_start_matches("qemu-");
            let Some(arch) = binfmtd::arch::ARCHES.iter().find(|a| a.qemu == cpu) else {
                // Debian also ships targets qemu dropped from its binfmt table (cris).
                assert!(
                    ["cris"].contains(&cpu),
                    "Debian has qemu-{cpu}, the table does not"
                );
                continue;
            };
            assert_eq!(arch.magic, unescape(parts[4]).as_slice(), "magic of {cpu}");
            assert_eq!(arch.mask, unescape(parts[5]).as_slice(), "mask of {cpu}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} entries cross-checked");
}

#[test]
fn every_row_has_an_interpreter_in_debian_qemu_user_static() {
    for a in binfmtd::arch::ARCHES {
        let p = format!("/usr/bin/qemu-{}-static", a.interpreter);
        assert!(std::path::Path::new(&p).exists(), "{} needs {p}", a.qemu);
    }
}
