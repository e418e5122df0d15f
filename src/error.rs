//! The top-level error of a command and the exit code each kind maps to.
//!
//! Exit codes (documented in `docs/exit-codes.md`):
//! 0 success · 1 a task or test failed · 2 manifest or usage error · 3 infrastructure error
//! (Docker unreachable, image build, health timeout) · 4 conflict (state lock held, stale plan)
//! · 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM.

use miette::Diagnostic;

use crate::manifest::LoadError;

/// Process exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Ok,
    Failed,
    Usage,
    Infrastructure,
    Conflict,
    /// The apply failed and `--rollback-on-failure` put the previous generation back.
    RolledBack,
    Interrupted,
    /// The exit code of a command sanctuary ran for the user (`exec`), passed through.
    Passthrough(i32),
}

impl ExitCode {
    /// The process exit code; an interruption reports the signal that caused it.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Failed => 1,
            ExitCode::Usage => 2,
            ExitCode::Infrastructure => 3,
            ExitCode::Conflict => 4,
            ExitCode::RolledBack => 5,
            ExitCode::Interrupted => crate::exec::signals::interrupted_code(),
            ExitCode::Passthrough(code) => code,
        }
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(#[from] LoadError),

    #[error("unknown {what} `{name}`")]
    #[diagnostic(help("{help}"))]
    UnknownTarget {
        what: &'static str,
        name: String,
        help: String,
    },

    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Usage { message: String, help: String },

    #[error("{message}")]
    Io {
        message: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::PlanError),

    #[error(transparent)]
    Lock(#[from] crate::state::LockError),

    #[error(transparent)]
    State(#[from] crate::state::StateError),

    #[error("the saved plan {} is stale: {reason}", path.display())]
    #[diagnostic(help("run `sanctuary plan -o {}` again and review the new plan", path.display()))]
    StalePlan {
        path: std::path::PathBuf,
        reason: String,
    },

    /// Docker or another piece of infrastructure failed (build, health timeout, daemon).
    #[error("{0}")]
    Infrastructure(String),

    /// Work ran and some of it failed; the summary has already been shown.
    #[error("{0}")]
    Failed(String),

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Manifest(LoadError::Read { .. }) => ExitCode::Usage,
            Error::Manifest(_) | Error::UnknownTarget { .. } | Error::Usage { .. } => {
                ExitCode::Usage
            }
            Error::Io { .. } => ExitCode::Failed,
            Error::Backend(_) | Error::Infrastructure(_) => ExitCode::Infrastructure,
            Error::Plan(crate::plan::PlanError::Backend(_)) => ExitCode::Infrastructure,
            Error::Plan(_) => ExitCode::Usage,
            Error::Lock(_) | Error::StalePlan { .. } => ExitCode::Conflict,
            Error::State(_) => ExitCode::Failed,
            Error::Failed(_) => ExitCode::Failed,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: help.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
