//! ld.so.cache in both formats (built byte by byte here; the machine's own cache is checked
//! against `ldconfig -p` in tests/explain_libraries.rs) and ld.so.conf lines.

use super::*;

/// Strings table for entries (name, path): returns the table and each pair's offsets.
fn strings(entries: &[(&str, &str)], base: u32) -> (Vec<u8>, Vec<(u32, u32)>) {
    let mut table = vec![];
    let mut offs = vec![];
    for (name, path) in entries {
        let k = base + table.len() as u32;
        table.extend_from_slice(name.as_bytes());
        table.push(0);
        let v = base + table.len() as u32;
        table.extend_from_slice(path.as_bytes());
        table.push(0);
        offs.push((k, v));
    }
    (table, offs)
}

fn new_format(entries: &[(&str, &str)], big: bool) -> Vec<u8> {
    let put = |out: &mut Vec<u8>, v: u32| {
        out.extend(if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let base = (NEW_HEADER + NEW_ENTRY * entries.len()) as u32;
    let (table, offs) = strings(entries, base);
    let mut out = NEW_MAGIC.to_vec();
    put(&mut out, entries.len() as u32);
    put(&mut out, table.len() as u32);
    out.extend([if big { ENDIAN_BIG } else { ENDIAN_LITTLE }, 0, 0, 0]);
    out.extend([0u8; 16]);
    for (k, v) in offs {
        put(&mut out, 0x0303);
        put(&mut out, k);
        put(&mut out, v);
        out.extend([0u8; 12]);
    }
    out.extend(table);
    out
}

fn old_format(entries: &[(&str, &str)]) -> Vec<u8> {
    let (table, offs) = strings(entries, 0);
    let mut out = OLD_MAGIC.to_vec();
    out.push(0);
    out.extend((entries.len() as u32).to_le_bytes());
    for (k, v) in offs {
        out.extend(3i32.to_le_bytes());
        out.extend(k.to_le_bytes());
        out.extend(v.to_le_bytes());
    }
    out.extend(table);
    out
}

const LIBS: &[(&str, &str)] = &[
    ("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
    ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
    ("libc.so.6", "/lib/i386-linux-gnu/libc.so.6"),
];

#[test]
fn new_format_in_either_byte_order() {
    for big in [false, true] {
        let c = parse_cache(&new_format(LIBS, big)).unwrap();
        assert_eq!(c.entries.len(), 3);
        assert_eq!(
            c.lookup("libc.so.6").collect::<Vec<_>>(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/i386-linux-gnu/libc.so.6"
            ]
        );
        assert_eq!(c.entries[0].flags, 0x0303);
        assert_eq!(c.lookup("libm.so.6").count(), 0);
        assert!(c.dirs().contains("/lib/i386-linux-gnu"));
    }
}

#[test]
fn old_format_alone_and_followed_by_the_new_one() {
    let old = parse_cache(&old_format(LIBS)).unwrap();
    assert_eq!(old.lookup("libz.so.1").collect::<Vec<_>>(), [LIBS[0].1]);
    // Combined (what glibc < 2.32 wrote by default): one old entry, the new header at the
    // next 8-byte boundary; the loader reads the new table (other paths here, to tell).
    let mut both = OLD_MAGIC.to_vec();
    both.push(0);
    both.extend(1u32.to_le_bytes());
    both.extend([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(both.len(), OLD_HEADER + OLD_ENTRY);
    both.resize(both.len().div_ceil(8) * 8, 0);
    let newer = [("libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")];
    both.extend(new_format(&newer, false));
    let c = parse_cache(&both).unwrap();
    assert_eq!(c.lookup("libz.so.1").collect::<Vec<_>>(), [newer[0].1]);
}

#[test]
fn bad_and_truncated_caches_are_errors_not_panics() {
    assert_eq!(parse_cache(b"hello"), Err(CacheError::BadMagic));
    let full = new_format(LIBS, false);
    for cut in [10, 30, NEW_HEADER, NEW_HEADER + 5] {
        assert!(parse_cache(&full[..cut]).is_err(), "cut at {cut}");
    }
    // Strings cut off: the entries whose strings are gone are dropped, not invented.
    let c = parse_cache(&full[..full.len() - 5]).unwrap();
    assert_eq!(c.entries.len(), 2);
}

#[test]
fn conf_lines_parse_as_ldconfig_reads_them() {
    let text = "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/usr/local/lib\n\
                hwcap 1 foo\n/opt/a/lib, /opt/b/lib:/opt/c=libc6 # trailing\n/opt/d/\n";
    assert_eq!(
        parse_conf(text),
        [
            ConfLine::Include("/etc/ld.so.conf.d/*.conf".into()),
            ConfLine::Dir("/usr/local/lib".into()),
            ConfLine::Dir("/opt/a/lib".into()),
            ConfLine::Dir("/opt/b/lib".into()),
            ConfLine::Dir("/opt/c".into()),
            ConfLine::Dir("/opt/d".into()),
        ]
    );
    // A directory named like a keyword is still a directory.
    assert_eq!(parse_conf("includes"), [ConfLine::Dir("includes".into())]);
}

#[test]
fn globs_match_conf_file_names() {
    assert!(glob_match("*.conf", "x86_64-linux-gnu.conf"));
    assert!(glob_match("lib?.conf", "libc.conf"));
    assert!(!glob_match("*.conf", "README"));
    assert!(!glob_match("*.conf", "a.conf.dpkg-old"));
    assert!(glob_match("*", ""));
}
