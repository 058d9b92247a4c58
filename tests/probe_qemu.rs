//! The probe programs under the real qemu-user binaries, natively on this host, and under
//! the real `ExecRunner` (timeouts, cleanup, ENOEXEC). Needs qemu-user-static and
//! binutils-multiarch (tests/run.sh installs both).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use binfmtd::arch::{self, lookup, Arch, Endian};
use binfmtd::probe::{
    self, parse_output, Argv0Mode, ExecRunner, ProbeError, Report, Runner, PROBE_ARGS, PROBE_ARGV0,
};

fn qemu_for(a: &Arch) -> PathBuf {
    let p = PathBuf::from(format!("/usr/bin/qemu-{}-static", a.interpreter));
    assert!(
        p.exists(),
        "{} is missing: install qemu-user-static (tests/run.sh does)",
        p.display()
    );
    p
}

fn write_exe(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Run `file` under `qemu` with argv[0] set by `-0`, bounded by coreutils `timeout`.
fn under_qemu(qemu: &Path, file: &Path, argv0: &str, args: &[String]) -> Report {
    let out = Command::new("timeout")
        .arg("20")
        .arg(qemu)
        .args(["-0", argv0])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}: {} stderr {:?}",
        qemu.display(),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_output(&out.stdout)
        .unwrap_or_else(|e| panic!("{} under {}: {e}", file.display(), qemu.display()))
}

/// argc and argv[0] are computed at run time: vary both (argc 0x12 checks both nibbles).
#[test]
fn every_probe_runs_under_its_qemu_and_reports_argc_and_argv0() {
    let dir = tempfile::tempdir().unwrap();
    let runs: &[(&str, usize)] = &[(PROBE_ARGV0, 1), ("Zed", 0), ("~tilde", 17)];
    let mut checked = Vec::new();
    for a in probe::supported() {
        let qemu = qemu_for(a);
        let file = write_exe(dir.path(), a.qemu, &probe::program(a).unwrap());
        for &(argv0, n) in runs {
            let args: Vec<String> = (0..n).map(|i| format!("arg{i}")).collect();
            let r = under_qemu(&qemu, &file, argv0, &args);
            assert_eq!(r.arch, a.qemu);
            assert_eq!(r.argc as usize, n + 1, "{}: argc", a.qemu);
            assert_eq!(r.argv0_byte, argv0.as_bytes()[0], "{}: argv0", a.qemu);
            assert_eq!(r.argv0_mode(argv0, n), Argv0Mode::Preserved);
        }
        checked.push(a.qemu);
    }
    for required in binfmtd::probe::GUARANTEED {
        assert!(
            checked.contains(required),
            "{required} not run: {checked:?}"
        );
    }
}

/// qemu without `-0` passes the path as argv[0]: what a registration without P gives.
#[test]
fn without_argv0_override_the_path_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let a = lookup("aarch64").unwrap();
    let file = write_exe(dir.path(), "p", &probe::program(a).unwrap());
    let out = Command::new(qemu_for(a))
        .arg(&file)
        .arg("x")
        .output()
        .unwrap();
    let r = parse_output(&out.stdout).unwrap();
    assert_eq!(r.argv0_byte, b'/');
    assert_eq!(r.argv0_mode(PROBE_ARGV0, 1), Argv0Mode::Replaced);
}

