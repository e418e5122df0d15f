//! The result of a whole run: every node's status and duration, in DAG order.

use std::time::Duration;

use super::outcome::{FailureClass, Status};

/// One node's line in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResult {
    /// Index of the node in the DAG.
    pub index: usize,
    /// The node's label.
    pub label: String,
    /// How it ended.
    pub status: Status,
    /// Time spent in the executor; zero for nodes that never started.
    pub duration: Duration,
}

/// How many nodes ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub ran: usize,
    pub cached: usize,
    pub up_to_date: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_run: usize,
    pub cancelled: usize,
}

/// Every node of a run, in the DAG's node order (stable whatever the timing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// One entry per node, ordered by DAG index.
    pub nodes: Vec<NodeResult>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
    /// True when the run was stopped by its cancellation token.
    pub interrupted: bool,
}

impl Summary {
    /// Nodes whose executor reported a failure.
    pub fn failed(&self) -> Vec<&NodeResult> {
        self.with(|s| matches!(s, Status::Failed { .. }))
    }

    /// Nodes that never started because the run was cancelled.
    pub fn cancelled(&self) -> Vec<&NodeResult> {
        self.with(|s| matches!(s, Status::Cancelled))
    }

    /// Nodes skipped because something they depend on failed.
    pub fn skipped(&self) -> Vec<&NodeResult> {
        self.with(|s| matches!(s, Status::Skipped { .. }))
    }

    /// The most serious class among the failed nodes, if any failed.
    pub fn worst_failure(&self) -> Option<FailureClass> {
        self.nodes
            .iter()
            .filter_map(|n| match n.status {
                Status::Failed { class, .. } => Some(class),
                _ => None,
            })
            .max()
    }

    /// True when every node ran, was cached or was up to date.
    pub fn is_success(&self) -> bool {
        self.nodes.iter().all(|n| n.status.is_success())
    }

    /// Number of nodes in each status.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for n in &self.nodes {
            let slot = match n.status {
                Status::Ran { .. } => &mut c.ran,
                Status::Cached { .. } => &mut c.cached,
                Status::UpToDate { .. } => &mut c.up_to_date,
                Status::Failed { .. } => &mut c.failed,
                Status::Skipped { .. } => &mut c.skipped,
                Status::NotRun => &mut c.not_run,
                Status::Cancelled => &mut c.cancelled,
            };
            *slot += 1;
        }
        c
    }

    fn with(&self, pred: impl Fn(&Status) -> bool) -> Vec<&NodeResult> {
        self.nodes.iter().filter(|n| pred(&n.status)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(index: usize, status: Status) -> NodeResult {
        NodeResult {
            index,
            label: format!("n{index}"),
            status,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn helpers_select_and_count_by_status() {
        let s = Summary {
            nodes: vec![
                node(0, Status::Ran { detail: None }),
                node(
                    1,
                    Status::Failed {
                        class: FailureClass::Work,
                        message: "boom".into(),
                    },
                ),
                node(
                    5,
                    Status::Failed {
                        class: FailureClass::Infrastructure,
                        message: "no engine".into(),
                    },
                ),
                node(
                    2,
                    Status::Skipped {
                        because: "n1".into(),
                    },
                ),
                node(3, Status::Cancelled),
                node(4, Status::Cached { detail: None }),
            ],
            elapsed: Duration::ZERO,
            interrupted: true,
        };
        assert_eq!(s.failed()[0].label, "n1");
        assert_eq!(s.worst_failure(), Some(FailureClass::Infrastructure));
        assert_eq!(s.cancelled()[0].label, "n3");
        assert_eq!(s.skipped()[0].label, "n2");
        assert!(!s.is_success());
        let c = s.counts();
        assert_eq!(
            (c.ran, c.failed, c.skipped, c.cancelled, c.cached),
            (1, 2, 1, 1, 1)
        );
    }
}
