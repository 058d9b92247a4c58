//! `explain --image`: for each platform of an image, whether this node runs it natively,
//! through which binfmt_misc entry, or not at all; and for the platform this node would
//! pull, the verdict of the entrypoint inside the image's own filesystem.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::elf::{ElfInfo, ElfKind, Linkage};
use super::fs::{observe_node, Explained, Explainer, Root};
use super::image::{platforms, ImageError, PlatformImage, Source};
use super::layers::Tree;
use super::materialize::{Coverage, Limited, EDGE, FILE_CAP, RANGES_RESERVE, TOTAL_CAP};
use super::verdict::{verdict, Facts, Node, Verdict};
use super::{FileInfo, Problem};
use crate::arch::Arch;
use crate::prover::Prover;

/// One platform of the image, as this node would run it.
#[derive(Debug, Clone)]
pub struct PlatformVerdict {
    pub platform: String,
    pub arch: Option<&'static Arch>,
    pub verdict: Verdict,
}

/// Everything `explain --image` reports.
#[derive(Debug)]
pub struct ImageReport {
    pub path: PathBuf,
    pub format: &'static str,
    pub platforms: Vec<PlatformVerdict>,
    /// Index into `platforms` of the one judged in depth (pulled here, or --platform).
    pub chosen: Option<usize>,
    /// Entrypoint + Cmd of the chosen platform.
    pub command: Vec<String>,
    /// Why the chosen platform's command cannot even be located.
    pub problems: Vec<Problem>,
    /// The command's file, explained inside the image's filesystem.
    pub entrypoint: Option<Explained>,
    /// Files over the size limits, written only in part or not at all.
    pub limited: Vec<Limited>,
}

impl ImageReport {
    /// Does the chosen platform's command run here?
    pub fn runs(&self) -> bool {
        self.problems.is_empty() && self.entrypoint.as_ref().is_some_and(|e| e.verdict.runs())
    }

    pub fn json(&self) -> Value {
        let platforms: Vec<Value> = self
            .platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "platform": p.platform, "arch": p.arch.map(|a| a.qemu),
                    "chosen": self.chosen == Some(i),
                    "verdict": super::report::verdict_json(&p.verdict),
                })
            })
            .collect();
        json!({
            "path": self.path, "format": self.format, "platforms": platforms,
            "chosen": self.chosen.map(|i| &self.platforms[i].platform),
            "command": self.command,
            "problems": self.problems.iter().map(super::report::problem_json).collect::<Vec<_>>(),
            "runs": self.runs(),
            "limited": self.limited,
        })
    }

    pub fn human(&self) -> String {
        let mut s = format!("image {} ({}):\n", self.path.display(), self.format);
        for (i, p) in self.platforms.iter().enumerate() {
            let mark = if self.chosen == Some(i) {
                " [judged below]"
            } else {
                ""
            };
            s += &format!(
                "  {}: {}{mark}\n",
                p.platform,
                super::report::summary(&p.verdict)
            );
        }
        if let Some(i) = self.chosen {
            s += &format!(
                "  command of {}: {:?}\n",
                self.platforms[i].platform, self.command
            );
        }
        for p in &self.problems {
            s += &format!("    - {p}\n");
        }
        s += &limited_lines(&self.limited);
        s
    }
}

