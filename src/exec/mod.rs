//! Execution: the DAG scheduler, run-time reporting, host processes and signal handling.
//!
//! The scheduler ([`run`]) walks a [`Dag`] of caller-defined nodes and hands each ready node
//! to an [`Executor`]; it never does the work and knows nothing about the manifest, so it is
//! tested without processes or Docker. What happens is told to a [`Reporter`]
//! ([`report`]), and [`process`] and [`signals`] are the pieces executors and the CLI use
//! to run host commands and to stop cleanly on Ctrl-C.

mod dag;
mod outcome;
pub mod process;
pub mod report;
mod scheduler;
pub mod signals;
mod summary;

pub use dag::{Dag, DagError, NodeLabel};
pub use outcome::{chain, Failure, FailureClass, Outcome, Status};
pub use report::Reporter;
pub use scheduler::{run, Executor, NodeCtx, Options};
pub use summary::{Counts, NodeResult, Summary};