fn runner(parent: &Path) -> ExecRunner {
    ExecRunner::new(parent.to_path_buf())
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// This host is x86_64, which runs i386 natively too: the native variants (which no
/// binfmt_misc mask matches) run through the kernel's own ELF loader.
#[test]
fn x86_probes_run_natively_on_this_host() {
    assert_eq!(arch::host().qemu, "x86_64", "this test is for x86_64 hosts");
    let scratch = tempfile::tempdir().unwrap();
    let r = runner(scratch.path());
    for name in ["x86_64", "i386"] {
        let a = lookup(name).unwrap();
        let res = probe::run(&r, a, true, Duration::from_secs(10));
        assert!(res.ok, "{name}: {res:?}");
        assert_eq!(res.argv0, Some(Argv0Mode::Preserved), "{name}");
        assert_empty(scratch.path());
    }
    let res = probe::run(
        &r,
        lookup("x86_64").unwrap(),
        false,
        Duration::from_secs(10),
    );
    assert!(res.ok, "{res:?}");
}

/// A foreign format with no matching entry fails with ENOEXEC, reported as such. The
/// native variant can match no standard entry, so this holds whatever the host registered.
#[test]
fn foreign_native_variant_is_enoexec_and_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let host = arch::host();
    let a = probe::supported()
        .find(|a| a.family != host.family)
        .unwrap();
    let image = probe::native_program(a).unwrap();
    let err = runner(scratch.path())
        .run(&image, PROBE_ARGV0, PROBE_ARGS, Duration::from_secs(10))
        .unwrap_err();
    assert!(matches!(err, ProbeError::NoHandler { .. }), "{err}");
    assert_empty(scratch.path());
    let res = probe::run(&runner(scratch.path()), a, true, Duration::from_secs(10));
    assert!(!res.ok);
    assert_eq!(res.argv0, None);
    let want = format!(
        "exec format error (ENOEXEC): this CPU and kernel do not run {} executables natively",
        a.qemu
    );
    assert_eq!(res.detail, want);
    assert_empty(scratch.path());
}

/// Replace the code at e_entry of the host's native probe with `code`.
fn host_program_with_code(code: &[u8]) -> Vec<u8> {
    let host = arch::host();
    let mut p = probe::native_program(host).expect("a probe for the host arch");
    assert_eq!(
        host.endian(),
        Endian::Little,
        "written for little-endian hosts"
    );
    let entry = u64::from_le_bytes(p[24..32].try_into().unwrap());
    let phoff = u64::from_le_bytes(p[32..40].try_into().unwrap()) as usize;
    let vaddr = u64::from_le_bytes(p[phoff + 16..phoff + 24].try_into().unwrap());
    let at = (entry - vaddr) as usize;
    p[at..at + code.len()].copy_from_slice(code);
    p
}

fn spin_code() -> &'static [u8] {
    match arch::host().qemu {
        "x86_64" => &[0xeb, 0xfe],              // jmp .
        "aarch64" => &[0x00, 0x00, 0x00, 0x14], // b .
        other => panic!("no spinning program written for {other}"),
    }
}

fn exit3_code() -> &'static [u8] {
    match arch::host().qemu {
        // mov edi, 3; mov eax, 231 (exit_group); syscall
        "x86_64" => &[0xbf, 3, 0, 0, 0, 0xb8, 0xe7, 0, 0, 0, 0x0f, 0x05],
        // mov x0, #3; mov x8, #94; svc #0
        "aarch64" => &[0x60, 0, 0x80, 0xd2, 0xc8, 0x0b, 0x80, 0xd2, 1, 0, 0, 0xd4],
        other => panic!("no exiting program written for {other}"),
    }
}

