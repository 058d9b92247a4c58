//! The argv[0] verdicts against the real kernel: an aarch64 probe run through a
//! binfmt_misc entry in the private sandbox instance (tests/common), once per way of
//! registering. The probe's output is judged by the same code binfmtd uses.

mod common;

use binfmtd::arch::lookup;
use binfmtd::entry::{Flags, Registration};
use binfmtd::probe::{self, parse_output, Argv0Mode, PROBE_ARGS, PROBE_ARGV0};
use common::fixtures::register_raw_cmd;
use common::report::write_file_cmd;
use common::Sandbox;

const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// Register `interpreter` for aarch64 with `flags` (after running `setup`) and run the
/// probe through it; return the verdict its output gives.
fn verdict(setup: &str, interpreter: &str, flags: &str) -> Option<Argv0Mode> {
    let sb = Sandbox::new()?;
    let a = lookup("aarch64").unwrap();
    let reg = Registration {
        name: "probe-test".into(),
        magic: a.magic.to_vec(),
        mask: a.mask.to_vec(),
        interpreter: interpreter.into(),
        flags: Flags::parse(flags).unwrap(),
    };
    let run = sb
        .run_script(&format!(
            "{setup}\n{write}\n{register}\nexec bash -c 'exec -a {PROBE_ARGV0} /tmp/probe {arg}'",
            write = write_file_cmd("/tmp/probe", &probe::program(a).unwrap()),
            register = register_raw_cmd(&reg),
            arg = PROBE_ARGS[0],
        ))
        .success();
    let report = parse_output(run.stdout.as_bytes()).unwrap_or_else(|e| panic!("{e}: {run}"));
    assert_eq!(report.arch, "aarch64");
    Some(report.argv0_mode(PROBE_ARGV0, PROBE_ARGS.len()))
}

#[test]
fn p_flag_understood_preserves_argv0() {
    if let Some(v) = verdict("", QEMU, "PF") {
        assert_eq!(v, Argv0Mode::Preserved);
    }
}

#[test]
fn no_p_flag_replaces_argv0_with_the_path() {
    if let Some(v) = verdict("", QEMU, "F") {
        assert_eq!(v, Argv0Mode::Replaced);
    }
}

/// A wrapper script re-execs qemu, so qemu never sees AT_FLAGS_PRESERVE_ARGV0: exactly an
/// interpreter that does not understand P.
#[test]
fn p_flag_not_understood_shifts_arguments() {
    let wrapper = format!(
        "printf '#!/bin/sh\\nexec {QEMU} \"$@\"\\n' > /tmp/wrapper && chmod 0755 /tmp/wrapper"
    );
    if let Some(v) = verdict(&wrapper, "/tmp/wrapper", "P") {
        assert_eq!(v, Argv0Mode::Shifted);
    }
}
