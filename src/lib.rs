//! binfmtd: a node agent that provisions, proves and reports binfmt_misc/qemu-user emulation.
//!
//! Module map (pure core first, effectful edges last):
//!
//! | module   | what it holds                                                             | effects |
//! |----------|---------------------------------------------------------------------------|---------|
//! | `arch`   | the architecture table and name resolution (qemu/OCI/GOARCH/Debian names)  | none    |
//! | `entry`  | register-string encoding, entry-file parsing, flags, ownership prefix     | none    |
//! | `explain`| ELF/script inspection and the run-here verdict (pure); file reading at `explain::fs` | files   |
//! | `exit`   | documented exit codes and the error type that carries one                 | none    |
//! | `kernel` | the binfmt_misc filesystem behind the `BinfmtMisc` trait, rooted at a path | kernel  |
//! | `cli`    | argument parsing and one file per subcommand                              | all     |

pub mod arch;
pub mod cli;
pub mod entry;
pub mod exit;
pub mod explain;
pub mod install;
pub mod interp;
pub mod kernel;
pub mod plan;
pub mod prover;
pub mod status;