fn processes_with_argv0(argv0: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            if cmd.split(|b| *b == 0).next() == Some(argv0.as_bytes()) {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn timeout_kills_and_reaps_a_spinning_program_and_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let argv0 = format!("@spin-{}", std::process::id());
    let start = Instant::now();
    let err = runner(scratch.path())
        .run(
            &host_program_with_code(spin_code()),
            &argv0,
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, ProbeError::TimedOut { .. }), "{err}");
    assert!(
        err.to_string().starts_with("timed out after 300ms"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(processes_with_argv0(&argv0), Vec::<String>::new());
    assert_empty(scratch.path());
}

#[test]
fn failing_program_reports_its_status_and_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let out = runner(scratch.path())
        .run(
            &host_program_with_code(exit3_code()),
            PROBE_ARGV0,
            PROBE_ARGS,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_empty(scratch.path());
    let (ok, mode, detail) = probe::judge(arch::host(), &out);
    assert!(!ok && mode.is_none(), "{detail}");
    assert!(detail.contains("exit status: 3"), "{detail}");
}

#[test]
fn successful_run_returns_output_and_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let host = arch::host();
    let out = runner(scratch.path())
        .run(
            &probe::native_program(host).unwrap(),
            "Q",
            &["a", "b"],
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(out.status.success());
    let r = parse_output(&out.stdout).unwrap();
    assert_eq!((r.argc, r.argv0_byte), (3, b'Q'));
    assert_empty(scratch.path());
}

#[test]
fn unusable_scratch_parent_is_an_error_naming_it() {
    let err = runner(Path::new("/nonexistent/binfmtd-scratch"))
        .run(
            &probe::program(arch::host()).unwrap(),
            PROBE_ARGV0,
            PROBE_ARGS,
            Duration::from_secs(1),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/binfmtd-scratch"), "{msg}");
    assert!(msg.contains("create scratch directory"), "{msg}");
}

/// objdump (binutils-multiarch) decodes every instruction of each probe. LoongArch and
/// OpenRISC are absent from bookworm's binutils-multiarch: the LoongArch words are
/// re-derived field by field in the unit tests, and both are proven by running above.
#[test]
fn objdump_decodes_every_probe_instruction() {
    let dir = tempfile::tempdir().unwrap();
    for a in probe::supported() {
        let Some((machine, endian, last)) = objdump_machine(a.qemu) else {
            let unknown_to_objdump = ["loongarch64", "or1k"];
            assert!(
                unknown_to_objdump.contains(&a.qemu),
                "add an objdump machine for {}",
                a.qemu
            );
            continue;
        };
        let file = write_exe(dir.path(), a.qemu, &probe::program(a).unwrap());
        let out = Command::new("objdump")
            .args(["-D", "-b", "binary", "-m", machine, endian])
            .arg("--start-address=0x100")
            .arg(&file)
            .output()
            .expect("objdump from binutils-multiarch");
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", a.qemu);
        assert!(!text.contains("(bad)"), "{}:\n{text}", a.qemu);
        let insns: Vec<&str> = text.lines().filter(|l| l.contains(":\t")).collect();
        assert!(
            insns.len() >= 20,
            "{}: {} instructions\n{text}",
            a.qemu,
            insns.len()
        );
        let end = insns.last().unwrap();
        assert!(end.contains(last), "{}: ends with {end:?}", a.qemu);
    }
}

/// objdump's machine name, the byte order instructions are fetched in (AArch64 is always
/// little-endian there), and the mnemonic every probe ends with (the exit syscall).
fn objdump_machine(qemu: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match qemu {
        "x86_64" => ("i386:x86-64", "-EL", "syscall"),
        "i386" | "i486" => ("i386", "-EL", "int"),
        "aarch64" | "aarch64_be" => ("aarch64", "-EL", "svc"),
        "arm" => ("arm", "-EL", "svc"),
        "armeb" => ("arm", "-EB", "svc"),
        "riscv64" => ("riscv:rv64", "-EL", "ecall"),
        "riscv32" => ("riscv:rv32", "-EL", "ecall"),
        "ppc64le" => ("powerpc:common64", "-EL", "sc"),
        "ppc64" => ("powerpc:common64", "-EB", "sc"),
        "s390x" => ("s390:64-bit", "-EB", "svc"),
        "mips64el" | "mipsn32el" => ("mips:isa64r2", "-EL", "syscall"),
        "mips64" | "mipsn32" => ("mips:isa64r2", "-EB", "syscall"),
        "mipsel" => ("mips:isa32r2", "-EL", "syscall"),
        "mips" => ("mips:isa32r2", "-EB", "syscall"),
        "ppc" => ("powerpc:common", "-EB", "sc"),
        "sparc64" => ("sparc:v9", "-EB", "ta"),
        "sparc" | "sparc32plus" => ("sparc", "-EB", "ta"),
        "m68k" => ("m68k:68040", "-EB", "trap"),
        "alpha" => ("alpha:ev6", "-EL", "callsys"),
        "sh4" => ("sh4", "-EL", "trapa"),
        "sh4eb" => ("sh4", "-EB", "trapa"),
        "hppa" => ("hppa1.1", "-EB", "ldi"),
        _ => return None,
    })
}
