//! One executor per kind of step, each called by the walk ([`crate::engine::Walk`]) with its
//! step: it decides again from a fresh observation with the planner's own function, does the
//! work through the backend or on the host, records the result, and answers with an
//! [`crate::exec::Outcome`] or a [`crate::exec::Failure`] whose class sets the exit code.
//! Executors are the only code above the backend that talks to the engine.

pub mod backup;
pub mod blue_green;
pub mod container;
pub mod image;
pub mod named;
pub mod object;
pub mod ready;
pub mod service;
pub mod sync;
pub mod task;
pub mod test;

use crate::backend::BackendError;
use crate::exec::Failure;

/// A backend error as a failure of the engine, with its cause chain.
pub fn engine_failure(e: BackendError) -> Failure {
    Failure::from_error(crate::exec::FailureClass::Infrastructure, &e)
}
