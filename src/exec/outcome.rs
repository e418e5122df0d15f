//! What an executor answers for one node ([`Outcome`]) and what the run records for every
//! node ([`Status`]), including the nodes the scheduler never handed to an executor.
//!
//! A failure carries its [`FailureClass`] from where it happened, so the exit code of a run
//! is derived once from its summary instead of being guessed from a message later.

use std::fmt;

/// What kind of failure ended a node; the run's exit code follows from the worst one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The work itself failed: a task's command, a test's check, a sync halted on a rule.
    Work,
    /// Something stood in the way that a person must resolve: a container of the same name
    /// that the project does not own, sync conflicts, a plan that no longer matches.
    Conflict,
    /// The machinery failed: the engine, an image build, a health check that never passed.
    Infrastructure,
    /// The run was interrupted while this node worked.
    Interrupted,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Work => "work",
            FailureClass::Conflict => "conflict",
            FailureClass::Infrastructure => "infrastructure",
            FailureClass::Interrupted => "interrupted",
        }
    }
}

/// Why a node failed: its class and a message that carries the cause chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
        }
    }

    pub fn work(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Work, message)
    }

    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Infrastructure, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Conflict, message)
    }

    pub fn interrupted() -> Self {
        Self::new(FailureClass::Interrupted, "interrupted")
    }

    /// An error and every `source` below it, joined by `: `.
    pub fn from_error(class: FailureClass, e: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(class, chain(e))
    }
}

/// `outer: inner: innermost`, skipping a source whose text the outer message already holds.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An executor's answer for one node. The optional detail is shown after the node's
/// finish line, e.g. "restored 2 outputs".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The work was done.
    Ran(Option<String>),
    /// The result was restored from the cache instead of doing the work.
    Cached(Option<String>),
    /// Nothing needed doing.
    UpToDate(Option<String>),
    /// The work failed; the failure says why and of what kind.
    Failed(Failure),
}

impl Outcome {
    /// The work was done, with nothing more to say.
    pub fn ran() -> Self {
        Outcome::Ran(None)
    }

    /// True for every outcome that lets dependents start.
    pub fn is_success(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// The final status of one node in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Executed successfully.
    Ran { detail: Option<String> },
    /// Restored from the cache.
    Cached { detail: Option<String> },
    /// Already up to date.
    UpToDate { detail: Option<String> },
    /// The executor reported a failure.
    Failed {
        class: FailureClass,
        message: String,
    },
    /// Not started because a node it depends on (directly or not) failed.
    Skipped { because: String },
    /// Not started because the run stopped at the first failure (`fail_fast`).
    NotRun,
    /// Not started because the run was cancelled (e.g. Ctrl-C).
    Cancelled,
}

impl Status {
    /// True for ran, cached and up to date.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Status::Ran { .. } | Status::Cached { .. } | Status::UpToDate { .. }
        )
    }

    /// True when an executor was handed the node (whatever it answered).
    pub fn was_started(&self) -> bool {
        self.is_success() || matches!(self, Status::Failed { .. })
    }

    /// A stable lower-case name, used in JSON events and summary tables.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Ran { .. } => "ran",
            Status::Cached { .. } => "cached",
            Status::UpToDate { .. } => "up_to_date",
            Status::Failed { .. } => "failed",
            Status::Skipped { .. } => "skipped",
            Status::NotRun => "not_run",
            Status::Cancelled => "cancelled",
        }
    }

    /// The detail, failure message or reason attached to this status, if any.
    pub fn note(&self) -> Option<String> {
        match self {
            Status::Ran { detail } | Status::Cached { detail } | Status::UpToDate { detail } => {
                detail.clone()
            }
            Status::Failed { message, .. } => Some(message.clone()),
            Status::Skipped { because } => Some(format!("because {because} failed")),
            Status::NotRun => Some("stopped after a failure".to_string()),
            Status::Cancelled => None,
        }
    }
}

impl From<Outcome> for Status {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ran(detail) => Status::Ran { detail },
            Outcome::Cached(detail) => Status::Cached { detail },
            Outcome::UpToDate(detail) => Status::UpToDate { detail },
            Outcome::Failed(f) => Status::Failed {
                class: f.class,
                message: f.message,
            },
        }
    }
}

impl fmt::Display for Status {
    /// The words a person reads in a summary table: "ran", "up to date", "not run".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().replace('_', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_statuses_and_success() {
        assert_eq!(
            Status::from(Outcome::Cached(Some("restored 2 outputs".into()))),
            Status::Cached {
                detail: Some("restored 2 outputs".into())
            }
        );
        assert!(Outcome::UpToDate(None).is_success());
        assert!(!Outcome::Failed(Failure::work("x")).is_success());
        assert!(!Status::Skipped {
            because: "a".into()
        }
        .is_success());
        assert_eq!(Status::UpToDate { detail: None }.to_string(), "up to date");
        assert_eq!(
            Status::Skipped {
                because: "a".into()
            }
            .note()
            .as_deref(),
            Some("because a failed")
        );
    }
}
