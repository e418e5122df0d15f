//! The end of a test run: every test's case (status, time, output) from the scheduler's
//! summary, the counts, and the summary line `N passed, N failed, N skipped, N cached`.
//!
//! Each test lands in exactly one count: `passed` ran and passed now, `cached` passed before
//! with the same key and was not re-run, `failed` failed, `skipped` never ran (a dependency
//! failed, the run stopped, or it was interrupted).

use std::collections::BTreeMap;

use super::junit::{Case, CaseStatus};
use crate::engine::TestOutput;
use crate::exec::{Status, Summary};

/// How many tests ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cached: usize,
}

impl Tally {
    /// Counts `cases`.
    pub fn of(cases: &[Case]) -> Tally {
        let mut t = Tally::default();
        for c in cases {
            match c.status {
                CaseStatus::Passed => t.passed += 1,
                CaseStatus::Cached => t.cached += 1,
                CaseStatus::Failed { .. } => t.failed += 1,
                CaseStatus::Skipped { .. } => t.skipped += 1,
            }
        }
        t
    }

    /// `7 passed, 1 failed, 0 skipped, 2 cached`.
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped, {} cached",
            self.passed, self.failed, self.skipped, self.cached
        )
    }
}

/// One case per test of the walk, in the order the walk lists them; the other steps (the
/// services and tasks the tests needed) are not cases.
pub fn cases(summary: &Summary, outputs: &BTreeMap<String, TestOutput>) -> Vec<Case> {
    summary
        .nodes
        .iter()
        .filter_map(|n| n.label.strip_prefix("test.").map(|name| (n, name)))
        .map(|(n, name)| {
            let output = outputs
                .get(name)
                .map(|o| o.output.clone())
                .unwrap_or_default();
            let status = match &n.status {
                Status::Ran { .. } | Status::UpToDate { .. } => CaseStatus::Passed,
                Status::Cached { .. } => CaseStatus::Cached,
                Status::Failed { message, .. } => CaseStatus::Failed {
                    message: message.clone(),
                    output,
                },
                other => CaseStatus::Skipped {
                    reason: other.note().unwrap_or_else(|| other.to_string()),
                },
            };
            Case {
                name: name.to_string(),
                status,
                time: n.duration,
            }
        })
        .collect()
}

/// The failure report people read after the run: each failed test, why, and its output.
pub fn failure_report(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        if let CaseStatus::Failed { message, output } = &c.status {
            out.push_str(&format!("--- FAIL: {} ({message})\n", c.name));
            for line in output.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::NodeResult;
    use std::time::Duration;

    fn node(index: usize, label: &str, status: Status) -> NodeResult {
        NodeResult {
            index,
            label: label.into(),
            status,
            duration: Duration::from_millis(10),
        }
    }

    #[test]
    fn statuses_become_cases_and_counts() {
        let summary = Summary {
            nodes: vec![
                node(0, "test.a", Status::Ran { detail: None }),
                node(1, "test.b", Status::Cached { detail: None }),
                node(5, "service.web", Status::Ran { detail: None }),
                node(
                    2,
                    "test.c",
                    Status::Failed {
                        class: crate::exec::FailureClass::Work,
                        message: "exit status 1".into(),
                    },
                ),
                node(
                    3,
                    "test.d",
                    Status::Skipped {
                        because: "c".into(),
                    },
                ),
                node(4, "test.e", Status::Cancelled),
            ],
            elapsed: Duration::from_millis(50),
            interrupted: false,
        };
        let outputs = BTreeMap::from([(
            "c".to_string(),
            TestOutput {
                output: "oops\nmore\n".into(),
            },
        )]);
        let cases = cases(&summary, &outputs);
        let t = Tally::of(&cases);
        assert_eq!(t.line(), "1 passed, 1 failed, 2 skipped, 1 cached");
        assert_eq!(
            cases[2].status,
            CaseStatus::Failed {
                message: "exit status 1".into(),
                output: "oops\nmore\n".into()
            }
        );
        assert_eq!(
            failure_report(&cases),
            "--- FAIL: c (exit status 1)\n    oops\n    more\n"
        );
    }
}
