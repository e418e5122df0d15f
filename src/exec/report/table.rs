//! The end-of-run summary table: every node with its status and time, then the totals.

use std::io::{self, Write};

use super::format::{format_duration, paint, status_paint, Paint};
use crate::exec::summary::Summary;

/// Writes a table of every node (in DAG order) with status, time and note, followed by a
/// totals line such as `3 ran, 1 failed, 2 skipped in 4.1s`.
pub fn write_summary_table(w: &mut dyn Write, summary: &Summary, color: bool) -> io::Result<()> {
    let name_w = summary
        .nodes
        .iter()
        .map(|n| n.label.chars().count())
        .max()
        .unwrap_or(0)
        .max("NODE".len());
    let status_w = "up to date".len();
    writeln!(
        w,
        "{}",
        paint(
            &format!(
                "{:<name_w$}  {:<status_w$}  {:>7}",
                "NODE", "STATUS", "TIME"
            ),
            Paint::Bold,
            color
        )
    )?;
    for n in &summary.nodes {
        // Pad before painting: escape codes would otherwise count towards the width.
        let status = format!("{:<status_w$}", n.status.to_string());
        // Nodes that never started have no time worth showing.
        let time = if n.status.was_started() {
            format_duration(n.duration)
        } else {
            "-".to_string()
        };
        let note = n
            .status
            .note()
            .map(|s| format!("  {s}"))
            .unwrap_or_default();
        writeln!(
            w,
            "{:<name_w$}  {}  {:>7}{note}",
            n.label,
            paint(&status, status_paint(&n.status), color),
            time
        )?;
    }
    writeln!(w, "{}", totals_line(summary))
}

/// `2 ran, 1 cached, 1 failed in 3.0s`; statuses with no nodes are left out.
fn totals_line(summary: &Summary) -> String {
    let c = summary.counts();
    let parts: Vec<String> = [
        (c.ran, "ran"),
        (c.cached, "cached"),
        (c.up_to_date, "up to date"),
        (c.failed, "failed"),
        (c.skipped, "skipped"),
        (c.not_run, "not run"),
        (c.cancelled, "cancelled"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let what = if parts.is_empty() {
        "nothing to do".to_string()
    } else {
        parts.join(", ")
    };
    let tail = if summary.interrupted {
        " (interrupted)"
    } else {
        ""
    };
    format!("{what} in {}{tail}", format_duration(summary.elapsed))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::exec::summary::NodeResult;
    use crate::exec::Status;

    #[test]
    fn the_table_lists_every_node_with_status_time_and_totals() {
        let summary = Summary {
            nodes: vec![
                NodeResult {
                    index: 0,
                    label: "image/clone".into(),
                    status: Status::Cached { detail: None },
                    duration: Duration::from_millis(200),
                },
                NodeResult {
                    index: 1,
                    label: "test/all".into(),
                    status: Status::Failed {
                        class: crate::exec::FailureClass::Work,
                        message: "exit status 1".into(),
                    },
                    duration: Duration::from_millis(1500),
                },
                NodeResult {
                    index: 2,
                    label: "report".into(),
                    status: Status::Skipped {
                        because: "test/all".into(),
                    },
                    duration: Duration::ZERO,
                },
            ],
            elapsed: Duration::from_millis(1700),
            interrupted: false,
        };
        let mut out = Vec::new();
        write_summary_table(&mut out, &summary, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\
NODE         STATUS         TIME
image/clone  cached         0.2s
test/all     failed         1.5s  exit status 1
report       skipped           -  because test/all failed
1 cached, 1 failed, 1 skipped in 1.7s
"
        );
    }
}
