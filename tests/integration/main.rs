//! The integration-test binary: every file here runs the real `sanctuary` binary or the
//! library's public entry points.

mod cli_basics;
mod manifest_errors;
mod manifest_fuzz;
mod support;
