//! The verdict as a table: file facts x node facts -> outcome and problems. Entries are
//! parsed from entry text exactly as the kernel prints it.

use super::*;
use crate::arch::{self, ElfClass, Endian};
use crate::entry::parse_entry;
use crate::explain::elf::{ElfKind, Linkage};

/// What the kernel prints for Debian's qemu-user-static aarch64 registration.
const AARCH64_ENTRY: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
/// qemu's i386 registration without F (a format x86_64 runs natively).
const I386_ENTRY: &str = "enabled\ninterpreter /usr/bin/qemu-i386-static\nflags: \noffset 0\nmagic 7f454c4601010100000000000000000002000300\nmask fffffffffffefe00fffffffffffffffffeffffff\n";

fn entry(name: &str, text: &str, enabled: bool, in_root: bool) -> NodeEntry {
    let mut entry = parse_entry(name, text).unwrap();
    entry.enabled = enabled;
    NodeEntry {
        entry,
        interpreter_in_root: in_root,
    }
}

fn node(binfmt: Binfmt) -> Node {
    Node {
        native: Node::default_native(arch::lookup("x86_64").unwrap()),
        binfmt,
        root: PathBuf::from("/"),
        libcs: vec![Libc {
            path: "/lib/x86_64-linux-gnu/libc.so.6".into(),
            machine: 62,
            class: ElfClass::Elf64,
            endian: Endian::Little,
            version: GlibcVersion::parse("2.36").unwrap(),
        }],
    }
}

fn with_entries(entries: Vec<NodeEntry>) -> Node {
    node(Binfmt::Entries {
        path: "/proc/sys/fs/binfmt_misc".into(),
        entries,
    })
}

fn elf(arch: &str, interp: Option<&str>, glibc: Option<&str>) -> (FileInfo, Facts) {
    let a = arch::lookup(arch).unwrap();
    let info = ElfInfo {
        arch: Some(a),
        machine: a.elf_machine(),
        class: a.elf_class(),
        endian: a.endian(),
        abi: "SYSV".into(),
        kind: ElfKind::Executable,
        linkage: if interp.is_some() {
            Linkage::Dynamic
        } else {
            Linkage::Static
        },
        interpreter: interp.map(str::to_string),
        glibc_needed: glibc.and_then(GlibcVersion::parse),
        glibc_defined: None,
        dynamic: Default::default(),
    };
    let facts = Facts {
        file_name: "prog".into(),
        header: a.magic.to_vec(),
        executable: true,
        loader_present: interp.map(|_| true),
        script: None,
        libraries: vec![],
    };
    (FileInfo::Elf(info), facts)
}

