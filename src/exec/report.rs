//! Run-time reporting: the scheduler tells a [`Reporter`] what happens (a run starts, a node
//! starts, prints a line, finishes, the run ends) and the reporter decides how it looks.
//!
//! Three reporters exist: [`Progress`] (indicatif bars, for a terminal), [`Plain`] (one line
//! per event, for logs and CI) and [`Json`] (one JSON object per line, for machines).
//! [`choose`] picks one from the `--json` flag, whether stdout is a terminal and `NO_COLOR`.
//! Reporters are shared between concurrently running nodes, so every method takes `&self`
//! and a reporter serialises its own writes.

mod format;
mod json;
mod plain;
mod progress;
mod table;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use super::outcome::Status;
use super::summary::Summary;

pub use format::format_duration;
pub use json::Json;
pub use plain::Plain;
pub use progress::Progress;
pub use table::write_summary_table;

/// Receives the events of one run. Methods must not block for long: they are called from
/// the scheduler's loop and from executors while they stream output.
pub trait Reporter: Send + Sync {
    /// The run is about to start `total` nodes (some may end up skipped).
    fn run_started(&self, total: usize);
    /// A node was handed to its executor.
    fn node_started(&self, node: &str);
    /// A node printed a line of output (without its trailing newline).
    fn output(&self, node: &str, line: &str);
    /// A node reached its final status; nodes that never started are reported too, with a
    /// zero duration.
    fn node_finished(&self, node: &str, status: &Status, duration: Duration);
    /// Every node has a final status.
    fn run_finished(&self, summary: &Summary);
    /// A node's machine-readable result (a snapshot id, what a sync moved). Only the JSON
    /// reporter shows it; executors say the same to people through `output`.
    fn data(&self, _node: &str, _value: &serde_json::Value) {}
}

/// A reporter that says nothing, for callers that only want the [`Summary`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn run_started(&self, _: usize) {}
    fn node_started(&self, _: &str) {}
    fn output(&self, _: &str, _: &str) {}
    fn node_finished(&self, _: &str, _: &Status, _: Duration) {}
    fn run_finished(&self, _: &Summary) {}
}

/// Which reporter to use, decided from the environment by [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReporterKind {
    /// JSON lines on stdout.
    Json,
    /// Live progress bars; `color` is false when `NO_COLOR` is set.
    Progress { color: bool },
    /// Plain lines; never coloured, because they go to a pipe or a file.
    Plain,
}

/// Picks the reporter: `--json` wins; a terminal gets progress bars (coloured unless
/// `NO_COLOR` is set); anything else gets plain lines without ANSI codes.
pub fn choose(json: bool, is_terminal: bool, no_color: bool) -> ReporterKind {
    if json {
        ReporterKind::Json
    } else if is_terminal {
        ReporterKind::Progress { color: !no_color }
    } else {
        ReporterKind::Plain
    }
}

/// Like [`choose`], reading the terminal state of stdout and `NO_COLOR` (set to anything
/// non-empty, per no-color.org) from the process.
pub fn choose_from_env(json: bool) -> ReporterKind {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    choose(json, std::io::stdout().is_terminal(), no_color)
}

/// Builds the reporter of the given kind, writing to stdout (progress bars go to stderr,
/// as indicatif draws them there, so stdout stays clean for redirection).
pub fn make(kind: ReporterKind) -> Arc<dyn Reporter> {
    let stdout: Box<dyn Write + Send> = Box::new(std::io::stdout());
    match kind {
        ReporterKind::Json => Arc::new(Json::new(stdout)),
        ReporterKind::Progress { color } => Arc::new(Progress::new(color)),
        ReporterKind::Plain => Arc::new(Plain::new(stdout, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_prefers_json_then_terminal_then_plain() {
        assert_eq!(choose(true, true, false), ReporterKind::Json);
        assert_eq!(
            choose(false, true, false),
            ReporterKind::Progress { color: true }
        );
        assert_eq!(
            choose(false, true, true),
            ReporterKind::Progress { color: false }
        );
        assert_eq!(choose(false, false, false), ReporterKind::Plain);
    }
}
