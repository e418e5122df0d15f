//! Live terminal output: an overall bar plus one spinner per running node, with each
//! node's output and finish line printed above the bars.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::finish_line;
use super::table::write_summary_table;
use super::Reporter;
use crate::exec::outcome::Status;
use crate::exec::summary::Summary;

/// indicatif bars on stderr.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
    color: bool,
}

impl Progress {
    /// Bars drawn on stderr; `color` false draws them without ANSI colours.
    pub fn new(color: bool) -> Self {
        Self::with_target(ProgressDrawTarget::stderr(), color)
    }

    /// Bars drawn on the given target (tests use a hidden one).
    pub fn with_target(target: ProgressDrawTarget, color: bool) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style(
            color,
            "{elapsed:>4} [{bar:30.cyan/blue}] {pos}/{len} {msg}",
            "{elapsed:>4} [{bar:30}] {pos}/{len} {msg}",
        ));
        Progress {
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            color,
        }
    }

    fn println(&self, line: &str) {
        // Printing above the bars fails only when the terminal is gone; nothing to do then.
        let _ = self.multi.println(line);
    }
}

/// A style from a template; the templates are constants, so a parse failure is a bug that
/// falls back to indicatif's default rather than a panic.
fn style(color: bool, coloured: &str, plain: &str) -> ProgressStyle {
    let template = if color { coloured } else { plain };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Reporter for Progress {
    fn run_started(&self, total: usize) {
        self.overall.set_length(total as u64);
    }

    fn node_started(&self, node: &str) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(style(
            self.color,
            "  {spinner:.green} {prefix:.bold} {wide_msg:.dim}",
            "  {spinner} {prefix} {wide_msg}",
        ));
        bar.set_prefix(node.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(node.to_string(), bar);
    }

    fn output(&self, node: &str, line: &str) {
        self.println(&format!("[{node}] {line}"));
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = running.get(node) {
            bar.set_message(line.to_string());
        }
    }

    fn node_finished(&self, node: &str, status: &Status, duration: Duration) {
        let bar = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.println(&finish_line(node, status, duration, self.color));
        self.overall.inc(1);
    }

    fn run_finished(&self, summary: &Summary) {
        self.overall.finish_and_clear();
        let mut table = Vec::new();
        if write_summary_table(&mut table, summary, self.color).is_ok() {
            let text = String::from_utf8_lossy(&table);
            self.println(text.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::summary::NodeResult;

    #[test]
    fn tracks_one_spinner_per_running_node_and_counts_finishes() {
        let p = Progress::with_target(ProgressDrawTarget::hidden(), false);
        p.run_started(2);
        p.node_started("a");
        p.node_started("b");
        p.output("a", "line");
        assert_eq!(p.running.lock().unwrap().len(), 2);
        p.node_finished("a", &Status::Ran { detail: None }, Duration::ZERO);
        p.node_finished("b", &Status::Cancelled, Duration::ZERO);
        assert!(p.running.lock().unwrap().is_empty());
        assert_eq!(p.overall.position(), 2);
        p.run_finished(&Summary {
            nodes: vec![NodeResult {
                index: 0,
                label: "a".into(),
                status: Status::Ran { detail: None },
                duration: Duration::ZERO,
            }],
            elapsed: Duration::ZERO,
            interrupted: false,
        });
        assert!(p.overall.is_finished());
    }
}