/// What a verdict could and could not read of the files over the limits, a line per kind.
fn limited_lines(limited: &[Limited]) -> String {
    let some = |read: Coverage| {
        let paths: Vec<&str> = limited
            .iter()
            .filter(|l| l.read == read)
            .map(|l| l.path.as_str())
            .collect();
        let more = paths.len().saturating_sub(3);
        let shown = paths[..paths.len().min(3)].join(", ");
        match more {
            0 => (paths.len(), shown),
            n => (paths.len(), format!("{shown} and {n} more")),
        }
    };
    let mut s = String::new();
    let (n, paths) = some(Coverage::Ranges);
    if n > 0 {
        s += &format!(
            "    - {n} file(s) read in part ({paths}): over {} MiB, or past the {} MiB of whole copies; their first and last {} KiB, and for ELF the headers, dynamic section and version tables all loader facts come from\n",
            FILE_CAP >> 20,
            (TOTAL_CAP - RANGES_RESERVE) >> 20,
            EDGE >> 10
        );
    }
    let (n, paths) = some(Coverage::Nothing);
    if n > 0 {
        s += &format!(
            "    - {n} file(s) not read ({paths}): explain writes at most {} MiB of an image in all; a verdict that needs one of them may call it missing\n",
            TOTAL_CAP >> 20
        );
    }
    s
}

/// How this node would execute a file of `arch`: the verdict of a static program of it.
fn platform_verdict(arch: &'static Arch, node: &Node) -> Verdict {
    let info = FileInfo::Elf(ElfInfo {
        arch: Some(arch),
        machine: arch.elf_machine(),
        class: arch.elf_class(),
        endian: arch.endian(),
        abi: String::new(),
        kind: ElfKind::Executable,
        linkage: Linkage::Static,
        interpreter: None,
        glibc_needed: None,
        glibc_defined: None,
        dynamic: Default::default(),
    });
    let facts = Facts {
        file_name: String::new(),
        header: arch.magic.to_vec(),
        executable: true,
        loader_present: None,
        script: None,
        libraries: vec![],
    };
    verdict(&info, node, &facts)
}

/// The platform a runtime on this node pulls: the host's CPU first, then one it runs natively.
fn pulled(images: &[PlatformImage], native: &[&'static Arch]) -> Option<usize> {
    let arch_of = |i: &PlatformImage| i.platform.arch();
    let host = native.first()?;
    let by = |want: &dyn Fn(&'static Arch) -> bool| {
        images.iter().position(|i| arch_of(i).is_some_and(want))
    };
    by(&|a| a == *host).or_else(|| by(&|a| native.contains(&a)))
}

/// The platform judged in depth: --platform's (`linux/arm` also picks `linux/arm/v7`), else
/// the one this node pulls.
fn choose(images: &[PlatformImage], q: &ImageQuery) -> Result<Option<usize>, ImageError> {
    let Some(want) = q.platform else {
        return Ok(pulled(images, &q.native));
    };
    let prefix = format!("{want}/");
    let found = images.iter().position(|i| {
        let name = i.platform.name();
        name == want || name.starts_with(&prefix)
    });
    match found {
        Some(i) => Ok(Some(i)),
        None => {
            let all: Vec<String> = images.iter().map(|i| i.platform.name()).collect();
            Err(ImageError::Invalid(format!(
                "--platform {want}: the image has only {}",
                all.join(", ")
            )))
        }
    }
}

/// What to explain: the image at `path`, against this node.
pub struct ImageQuery<'a> {
    pub path: &'a Path,
    pub binfmt_misc: &'a Path,
    pub native: Vec<&'static Arch>,
    /// `os/arch[/variant]` to judge instead of the one this node would pull.
    pub platform: Option<&'a str>,
    pub prover: &'a dyn Prover,
}

pub fn explain_image(q: &ImageQuery) -> Result<ImageReport, ImageError> {
    let src = Source::open(q.path)?;
    let images = platforms(&src)?;
    let node = observe_node(q.binfmt_misc, &Root::new("/"), q.native.clone());
    let verdicts = images
        .iter()
        .map(|i| {
            let name = i.platform.name();
            let arch = i.platform.arch();
            let verdict = match arch {
                Some(a) => platform_verdict(a, &node),
                None => Verdict::broken(Problem::UnknownPlatform {
                    platform: name.clone(),
                }),
            };
            PlatformVerdict {
                platform: name,
                arch,
                verdict,
            }
        })
        .collect::<Vec<_>>();
    let chosen = choose(&images, q)?;
    let mut report = ImageReport {
        path: q.path.to_path_buf(),
        format: src.format(),
        platforms: verdicts,
        chosen,
        command: vec![],
        problems: vec![],
        entrypoint: None,
        limited: vec![],
    };
    let Some(i) = chosen else {
        report.problems.push(Problem::NoMatchingPlatform {
            host: q.native.first().map_or("?", |a| a.qemu).to_string(),
            available: report
                .platforms
                .iter()
                .map(|p| p.platform.clone())
                .collect(),
        });
        return Ok(report);
    };
    judge_command(q, &src, &images[i], &mut report)?;
    Ok(report)
}

