//! Generations: one record for every apply that changed something, kept in the state
//! directory as `history/000001.json`, `000002.json`, … and never rewritten.
//!
//! A generation holds what it takes to tell what was applied and to go back to it: the
//! manifest's text and hash, the git commit it came from (and whether the tree was dirty), the
//! image id every service ran, the fingerprint of every node, who applied it, when, and how it
//! ended. A record is written to a temporary, flushed, then linked under its number — a link
//! fails when the name exists, so two applies can never take one number and a record, once
//! there, is never replaced. A killed apply leaves no record or a whole one (and a temporary
//! the next command sweeps).

pub mod checkout;
pub mod drift;
pub mod follow;
mod git;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use git::{describe as git_info, who, GitInfo};

/// Directory name of the history under the state directory.
pub const DIR_NAME: &str = "history";

/// How an apply (or a rollback) recorded as a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every change was made.
    Applied,
    /// Some change failed; what did finish is in the fingerprints.
    Failed,
    /// Stopped by a signal at a safe point.
    Interrupted,
    /// Failed (a service never became ready, or a test failed after it), and
    /// `--rollback-on-failure` went back to the generation before it: the next generation
    /// records that rollback.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::RolledBack => "rolled-back",
        }
    }
}

/// One recorded apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// 1, 2, 3, … in the order they were recorded.
    pub number: u64,
    /// When the apply finished.
    pub time: DateTime<Utc>,
    /// The git `user.email` of the repository, else the login name.
    pub who: String,
    /// The command that made it (`apply`, `apply web`).
    pub command: String,
    /// The manifest's text as applied.
    pub manifest: String,
    pub manifest_sha256: String,
    /// The commit the manifest came from, when it is in a git repository.
    pub git: Option<GitInfo>,
    /// Service name → id of the image its container runs.
    pub images: BTreeMap<String, String>,
    /// Service name → id of its container, so that one recreated by hand is told apart.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    /// Node (`service.web`) → fingerprint of what was realised.
    pub fingerprints: BTreeMap<String, String>,
    pub outcome: Outcome,
    /// The backups `apply --backup` (or `rollback --with-data`) took just before it changed
    /// anything: the data as the generation before this one left it.
    #[serde(default)]
    pub backups: Vec<BackupTaken>,
    /// How long the apply took.
    pub duration_ms: u64,
    /// The generation this one went back to, when it was made by `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
}

/// A snapshot taken for a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTaken {
    /// The backup node.
    pub backup: String,
    /// The snapshot's id in the backup's copies.
    pub snapshot: String,
    /// What it holds: `volume demo-data`, `directory ./data`.
    pub source: String,
}

/// What can go wrong reading or writing the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("there is no generation {number}{}", match last { Some(l) => format!(" (the last is {l})"), None => " (nothing has been applied yet)".into() })]
    NotFound { number: u64, last: Option<u64> },
    #[error("cannot read the history in {}: {source}", dir.display())]
    Read { dir: PathBuf, source: io::Error },
    #[error("generation file {} is not a generation record: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot record generation {number} in {}: {source}", dir.display())]
    Write {
        number: u64,
        dir: PathBuf,
        source: io::Error,
    },
}

/// The history of one project.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    /// The history kept under `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> History {
        History {
            dir: state_dir.join(DIR_NAME),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:06}.json"))
    }

    /// The numbers of the recorded generations, oldest first.
    pub fn numbers(&self) -> Result<Vec<u64>, HistoryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HistoryError::Read {
                    dir: self.dir.clone(),
                    source,
                })
            }
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| HistoryError::Read {
                dir: self.dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(n) = number {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The last generation's number, if any.
    pub fn last(&self) -> Result<Option<u64>, HistoryError> {
        Ok(self.numbers()?.last().copied())
    }

    /// Generation `number`.
    pub fn get(&self, number: u64) -> Result<Generation, HistoryError> {
        let path = self.path_of(number);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(HistoryError::NotFound {
                    number,
                    last: self.last()?,
                })
            }
            Err(source) => {
                return Err(HistoryError::Read {
                    dir: self.dir.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| HistoryError::Corrupt { path, source })
    }

    /// Every generation, oldest first.
    pub fn all(&self) -> Result<Vec<Generation>, HistoryError> {
        self.numbers()?.into_iter().map(|n| self.get(n)).collect()
    }

    /// Records `generation` under the next free number, which it returns (and sets).
    pub fn record(&self, generation: &mut Generation) -> Result<u64, HistoryError> {
        let fail = |number: u64, source: io::Error| HistoryError::Write {
            number,
            dir: self.dir.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|e| fail(0, e))?;
        let mut number = self.last()?.unwrap_or(0) + 1;
        loop {
            generation.number = number;
            let bytes = serde_json::to_vec_pretty(&*generation)
                .map_err(|e| fail(number, io::Error::other(e)))?;
            let mut tmp = crate::fsutil::new_temp_in(&self.dir).map_err(|e| fail(number, e))?;
            tmp.write_all(&bytes).map_err(|e| fail(number, e))?;
            tmp.as_file().sync_all().map_err(|e| fail(number, e))?;
            // A link never replaces a name: another apply that took this number keeps it.
            match fs::hard_link(tmp.path(), self.path_of(number)) {
                Ok(()) => {
                    drop(tmp);
                    crate::fsutil::sync_dir(&self.dir);
                    return Ok(number);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => return Err(fail(number, e)),
            }
        }
    }
}

/// A unified diff of two manifest texts, or `None` when they are equal.
pub fn manifest_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(old_name, new_name)
            .to_string(),
    )
}

/// The nodes whose fingerprints differ between two generations (added, removed or changed).
pub fn changed_nodes(old: &Generation, new: &Generation) -> Vec<String> {
    let mut nodes: Vec<String> = new
        .fingerprints
        .iter()
        .filter(|(k, v)| old.fingerprints.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(
            old.fingerprints
                .keys()
                .filter(|k| !new.fingerprints.contains_key(*k))
                .cloned(),
        )
        .collect();
    nodes.sort();
    nodes
}

#[cfg(test)]
mod tests;
