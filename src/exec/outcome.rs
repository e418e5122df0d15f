//! What an executor answers for one node ([`Outcome`]) and what the run records for every
//! node ([`Status`]), including the nodes the scheduler never handed to an executor.

use std::fmt;

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
    /// The work failed; the message says why.
    Failed(String),
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
    Failed { message: String },
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
            Status::Failed { message } => Some(message.clone()),
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
            Outcome::Failed(message) => Status::Failed { message },
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
        assert!(!Outcome::Failed("x".into()).is_success());
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
