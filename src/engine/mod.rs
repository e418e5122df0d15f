//! One engine under every command: load the manifest once → select part of the graph →
//! plan it (one decision per node) → walk the plan on the scheduler, each step handed to the
//! executor of its kind → record. `apply`, `run`, `test`, `ci`, `backup`, `sync`, `destroy`
//! and `why` differ only in their [`Selection`] and in how they render the result; the exit
//! code comes from the walk's summary, in one place ([`exit_code`]).

pub mod masked;
mod planner;
pub mod selection;
pub mod session;
mod traced;
pub mod walk;

use tokio_util::sync::CancellationToken;

use crate::error::ExitCode;
use crate::exec::{FailureClass, Summary};

pub use planner::plan;
pub use selection::Selection;
pub use session::{Options, Session, TestOutput};
pub use walk::{walk, Walk};

/// Connects to the engine (`DOCKER_HOST` or the default socket), for commands that only
/// read what it holds.
pub async fn connect(
) -> std::result::Result<std::sync::Arc<dyn crate::backend::Backend>, crate::backend::BackendError>
{
    crate::backend::docker::DockerBackend::connect()
        .await
        .map(|d| std::sync::Arc::new(d) as std::sync::Arc<dyn crate::backend::Backend>)
}

/// Starts connecting on `rt` at once, for a command that will need the engine: the first
/// round trip then overlaps with loading the manifest and the side stores. Hand the handle
/// to [`Session::adopt`].
pub fn connect_early(rt: &tokio::runtime::Runtime) -> tokio::task::JoinHandle<session::Connected> {
    rt.spawn(connect())
}

/// The process exit code of a walk: 130 when interrupted; otherwise from the most serious
/// failure (work 1, conflict 4, infrastructure 3); 0 when nothing failed.
pub fn exit_code(summary: &Summary, cancel: &CancellationToken) -> ExitCode {
    if cancel.is_cancelled() || summary.interrupted {
        return ExitCode::Interrupted;
    }
    match summary.worst_failure() {
        None => ExitCode::Ok,
        Some(FailureClass::Work) => ExitCode::Failed,
        Some(FailureClass::Conflict) => ExitCode::Conflict,
        Some(FailureClass::Infrastructure) => ExitCode::Infrastructure,
        Some(FailureClass::Interrupted) => ExitCode::Interrupted,
    }
}

#[cfg(test)]
mod tests;
