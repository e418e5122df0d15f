//! What tests need besides running: the HTTP and TCP probes ([`probe`], [`http`]), turning a
//! walk into cases, counts and the summary line ([`tally`]), and JUnit XML ([`junit`]). The
//! tests themselves run as steps of the engine's walk (`crate::executors::test`).

pub mod http;
pub mod junit;
pub mod probe;
pub mod tally;

pub use junit::{Case, CaseStatus};
pub use tally::Tally;

#[cfg(test)]
mod tests;
