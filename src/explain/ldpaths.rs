//! The loaders' search-path rules, as pure functions: which loader a program has (glibc
//! or musl, from PT_INTERP), `$ORIGIN` expansion, glibc's default directories per ABI
//! (Debian multiarch, lib64 layouts, /lib, /usr/lib) and the names musl answers itself.

use std::path::Path;

use super::ElfInfo;
use crate::arch::ElfClass;

pub const MUSL_DEFAULT_PATH: &str = "/lib:/usr/local/lib:/usr/lib";
/// Names musl's loader answers itself: they are all the one libc.so.
const MUSL_BUILTIN: [&str; 7] = ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."];

/// Which dynamic loader a program has, and what its search depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    Glibc {
        triplet: Option<&'static str>,
    },
    /// `path_file`: the /etc/ld-musl-ARCH.path this loader reads.
    Musl {
        path_file: String,
    },
}

pub fn flavor(interp: &str, elf: &ElfInfo) -> Flavor {
    let base = interp.rsplit('/').next().unwrap_or(interp);
    match base
        .strip_prefix("ld-musl-")
        .and_then(|r| r.split_once(".so"))
    {
        Some((arch, _)) => {
            // musl reads PREFIX/etc/ld-musl-ARCH.path, PREFIX being the loader's path
            // without its last two components (/lib/ld-musl-x86_64.so.1 -> "").
            let parent = Path::new(interp).parent().and_then(Path::parent);
            let prefix = parent.map_or(String::new(), |p| p.display().to_string());
            Flavor::Musl {
                path_file: format!("{}/etc/ld-musl-{arch}.path", prefix.trim_end_matches('/')),
            }
        }
        None => Flavor::Glibc {
            triplet: triplet(elf),
        },
    }
}

pub fn musl_builtin(flavor: &Flavor, name: &str) -> bool {
    matches!(flavor, Flavor::Musl { .. })
        && name
            .strip_prefix("lib")
            .is_some_and(|r| MUSL_BUILTIN.iter().any(|b| r.starts_with(b)))
}

/// Expand `$ORIGIN`/`${ORIGIN}` to the directory of `obj_path`.
pub fn expand(dirs: &[String], obj_path: &str) -> Vec<String> {
    let origin = obj_path
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    dirs.iter()
        .map(|d| d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
        .collect()
}

/// glibc's built-in search path: Debian's multiarch directories, the lib64 layout of
/// other distributions for 64-bit files, then /lib and /usr/lib.
pub fn default_dirs(triplet: Option<&str>, class: ElfClass) -> Vec<String> {
    let mut dirs = vec![];
    if let Some(t) = triplet {
        dirs.extend([format!("/lib/{t}"), format!("/usr/lib/{t}")]);
    }
    if class == ElfClass::Elf64 {
        dirs.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
    }
    dirs.extend(["/lib".to_string(), "/usr/lib".to_string()]);
    dirs
}

/// The Debian multiarch triplet of a file's ABI.
fn triplet(elf: &ElfInfo) -> Option<&'static str> {
    Some(match elf.arch?.qemu {
        "x86_64" => "x86_64-linux-gnu",
        "i386" | "i486" => "i386-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" if elf.abi.contains("hard-float") => "arm-linux-gnueabihf",
        "arm" => "arm-linux-gnueabi",
        "ppc64le" => "powerpc64le-linux-gnu",
        "ppc64" => "powerpc64-linux-gnu",
        "ppc" => "powerpc-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "mips64el" => "mips64el-linux-gnuabi64",
        "mips64" => "mips64-linux-gnuabi64",
        "mipsel" => "mipsel-linux-gnu",
        "mips" => "mips-linux-gnu",
        "sparc64" => "sparc64-linux-gnu",
        "m68k" => "m68k-linux-gnu",
        "sh4" => "sh4-linux-gnu",
        "alpha" => "alpha-linux-gnu",
        "hppa" => "hppa-linux-gnu",
        "loongarch64" => "loongarch64-linux-gnu",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_expands_to_the_directory_of_the_object() {
        let dirs = vec![
            "$ORIGIN/../lib".to_string(),
            "${ORIGIN}".into(),
            "/abs".into(),
        ];
        assert_eq!(
            expand(&dirs, "/opt/app/bin/app"),
            ["/opt/app/bin/../lib", "/opt/app/bin", "/abs"]
        );
        assert_eq!(expand(&dirs[1..2], "/app"), ["/"]);
    }

    #[test]
    fn musl_reads_the_path_file_next_to_its_prefix_and_answers_libc_itself() {
        let elf = |interp: &str| {
            let a = crate::arch::lookup("x86_64").unwrap();
            ElfInfo {
                arch: Some(a),
                machine: a.elf_machine(),
                class: a.elf_class(),
                endian: a.endian(),
                abi: "SYSV".into(),
                kind: crate::explain::ElfKind::PieExecutable,
                linkage: crate::explain::Linkage::Dynamic,
                interpreter: Some(interp.into()),
                glibc_needed: None,
                glibc_defined: None,
                dynamic: Default::default(),
            }
        };
        let f = flavor("/lib/ld-musl-x86_64.so.1", &elf("/lib/ld-musl-x86_64.so.1"));
        assert_eq!(
            f,
            Flavor::Musl {
                path_file: "/etc/ld-musl-x86_64.path".into()
            }
        );
        let f = flavor("/opt/m/lib/ld-musl-aarch64.so.1", &elf("x"));
        assert_eq!(
            f,
            Flavor::Musl {
                path_file: "/opt/m/etc/ld-musl-aarch64.path".into()
            }
        );
        assert!(musl_builtin(&f, "libc.so") && musl_builtin(&f, "libpthread.so.0"));
        assert!(!musl_builtin(&f, "libcurl.so.4") && !musl_builtin(&f, "libz.so.1"));
        let g = flavor("/lib64/ld-linux-x86-64.so.2", &elf("x"));
        assert_eq!(
            g,
            Flavor::Glibc {
                triplet: Some("x86_64-linux-gnu")
            }
        );
        assert!(!musl_builtin(&g, "libc.so"));
        assert_eq!(
            default_dirs(Some("x86_64-linux-gnu"), ElfClass::Elf64),
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
        assert_eq!(default_dirs(None, ElfClass::Elf32), ["/lib", "/usr/lib"]);
    }
}
