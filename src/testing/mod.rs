//! Tests: the checks a manifest declares (`test` nodes), run by the scheduler like tasks.
//!
//! [`TestExecutor`] runs each test — shell lines on the host or inside an image, a command
//! inside a running service, an HTTP or TCP probe — under its timeout, with results cached
//! by key so a passing test whose inputs and needed services did not change is `cached`.
//! [`tally`] turns a run into cases, counts and the summary line; [`junit`] writes them as
//! JUnit XML. Bringing up what tests need and choosing which tests run is the CLI's part.

pub mod executor;
pub mod http;
pub mod junit;
pub mod probe;
pub mod tally;

pub use executor::{needed_services, needs_docker, TestExecutor, TestOutput};
pub use junit::{Case, CaseStatus};
pub use tally::Tally;

#[cfg(test)]
mod tests;
