use super::*;
use crate::arch::lookup;
use crate::entry::{Matcher, OWN_PREFIX};

fn want(arch: &str) -> Desired {
    Desired {
        arch: lookup(arch).unwrap(),
        interpreter: PathBuf::from(format!("/var/lib/binfmtd/qemu-{arch}")),
        flags: Flags::parse("F").unwrap(),
    }
}

fn entry(name: &str, arch: &str, interp: &str, flags: &str, enabled: bool) -> Entry {
    let a = lookup(arch).unwrap();
    Entry {
        name: name.into(),
        enabled,
        interpreter: interp.into(),
        flags: Flags::parse(flags).unwrap(),
        unknown_flags: String::new(),
        matcher: Matcher::Magic {
            offset: 0,
            magic: a.magic.to_vec(),
            mask: a.mask.to_vec(),
        },
    }
}

fn one(d: Desired, observed: &[Entry], working: &[&str], replace: bool) -> ArchPlan {
    let working = working.iter().map(|s| s.to_string()).collect();
    plan(&[d], observed, &working, replace).remove(0)
}

#[test]
fn the_plan_table() {
    let ours = format!("{OWN_PREFIX}aarch64");
    let good = entry(
        &ours,
        "aarch64",
        "/var/lib/binfmtd/qemu-aarch64",
        "PF",
        true,
    );
    let good_nop = entry(&ours, "aarch64", "/var/lib/binfmtd/qemu-aarch64", "F", true);
    let off = entry(
        &ours,
        "aarch64",
        "/var/lib/binfmtd/qemu-aarch64",
        "PF",
        false,
    );
    let moved = entry(&ours, "aarch64", "/usr/bin/qemu-aarch64-static", "PF", true);
    let flags = entry(
        &ours,
        "aarch64",
        "/var/lib/binfmtd/qemu-aarch64",
        "POCF",
        true,
    );
    let deb = entry(
        "qemu-aarch64",
        "aarch64",
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "OPF",
        true,
    );
    let deb_nof = entry(
        "qemu-aarch64",
        "aarch64",
        "/usr/bin/qemu-aarch64",
        "P",
        true,
    );
    let other_arch = entry(
        "qemu-riscv64",
        "riscv64",
        "/usr/bin/qemu-riscv64",
        "F",
        true,
    );

    type Row<'a> = (&'a str, Vec<Entry>, Vec<&'a str>, bool, Action);
    let rows: Vec<Row> = vec![
        ("nothing there", vec![], vec![], false, Action::Register),
        (
            "unrelated foreign",
            vec![other_arch.clone()],
            vec!["qemu-riscv64"],
            false,
            Action::Register,
        ),
        (
            "ours, right",
            vec![good.clone()],
            vec![],
            false,
            Action::Keep {
                entry: ours.clone(),
            },
        ),
        (
            "ours, right, P dropped by probe",
            vec![good_nop],
            vec![],
            false,
            Action::Keep {
                entry: ours.clone(),
            },
        ),
        (
            "ours, disabled",
            vec![off],
            vec![],
            false,
            Action::Enable {
                entry: ours.clone(),
            },
        ),
        (
            "ours, other interpreter",
            vec![moved],
            vec![],
            false,
            Action::Replace { old: ours.clone() },
        ),
        (
            "ours, other flags",
            vec![flags],
            vec![],
            false,
            Action::Replace { old: ours.clone() },
        ),
        (
            "foreign working with F",
            vec![deb.clone()],
            vec!["qemu-aarch64"],
            false,
            Action::UseForeign {
                entry: "qemu-aarch64".into(),
            },
        ),
        (
            "foreign failing",
            vec![deb.clone()],
            vec![],
            false,
            Action::Register,
        ),
        (
            "foreign working without F",
            vec![deb_nof],
            vec!["qemu-aarch64"],
            false,
            Action::Register,
        ),
        (
            "foreign working, replace asked",
            vec![deb.clone()],
            vec!["qemu-aarch64"],
            true,
            Action::Register,
        ),
        (
            "ours and foreign",
            vec![deb.clone(), good.clone()],
            vec!["qemu-aarch64"],
            false,
            Action::Keep {
                entry: ours.clone(),
            },
        ),
    ];
    for (what, observed, working, replace, action) in rows {
        let p = one(want("aarch64"), &observed, &working, replace);
        assert_eq!(p.action, action, "{what}");
        let has_deb = observed.iter().any(|e| e.name == "qemu-aarch64");
        assert_eq!(p.foreign.len(), usize::from(has_deb), "{what}");
        assert_eq!(
            p.remove_foreign.len(),
            usize::from(has_deb && replace),
            "{what}"
        );
    }
}

#[test]
fn uninstall_touches_only_our_entries() {
    let observed = vec![
        entry(
            "qemu-aarch64",
            "aarch64",
            "/usr/bin/qemu-aarch64",
            "OPF",
            true,
        ),
        entry(
            &format!("{OWN_PREFIX}aarch64"),
            "aarch64",
            "/q/qemu-aarch64",
            "PF",
            true,
        ),
        entry(
            &format!("{OWN_PREFIX}riscv64"),
            "riscv64",
            "/q/qemu-riscv64",
            "PF",
            false,
        ),
    ];
    assert_eq!(
        uninstall(&observed, None),
        vec!["binfmtd-aarch64", "binfmtd-riscv64"]
    );
    let only = [lookup("riscv64").unwrap()];
    assert_eq!(uninstall(&observed, Some(&only)), vec!["binfmtd-riscv64"]);
}
