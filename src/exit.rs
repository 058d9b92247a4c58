//! Process exit codes. Documented in the README ("Exit codes"); scripts rely on them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for works.
    Ok = 0,
    /// At least one requested arch (or explained file) does not work; the report says why, per arch.
    NotWorking = 1,
    /// Bad input: unknown arch name, bad option combination, bad config, native arch requested.
    Usage = 2,
    /// The environment cannot do it: binfmt_misc unavailable, missing CAP_SYS_ADMIN/root.
    Environment = 3,
    /// An unexpected I/O or internal error.
    Internal = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that carries the exit code it maps to. The binary's edge prints the whole chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }
}
