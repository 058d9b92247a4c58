use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use object::{Object, ObjectSegment};

use super::*;
use crate::arch::{self, lookup, ElfClass, Endian};

#[test]
fn the_required_arches_have_probes() {
    let have: Vec<&str> = supported().map(|a| a.qemu).collect();
    for name in GUARANTEED {
        assert!(have.contains(name), "no probe for {name}; have {have:?}");
    }
}

#[test]
fn every_probe_matches_its_rows_magic_and_no_earlier_row() {
    for a in supported() {
        let p = program(a).unwrap();
        assert!(a.matches(&p), "{}: probe does not match its magic", a.qemu);
        assert_eq!(arch::from_header(&p).map(|r| r.qemu), Some(a.qemu));
    }
}

#[test]
fn native_variant_matches_no_row_at_all() {
    for a in supported() {
        let n = native_program(a).unwrap();
        assert!(!a.matches(&n), "{}: native variant matches", a.qemu);
        assert_eq!(arch::from_header(&n).map(|r| r.qemu), None, "{}", a.qemu);
        // Only the EI_PAD byte differs.
        let p = program(a).unwrap();
        let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != n[i]).collect();
        assert_eq!(diff, vec![EI_PAD], "{}", a.qemu);
    }
}

#[test]
fn rows_without_code_have_no_probe() {
    for a in ARCHES {
        let has = supported().any(|s| s == a);
        assert_eq!(program(a).is_some(), has, "{}", a.qemu);
        assert_eq!(native_program(a).is_some(), has, "{}", a.qemu);
    }
}

/// Read each probe back with the `object` crate: an independent ELF parser.
#[test]
fn probes_are_well_formed_elf_executables() {
    for a in supported() {
        let p = program(a).unwrap();
        let f = object::File::parse(&*p).unwrap_or_else(|e| panic!("{}: {e}", a.qemu));
        assert_eq!(f.is_64(), a.elf_class() == ElfClass::Elf64, "{}", a.qemu);
        assert_eq!(f.is_little_endian(), a.endian() == Endian::Little);
        assert_eq!(f.entry(), elf::BASE + elf::CODE as u64, "{}", a.qemu);
        let segs: Vec<_> = f.segments().collect();
        assert_eq!(segs.len(), 1, "{}: one PT_LOAD", a.qemu);
        assert_eq!(segs[0].address(), elf::BASE);
        assert_eq!(segs[0].file_range(), (0, p.len() as u64));
        assert!(p.len() < 512, "{}: {} bytes", a.qemu, p.len());
    }
}

#[test]
fn header_fields_come_from_the_row() {
    let a = lookup("mips64el").unwrap();
    let p = program(a).unwrap();
    // ELF64 little-endian: e_machine at 18, e_flags at 48.
    assert_eq!(u16::from_le_bytes([p[18], p[19]]), 8);
    assert_eq!(
        u32::from_le_bytes(p[48..52].try_into().unwrap()),
        0x8000_0001
    );
    let s = lookup("s390x").unwrap();
    let p = program(s).unwrap();
    assert_eq!(u16::from_be_bytes([p[18], p[19]]), 22);
    let arm = lookup("arm").unwrap();
    let p = program(arm).unwrap();
    // ELF32: e_flags at 36; EABI version 5.
    assert_eq!(
        u32::from_le_bytes(p[36..40].try_into().unwrap()),
        0x0500_0000
    );
}

/// The template the code patches must be exactly what the parser accepts once patched.
#[test]
fn patched_template_parses_back() {
    for a in supported() {
        let mut p = program(a).unwrap();
        let d = elf::DATA;
        let len_bytes: [u8; 4] = p[d + elf::MSG_LEN_AT..][..4].try_into().unwrap();
        let len = match a.endian() {
            Endian::Little => u32::from_le_bytes(len_bytes),
            Endian::Big => u32::from_be_bytes(len_bytes),
        } as usize;
        p[d + elf::ARGC_DIGITS_AT..][..2].copy_from_slice(b"02");
        p[d + elf::ARGV0_DIGITS_AT..][..2].copy_from_slice(b"40");
        let msg = &p[d + elf::MSG_AT..][..len];
        let r = parse_output(msg).unwrap();
        assert_eq!(
            r,
            Report {
                arch: a.qemu.to_string(),
                argc: 2,
                argv0_byte: b'@'
            }
        );
        assert_eq!(&elf::message(a.qemu).as_bytes()[19..21], b"??");
    }
}

