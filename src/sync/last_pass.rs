//! A record of the last sync pass of a rule (`<state>/sync/<name>/last-pass.json`), for
//! `sanctuary sync status`: when it ran and what it did or why it halted. Written atomically
//! after every pass that was not a dry run.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::engine::{Report, SyncError};
use crate::fsutil;

/// What the last pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPass {
    /// When it finished, RFC 3339.
    pub finished_at: String,
    /// Actions carried out.
    pub applied: usize,
    /// Actions postponed.
    pub deferred: usize,
    /// Actions that failed.
    pub failed: usize,
    /// Conflicts met (settled or not).
    pub conflicts: usize,
    /// Why the pass stopped before changing anything, if it did.
    pub halted: Option<String>,
}

impl LastPass {
    /// The record of a pass that ran.
    pub fn from_report(report: &Report) -> Self {
        LastPass {
            finished_at: chrono::Utc::now().to_rfc3339(),
            applied: report.applied.len(),
            deferred: report.deferred.len(),
            failed: report.failed.len(),
            conflicts: report.plan.conflicts.len(),
            halted: None,
        }
    }

    /// The record of a pass that ran or halted; a pass stopped by unresolved conflicts
    /// counts them, so whoever watches the records sees the conflicts.
    pub fn of(result: &Result<Report, SyncError>, why: impl FnOnce(&SyncError) -> String) -> Self {
        match result {
            Ok(report) => Self::from_report(report),
            Err(e) => {
                let mut record = Self::halted(why(e));
                if let SyncError::Conflicts { conflicts } = e {
                    record.conflicts = conflicts.len();
                }
                record
            }
        }
    }

    /// The record of a pass that halted.
    pub fn halted(why: String) -> Self {
        LastPass {
            finished_at: chrono::Utc::now().to_rfc3339(),
            applied: 0,
            deferred: 0,
            failed: 0,
            conflicts: 0,
            halted: Some(why),
        }
    }
}

/// Reading or writing the record failed.
#[derive(Debug, thiserror::Error)]
pub enum LastPassError {
    /// Reading.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The record's file in a rule's directory.
pub fn path_in(rule_dir: &Path) -> PathBuf {
    rule_dir.join("last-pass.json")
}

/// The last record, `None` when no pass ran yet (or the record is unreadable as JSON: it is
/// informational, and the next pass rewrites it).
pub fn load(rule_dir: &Path) -> Result<Option<LastPass>, LastPassError> {
    let path = path_in(rule_dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LastPassError::Read { path, source }),
    }
}

/// Replaces the record.
pub fn save(rule_dir: &Path, record: &LastPass) -> Result<(), LastPassError> {
    let path = path_in(rule_dir);
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| LastPassError::Write {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    fsutil::write_atomic(&path, &bytes).map_err(|source| LastPassError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_absent_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let rule = dir.path().join("sync/x");
        assert_eq!(load(&rule).unwrap(), None);
        let rec = LastPass::halted("root missing".into());
        save(&rule, &rec).unwrap();
        assert_eq!(load(&rule).unwrap(), Some(rec));
        std::fs::write(path_in(&rule), "{").unwrap();
        assert_eq!(load(&rule).unwrap(), None);
    }
}
