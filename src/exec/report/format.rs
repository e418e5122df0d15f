//! Text shared by the human-facing reporters: durations and one-line node results.

use std::time::Duration;

use crate::exec::outcome::Status;

/// Formats a duration for people: `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// ANSI colours used when colour is on.
#[derive(Clone, Copy)]
pub(crate) enum Paint {
    Green,
    Red,
    Yellow,
    Dim,
    Bold,
}

/// Wraps `text` in the colour's escape codes, or returns it untouched when `color` is off.
pub(crate) fn paint(text: &str, p: Paint, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match p {
        Paint::Green => "32",
        Paint::Red => "31",
        Paint::Yellow => "33",
        Paint::Dim => "2",
        Paint::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The colour a status is shown in.
pub(crate) fn status_paint(status: &Status) -> Paint {
    match status {
        Status::Ran { .. } => Paint::Green,
        Status::Cached { .. } | Status::UpToDate { .. } => Paint::Dim,
        Status::Failed { .. } => Paint::Red,
        Status::Skipped { .. } | Status::NotRun | Status::Cancelled => Paint::Yellow,
    }
}

/// One line saying how a node ended, e.g. `✓ build (1.2s)` or `✗ test (0.3s): exit 1`.
pub(crate) fn finish_line(node: &str, status: &Status, took: Duration, color: bool) -> String {
    let t = format_duration(took);
    let (mark, text) = match status {
        Status::Ran { detail } => ("✓", with_detail(format!("{node} ({t})"), detail)),
        Status::Cached { detail } => ("✓", with_detail(format!("{node} (cached, {t})"), detail)),
        Status::UpToDate { detail } => ("✓", with_detail(format!("{node} (up to date)"), detail)),
        Status::Failed { message, .. } => ("✗", format!("{node} ({t}): {message}")),
        Status::Skipped { because } => ("-", format!("{node} skipped because {because} failed")),
        Status::NotRun => ("-", format!("{node} not run (stopped after a failure)")),
        Status::Cancelled => ("-", format!("{node} cancelled")),
    };
    format!("{} {text}", paint(mark, status_paint(status), color))
}

fn with_detail(head: String, detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!("{head}: {d}"),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn finish_lines_are_plain_without_colour_and_painted_with_it() {
        let s = Status::Cached {
            detail: Some("restored 2 outputs".into()),
        };
        assert_eq!(
            finish_line("build", &s, Duration::from_millis(100), false),
            "✓ build (cached, 0.1s): restored 2 outputs"
        );
        let red = finish_line(
            "t",
            &Status::Failed {
                class: crate::exec::FailureClass::Work,
                message: "exit 1".into(),
            },
            Duration::ZERO,
            true,
        );
        assert_eq!(red, "\x1b[31m✗\x1b[0m t (0.0s): exit 1");
    }
}