fn codes(v: &Verdict) -> Vec<String> {
    v.problems
        .iter()
        .map(|p| {
            serde_json::to_value(p).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn foreign_static_binary_needs_an_emulator_and_names_the_install_command() {
    let (info, facts) = elf("aarch64", None, None);
    let v = verdict(&info, &with_entries(vec![]), &facts);
    assert_eq!(v.outcome, Outcome::CannotRun);
    assert_eq!(codes(&v), ["no-emulator"]);
    assert!(v.problems[0]
        .to_string()
        .contains("binfmtd install --arch aarch64"));
}

#[test]
fn matching_enabled_entry_emulates_and_reports_flags_and_interpreter() {
    let (info, facts) = elf("aarch64", None, None);
    let n = with_entries(vec![
        entry("qemu-i386", I386_ENTRY, true, true),
        entry("qemu-aarch64", AARCH64_ENTRY, true, true),
    ]);
    let v = verdict(&info, &n, &facts);
    assert_eq!(v.outcome, Outcome::Emulated);
    let e = v.entry.unwrap();
    assert_eq!((e.name.as_str(), e.flags.as_str()), ("qemu-aarch64", "POF"));
    assert_eq!(
        e.interpreter,
        PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    );
    assert!(!e.hijacks_native && e.also_matching.is_empty());
}

#[test]
fn disabled_matching_entry_is_named_but_does_not_run_the_file() {
    let (info, facts) = elf("aarch64", None, None);
    let v = verdict(
        &info,
        &with_entries(vec![entry("qemu-aarch64", AARCH64_ENTRY, false, true)]),
        &facts,
    );
    assert_eq!(codes(&v), ["no-emulator"]);
    assert!(v.problems[0]
        .to_string()
        .contains("matching but disabled: qemu-aarch64"));
}

#[test]
fn entry_for_a_native_format_hijacks_it() {
    let (info, facts) = elf("i386", None, None);
    let v = verdict(
        &info,
        &with_entries(vec![entry("qemu-i386", I386_ENTRY, true, true)]),
        &facts,
    );
    assert_eq!(v.outcome, Outcome::Emulated);
    assert!(v.entry.unwrap().hijacks_native);
    let v = verdict(&info, &with_entries(vec![]), &facts);
    assert_eq!(v.outcome, Outcome::Native);
}

#[test]
fn without_binfmt_misc_native_runs_and_foreign_says_why() {
    let unavailable = node(Binfmt::Unavailable {
        reason: "binfmt_misc is not available at /x: it is not mounted there".into(),
    });
    let (info, facts) = elf("x86_64", None, None);
    assert_eq!(
        verdict(&info, &unavailable, &facts).outcome,
        Outcome::Native
    );
    let (info, facts) = elf("s390x", None, None);
    let v = verdict(&info, &unavailable, &facts);
    assert_eq!(codes(&v), ["binfmt-unavailable"]);
    assert!(v.problems[0].to_string().contains("not mounted"));
    let disabled = node(Binfmt::Disabled { path: "/b".into() });
    assert_eq!(
        codes(&verdict(&info, &disabled, &facts)),
        ["binfmt-disabled"]
    );
}

#[test]
fn emulated_dynamic_binary_still_needs_its_loader_in_the_root() {
    let (info, mut facts) = elf("aarch64", Some("/lib/ld-linux-aarch64.so.1"), None);
    facts.loader_present = Some(false);
    let v = verdict(
        &info,
        &with_entries(vec![entry("qemu-aarch64", AARCH64_ENTRY, true, true)]),
        &facts,
    );
    assert_eq!(v.outcome, Outcome::CannotRun);
    assert_eq!(
        v.entry.as_ref().unwrap().name,
        "qemu-aarch64",
        "the entry is still reported"
    );
    assert_eq!(codes(&v), ["loader-missing"]);
    assert!(v.problems[0]
        .to_string()
        .contains("/lib/ld-linux-aarch64.so.1"));
}

#[test]
fn glibc_requirement_is_compared_with_the_libc_of_the_same_cpu() {
    let (info, facts) = elf("x86_64", Some("/lib64/ld-linux-x86-64.so.2"), Some("2.38"));
    let v = verdict(&info, &with_entries(vec![]), &facts);
    assert_eq!(codes(&v), ["glibc-too-old"]);
    let msg = v.problems[0].to_string();
    assert!(msg.contains("2.38") && msg.contains("2.36"), "{msg}");
    let (info, facts) = elf("x86_64", Some("/lib64/ld-linux-x86-64.so.2"), Some("2.36"));
    assert_eq!(
        verdict(&info, &with_entries(vec![]), &facts).outcome,
        Outcome::Native
    );
    // An i386 program is not satisfied by the x86_64 libc.
    let (info, facts) = elf("i386", Some("/lib/ld-linux.so.2"), Some("2.0"));
    assert_eq!(
        codes(&verdict(&info, &with_entries(vec![]), &facts)),
        ["libc-missing"]
    );
}

#[test]
fn entry_without_f_needs_its_interpreter_inside_the_root() {
    let (info, facts) = elf("i386", None, None);
    let v = verdict(
        &info,
        &with_entries(vec![entry("qemu-i386", I386_ENTRY, true, false)]),
        &facts,
    );
    assert_eq!(codes(&v), ["entry-interpreter-missing"]);
    // With F the kernel pinned the interpreter: its absence from the root does not matter.
    let (info, facts) = elf("aarch64", None, None);
    let v = verdict(
        &info,
        &with_entries(vec![entry("qemu-aarch64", AARCH64_ENTRY, true, false)]),
        &facts,
    );
    assert_eq!(v.outcome, Outcome::Emulated);
}

#[test]
fn scripts_follow_their_interpreter() {
    let info = FileInfo::Script(Shebang {
        interpreter: "/usr/bin/python3".into(),
        argument: None,
    });
    let mut facts = elf("x86_64", None, None).1;
    facts.header = b"#!/usr/bin/python3\n".to_vec();
    facts.script = Some(ScriptTarget::Missing);
    let n = with_entries(vec![]);
    assert_eq!(codes(&verdict(&info, &n, &facts)), ["interpreter-missing"]);
    let (arm, arm_facts) = elf("aarch64", None, None);
    facts.script = Some(ScriptTarget::Found(Box::new(verdict(&arm, &n, &arm_facts))));
    let v = verdict(&info, &n, &facts);
    assert_eq!(codes(&v), ["interpreter-cannot-run"]);
    assert!(v.problems[0]
        .to_string()
        .contains("no emulator for arch aarch64"));
    let (x86, x86_facts) = elf("x86_64", None, None);
    facts.script = Some(ScriptTarget::Found(Box::new(verdict(&x86, &n, &x86_facts))));
    assert_eq!(verdict(&info, &n, &facts).outcome, Outcome::Native);
}

#[test]
fn libraries_and_data_are_not_executables_unless_an_entry_takes_them() {
    let (mut info, facts) = elf("x86_64", None, None);
    if let FileInfo::Elf(e) = &mut info {
        e.kind = ElfKind::SharedLibrary;
    }
    let v = verdict(&info, &with_entries(vec![]), &facts);
    assert_eq!(v.outcome, Outcome::NotExecutable);
    assert_eq!(v.note.as_deref(), Some("ELF shared-library, not a program"));
    let jar = entry(
        "jar",
        "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        true,
        true,
    );
    let other = FileInfo::Other("data".into());
    let facts = Facts {
        file_name: "app.jar".into(),
        header: b"PK\x03\x04".to_vec(),
        executable: false,
        loader_present: None,
        script: None,
        libraries: vec![],
    };
    let v = verdict(&other, &with_entries(vec![jar.clone()]), &facts);
    assert_eq!(v.entry.as_ref().unwrap().name, "jar");
    // Without an x bit it is not an executable, though the entry would take it.
    assert_eq!(v.outcome, Outcome::NotExecutable);
    assert_eq!(v.note.as_deref(), Some(NO_EXEC_BIT));
    let v = verdict(
        &other,
        &with_entries(vec![jar.clone()]),
        &Facts {
            executable: true,
            ..facts.clone()
        },
    );
    assert_eq!(v.outcome, Outcome::Emulated);
    let v = verdict(&other, &with_entries(vec![]), &facts);
    assert_eq!(v.outcome, Outcome::NotExecutable);
}