/// Find the command in the image's merged layers, write what the checks read into a
/// private directory, and explain the command there.
fn judge_command(
    q: &ImageQuery,
    src: &Source,
    image: &PlatformImage,
    report: &mut ImageReport,
) -> Result<(), ImageError> {
    report.command = image.run.argv();
    let Some(argv0) = report.command.first().cloned() else {
        report.problems.push(Problem::NoCommand);
        return Ok(());
    };
    let tree = Tree::build(src, &image.layers)?;
    let workdir = image.run.working_dir.clone().unwrap_or_else(|| "/".into());
    let candidates: Vec<String> = match argv0.contains('/') {
        true if argv0.starts_with('/') => vec![argv0.clone()],
        true => vec![format!("{workdir}/{argv0}")],
        false => image
            .run
            .path()
            .iter()
            .map(|d| format!("{d}/{argv0}"))
            .collect(),
    };
    let found = candidates
        .iter()
        .find_map(|c| tree.resolve(c).filter(|r| tree.is_file(r)));
    let Some(target) = found else {
        report.problems.push(Problem::CommandNotFound {
            command: argv0,
            path: if argv0_has_slash(&report.command) {
                vec![workdir]
            } else {
                image.run.path()
            },
        });
        return Ok(());
    };
    let dir = super::scratch::Scratch::new().map_err(|error| ImageError::Io {
        path: "temporary directory".into(),
        error,
    })?;
    let want = |p: &str| p == target || needed_by_checks(p);
    report.limited = tree.materialize(src, &image.layers, &want, &dir)?;
    let root = Root::new(&dir.dir);
    let node = observe_node(q.binfmt_misc, &root, q.native.clone());
    let explainer = Explainer::new(node, root, q.prover);
    let shown = format!("/{target}");
    let mut x = match report.limited.iter().find(|l| l.path == shown) {
        Some(l) if l.read == Coverage::Nothing => not_read(l),
        _ => explainer.explain(&dir.dir.join(&target)),
    };
    x.path = PathBuf::from(shown);
    let name = PathBuf::from(format!("{} [{}]", q.path.display(), image.platform.name()));
    x.verdict
        .problems
        .iter_mut()
        .for_each(|p| p.rename_root(&name));
    report.entrypoint = Some(x);
    Ok(())
}

/// The command's file, left unwritten by the total cap: say so rather than "no such file".
fn not_read(l: &Limited) -> Explained {
    let p = Problem::Unreadable {
        error: format!(
            "{} ({} MiB) was not read: explain writes at most {} MiB of an image, and the files before it used that up",
            l.path,
            l.size >> 20,
            TOTAL_CAP >> 20
        ),
    };
    Explained {
        path: PathBuf::from(&l.path),
        libraries: vec![],
        info: Err(p.clone()),
        verdict: Verdict::broken(p),
    }
}

fn argv0_has_slash(argv: &[String]) -> bool {
    argv.first().is_some_and(|a| a.contains('/'))
}

/// Files a verdict may read: programs (script interpreters, `env` targets), shared
/// libraries and loaders, the loader's configuration.
fn needed_by_checks(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    let in_bin = p
        .split('/')
        .rev()
        .skip(1)
        .any(|c| c == "bin" || c == "sbin");
    in_bin || name.contains(".so") || p.starts_with("etc/ld")
}
