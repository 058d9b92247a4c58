//! binfmtd: a node agent that provisions, proves and reports binfmt_misc/qemu-user emulation.
//!
//! Module map (pure core first, effectful edges last):
//!
//! | module    | what it holds                                                                 | effects |
//! |-----------|-------------------------------------------------------------------------------|---------|
//! | `arch`    | the architecture table and name resolution (qemu/OCI/GOARCH/Debian names)     | none    |
//! | `entry`   | register-string encoding, entry-file parsing, flags, ownership prefix         | none    |
//! | `plan`    | the reconcile diff: desired vs observed entries -> per-arch actions           | none    |
//! | `status`  | the status schema (data), built from observations; table rendering            | none    |
//! | `labels`  | node labels implied by a status report; the merge patch from current to them  | none    |
//! | `placement`| pod placement: image platforms, decision, JSON patch, gate                   | none    |
//! | `place`   | `binfmtd place`: webhook, certificate, leader election, registry, controller  | network |
//! | `timefmt` | RFC 3339 UTC timestamps (status file, NFD expiry)                              | none    |
//! | `explain` | file facts (ELF, #!, libraries, symbol versions) and the run-here verdict     | files   |
//! | `exec`    | running a child with a deadline (probes, `--version`)                         | exec    |
//! | `exit`    | documented exit codes and the error type that carries one                     | none    |
//! | `interp`  | locating interpreters; trust rule + ELF/static checks; cache copies; sha256   | files   |
//! | `kernel`  | the binfmt_misc filesystem behind the `BinfmtMisc` trait, rooted at a path    | kernel  |
//! | `probe`   | tiny per-arch ELF probes, their output parser/judge, the `Runner` that execs  | exec    |
//! | `prover`  | the `Prover` trait (prove a format, detect native ones) and its exec version  | exec    |
//! | `par`     | a scoped-thread parallel map for independent per-arch work                    | threads |
//! | `install` | applying a plan: register, prove, keep or roll back, per arch                 | all     |
//! | `converge`| one pass: arches minus natives, interpreters, plan+apply under the node lock, gc | all   |
//! | `agent`   | `binfmtd run`: the poll loop; pure drift/backoff/fight decisions in `agent::decide` | all |
//! | `config`  | the config file: interpreter sources pinned by sha256, download settings     | none    |
//! | `archive` | one member out of a tar (gz/xz/zst) or a .deb, streaming, capped, ELF-checked | none    |
//! | `fetch`   | downloads: mirrors, retries, deadlines, size cap, streaming sha256 (`Transport`) | network |
//! | `cache`   | the content-addressed interpreter store: atomic commits, index, gc            | files   |
//! | `supply`  | per-arch provisioning: source -> bytes -> verified cache object               | all     |
//! | `trust`   | the trust rule: a file or directory root uses, and every directory above it   | files   |
//! | `nfd`     | the same labels as a Node Feature Discovery local-source feature file         | files   |
//! | `kube`    | publishing labels to the Node object through kube-rs (`Labeller`, `Publisher`) | network |
//! | `publish` | the agent's entry point for labels: report in, Node labels or NFD file out    | all     |
//! | `monitor` | exec visibility: tracefs events -> emulated execs and ENOEXEC, per pod/container | kernel |
//! | `cli`     | argument parsing and one file per subcommand                                  | all     |

pub mod agent;
pub mod arch;
pub mod archive;
pub mod cache;
pub mod cli;
pub mod config;
pub mod converge;
pub mod entry;
pub mod exec;
pub mod exit;
pub mod explain;
pub mod fetch;
pub mod install;
pub mod interp;
pub mod kernel;
pub mod kube;
pub mod labels;
pub mod monitor;
pub mod nfd;
pub mod par;
pub mod place;
pub mod placement;
pub mod plan;
pub mod probe;
pub mod prover;
pub mod publish;
pub mod status;
pub mod supply;
pub mod timefmt;
pub mod trust;
