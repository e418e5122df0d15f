//! JUnit XML for CI systems: one `<testsuite>` named after the project, one `<testcase>` per
//! test with `<failure message=…>` holding the output, or `<skipped/>`. Everything is
//! XML-escaped, and characters XML 1.0 cannot hold are dropped.

use std::fmt::Write;
use std::time::Duration;

/// How one test ended, as JUnit records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseStatus {
    Passed,
    /// Passed earlier with the same key; JUnit has no word for it, so it is a pass.
    Cached,
    Failed {
        message: String,
        output: String,
    },
    Skipped {
        reason: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub status: CaseStatus,
    pub time: Duration,
}

/// Escapes text for an XML attribute or element body.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Keep line structure inside attributes.
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The JUnit document for `project`'s `cases`.
pub fn render(project: &str, cases: &[Case]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.status, CaseStatus::Failed { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.status, CaseStatus::Skipped { .. }))
        .count();
    let total: Duration = cases.iter().map(|c| c.time).sum();
    let p = escape(project);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{p}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        cases.len(),
        secs(total)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{p}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        cases.len(),
        secs(total)
    );
    for c in cases {
        let _ = write!(
            x,
            "    <testcase name=\"{}\" classname=\"{p}\" time=\"{}\"",
            escape(&c.name),
            secs(c.time)
        );
        match &c.status {
            CaseStatus::Passed => x.push_str("/>\n"),
            CaseStatus::Cached => {
                x.push_str(">\n      <system-out>cached: passed before, nothing changed</system-out>\n    </testcase>\n")
            }
            CaseStatus::Failed { message, output } => {
                let _ = write!(
                    x,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(message),
                    escape(output)
                );
            }
            CaseStatus::Skipped { reason } => {
                let _ = write!(
                    x,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    escape(reason)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1b}[31mb\nc"), "a[31mb\nc");
    }

    #[test]
    fn documents_count_failures_and_skips() {
        let cases = vec![
            Case {
                name: "ok".into(),
                status: CaseStatus::Passed,
                time: Duration::from_millis(1500),
            },
            Case {
                name: "cached".into(),
                status: CaseStatus::Cached,
                time: Duration::ZERO,
            },
            Case {
                name: "bad<1>".into(),
                status: CaseStatus::Failed {
                    message: "exit status 1".into(),
                    output: "boom & bust".into(),
                },
                time: Duration::from_millis(250),
            },
            Case {
                name: "later".into(),
                status: CaseStatus::Skipped {
                    reason: "because bad failed".into(),
                },
                time: Duration::ZERO,
            },
        ];
        let x = render("demo", &cases);
        assert!(x.contains(
            "<testsuite name=\"demo\" tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.750\">"
        ), "{x}");
        assert!(
            x.contains("<testcase name=\"ok\" classname=\"demo\" time=\"1.500\"/>"),
            "{x}"
        );
        assert!(x.contains("<testcase name=\"bad&lt;1&gt;\""), "{x}");
        assert!(
            x.contains("<failure message=\"exit status 1\">boom &amp; bust</failure>"),
            "{x}"
        );
        assert!(
            x.contains("<skipped message=\"because bad failed\"/>"),
            "{x}"
        );
        assert!(x.ends_with("</testsuites>\n"));
    }
}
