//! A failed native probe is not proof that a format is foreign. Under a seccomp filter that
//! kills every system call made through a non-x86_64 ABI (what systemd's
//! `SystemCallArchitectures=native` installs), the native i386 probe dies on its first
//! system call. `install --arch all` must then register nothing for i386/i486 and say why;
//! `status` must report them as undecided, not as foreign formats to install.

mod common;

use common::{sections, Sandbox};

/// Installs a filter killing the process on any system call whose `seccomp_data.arch` is
/// not AUDIT_ARCH_X86_64, then execs its arguments (python3 stdlib only).
const SECCOMP_EXEC: &str = r#"
import ctypes, os, struct, sys
# ld [arch]; jeq AUDIT_ARCH_X86_64 ? allow : kill
prog = [(0x20, 0, 0, 4), (0x15, 1, 0, 0xC000003E), (0x06, 0, 0, 0x80000000), (0x06, 0, 0, 0x7FFF0000)]
raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
buf = ctypes.create_string_buffer(raw, len(raw))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    sys.exit("prctl(NO_NEW_PRIVS): " + os.strerror(ctypes.get_errno()))
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit("prctl(SECCOMP): " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn install_all_under_a_native_only_seccomp_filter_registers_no_i386() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: the i386-on-x86_64 compat case needs an x86_64 host");
        return;
    }
    let Some(sb) = Sandbox::new() else { return };
    let script = format!(
        "cat > /tmp/seccomp-exec.py <<'EOF'\n{SECCOMP_EXEC}\nEOF\n\
         filtered() {{ python3 /tmp/seccomp-exec.py \"$@\"; }}\n\
         section control; filtered /bin/true && echo filter-installed\n\
         section install; code filtered \"$BINFMTD\" install --arch all --interpreter-dir \"$QEMU_DIR\"\n\
         section entries; entries\n\
         section named; code filtered \"$BINFMTD\" install --arch i386 --interpreter-dir \"$QEMU_DIR\"\n\
         section after-named; entries\n\
         section status; filtered \"$BINFMTD\" status --json || true\n\
         section unfiltered; \"$BINFMTD\" status --json || true\n"
    );
    let run = sb
        .with_qemu(&["i386", "aarch64"])
        .run_script(&script)
        .success();
    let s = sections(&run.stdout);
    assert!(s["control"].contains("filter-installed"), "{run}");
    let install = &s["install"];
    assert!(
        install.contains("exit=0"),
        "with `all`, undecided is skipped: {run}"
    );
    let entries = &s["entries"];
    assert!(
        entries.lines().any(|l| l == "binfmtd-aarch64"),
        "the foreign arch was still installed: {run}"
    );
    for compat in ["i386", "i486"] {
        assert!(
            !entries.lines().any(|l| l.contains(compat)),
            "{compat} was registered on an x86_64 host: {run}"
        );
        assert!(
            install.contains(&format!(
                "cannot tell whether this host runs {compat} natively"
            )),
            "install does not say why {compat} was left alone: {run}"
        );
    }
    assert!(install.contains("SIGSYS"), "the cause is not named: {run}");
    // Named explicitly, it cannot be done safely: a failure (exit 1), still nothing registered.
    assert!(s["named"].contains("exit=1"), "{run}");
    assert!(
        s["named"].contains("cannot tell whether this host runs i386 natively"),
        "{run}"
    );
    assert_eq!(s["after-named"], s["entries"], "{run}");
    let status: serde_json::Value = serde_json::from_str(&s["status"]).expect("status JSON");
    for compat in ["i386", "i486"] {
        let why = status["host"]["native_unknown"][compat].as_str();
        assert!(why.is_some_and(|w| w.contains("SIGSYS")), "{status:#}");
        let row = status["formats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["arch"] == compat)
            .unwrap();
        assert_eq!(row["state"], "absent", "{row:#}");
        assert_eq!(row["hint"], serde_json::Value::Null, "{row:#}");
    }
    // Outside the filter the same sandbox runs i386 natively: the probe itself is sound.
    let plain: serde_json::Value = serde_json::from_str(&s["unfiltered"]).expect("status JSON");
    let native = plain["host"]["native"].as_array().unwrap();
    assert!(native.iter().any(|a| a == "i386"), "{plain:#}");
}