#[test]
fn parse_rejects_everything_but_one_exact_line() {
    let bad: &[(&[u8], &str)] = &[
        (b"", "no complete line"),
        (
            b"BINFMTD-PROBE argc=02 argv0=40 arch=arm",
            "no complete line",
        ),
        (
            b"BINFMTD-PROBE argc=?? argv0=40 arch=arm\n",
            "bad argc field",
        ),
        (
            b"BINFMTD-PROBE argc=2 argv0=40 arch=arm\n",
            "bad argc field",
        ),
        (
            b"BINFMTD-PROBE argc=02 argv0=4G arch=arm\n",
            "bad argv0 field",
        ),
        (
            b"BINFMTD-PROBE argc=02 argv0=4A arch=arm\n",
            "bad argv0 field",
        ),
        (b"BINFMTD-PROBE argc=02 argv0=40 arch=\n", "bad arch field"),
        (
            b"BINFMTD-PROBE argc=02 argv0=40 arch=arm x\n",
            "trailing fields",
        ),
        (b"HELLO argc=02 argv0=40 arch=arm\n", "marker missing"),
        (
            b"BINFMTD-PROBE argc=02 argv0=40 arch=arm\nagain\n",
            "more than one line",
        ),
        (b"\xff\xfe\n", "not UTF-8"),
    ];
    for (input, reason) in bad {
        match parse_output(input) {
            Err(ProbeError::WrongOutput { reason: r, output }) => {
                assert_eq!(&r, reason, "{input:?}");
                assert!(output.starts_with('"'), "{output}");
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

#[test]
fn parse_reads_hex_fields() {
    let r = parse_output(b"BINFMTD-PROBE argc=1f argv0=2f arch=s390x\n").unwrap();
    assert_eq!((r.argc, r.argv0_byte, r.arch.as_str()), (31, b'/', "s390x"));
}

#[test]
fn argv0_mode_table() {
    let rep = |argc, b| Report {
        arch: "arm".into(),
        argc,
        argv0_byte: b,
    };
    let cases = [
        // (argc seen, argv0 byte seen, argv0 given, args given, verdict)
        (2, b'@', "@probe", 1, Argv0Mode::Preserved),
        (2, b'/', "@probe", 1, Argv0Mode::Replaced),
        (3, b'/', "@probe", 1, Argv0Mode::Shifted),
        (1, b'@', "@probe", 0, Argv0Mode::Preserved),
        (2, b'/', "@probe", 0, Argv0Mode::Shifted),
        (1, b'@', "@probe", 1, Argv0Mode::Unexpected),
        (5, b'@', "@probe", 1, Argv0Mode::Unexpected),
        (1, 0, "", 0, Argv0Mode::Preserved),
        (1, b'/', "", 0, Argv0Mode::Replaced),
    ];
    for (argc, b, given, n, want) in cases {
        assert_eq!(
            rep(argc, b).argv0_mode(given, n),
            want,
            "{argc} {b} {given} {n}"
        );
    }
}

fn finished(code: i32, stdout: &[u8], stderr: &[u8]) -> RunOutput {
    RunOutput {
        status: ExitStatus::from_raw(code << 8),
        stdout: stdout.to_vec(),
        stderr: stderr.to_vec(),
    }
}

#[test]
fn judge_table() {
    let arm = lookup("arm").unwrap();
    let line = |argc: &str, b: &str, arch: &str| {
        format!("BINFMTD-PROBE argc={argc} argv0={b} arch={arch}\n").into_bytes()
    };
    let cases: Vec<(RunOutput, bool, Option<Argv0Mode>, &str)> = vec![
        (
            finished(0, &line("02", "40", "arm"), b""),
            true,
            Some(Argv0Mode::Preserved),
            "preserved",
        ),
        (
            finished(0, &line("02", "2f", "arm"), b""),
            true,
            Some(Argv0Mode::Replaced),
            "without the P flag",
        ),
        (
            finished(0, &line("03", "2f", "arm"), b""),
            false,
            Some(Argv0Mode::Shifted),
            "does not understand it",
        ),
        (
            finished(0, &line("07", "40", "arm"), b""),
            false,
            Some(Argv0Mode::Unexpected),
            "argc arrived as 7",
        ),
        (
            finished(0, &line("02", "40", "aarch64"), b""),
            false,
            None,
            "answered as aarch64",
        ),
        (finished(0, b"garbage", b""), false, None, "wrong output"),
        (
            finished(1, b"", b"qemu: uncaught target signal 11\n"),
            false,
            None,
            "uncaught target signal 11",
        ),
    ];
    for (out, ok, mode, needle) in cases {
        let (got_ok, got_mode, detail) = judge(arm, &out);
        assert_eq!((got_ok, got_mode), (ok, mode), "{detail}");
        assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
    }
}

/// A runner that returns a canned answer, for the plumbing of `run` (the real runner is
/// exercised in tests/probe_qemu.rs).
struct Canned(fn() -> Result<RunOutput, ProbeError>);

impl Runner for Canned {
    fn run(
        &self,
        program: &[u8],
        argv0: &str,
        args: &[&str],
        _: Duration,
    ) -> Result<RunOutput, ProbeError> {
        assert!(program.starts_with(b"\x7fELF"));
        assert_eq!((argv0, args), (PROBE_ARGV0, PROBE_ARGS));
        (self.0)()
    }
}

#[test]
fn run_reports_enoexec_and_timeouts_by_name() {
    let a = lookup("aarch64").unwrap();
    let enoexec = Canned(|| {
        Err(ProbeError::exec(
            Path::new("/scratch/probe"),
            io::Error::from_raw_os_error(libc::ENOEXEC),
        ))
    });
    let r = run(&enoexec, a, false, Duration::from_secs(2));
    assert!(!r.ok);
    assert!(
        r.detail
            .starts_with("exec format error (ENOEXEC): no binfmt_misc entry matches aarch64"),
        "{}",
        r.detail
    );
    let slow = Canned(|| {
        Err(ProbeError::TimedOut {
            after: Duration::from_secs(2),
        })
    });
    let r = run(&slow, a, true, Duration::from_secs(2));
    assert!(r.detail.starts_with("timed out after 2s"), "{}", r.detail);
    let good = Canned(|| {
        Ok(finished(
            0,
            b"BINFMTD-PROBE argc=02 argv0=40 arch=aarch64\n",
            b"",
        ))
    });
    let r = run(&good, a, false, Duration::from_secs(2));
    assert_eq!((r.ok, r.argv0), (true, Some(Argv0Mode::Preserved)));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""argv0":"preserved""#), "{json}");
}

#[test]
fn run_without_a_probe_says_so() {
    let a = ARCHES
        .iter()
        .find(|a| program(a).is_none())
        .expect("a row without a probe");
    let never = Canned(|| unreachable!("no program to run"));
    let r = run(&never, a, false, Duration::from_secs(1));
    assert!(
        !r.ok && r.detail.contains("no probe program"),
        "{}",
        r.detail
    );
}

/// Only ENOEXEC says "not native"; a probe killed by a signal (a seccomp filter), timed
/// out, failing with another errno or printing garbage decides nothing.
#[test]
fn native_is_no_only_on_enoexec() {
    let a = lookup("i386").unwrap();
    let t = Duration::from_secs(2);
    assert_eq!(
        native(&Canned(|| errno_run(libc::ENOEXEC)), a, t),
        Native::No
    );
    let good = Canned(|| {
        Ok(finished(
            0,
            b"BINFMTD-PROBE argc=02 argv0=40 arch=i386\n",
            b"",
        ))
    });
    assert_eq!(native(&good, a, t), Native::Yes);
    let cases: [(Canned, &str); 5] = [
        (
            Canned(|| killed_run(libc::SIGSYS)),
            "SystemCallArchitectures",
        ),
        (Canned(|| killed_run(libc::SIGKILL)), "signal: 9"),
        (Canned(|| errno_run(libc::EACCES)), "noexec"),
        (
            Canned(|| {
                Err(ProbeError::TimedOut {
                    after: Duration::from_secs(2),
                })
            }),
            "timed out",
        ),
        (Canned(|| Ok(finished(0, b"garbage", b""))), "wrong output"),
    ];
    for (runner, needle) in cases {
        match native(&runner, a, t) {
            Native::Unknown(why) => assert!(why.contains(needle), "{why:?} lacks {needle:?}"),
            other => panic!("{other:?} where {needle:?} was expected"),
        }
    }
}

fn errno_run(e: i32) -> Result<RunOutput, ProbeError> {
    Err(ProbeError::exec(
        Path::new("/p"),
        io::Error::from_raw_os_error(e),
    ))
}

fn killed_run(sig: i32) -> Result<RunOutput, ProbeError> {
    Ok(RunOutput {
        status: ExitStatus::from_raw(sig),
        stdout: vec![],
        stderr: vec![],
    })
}
