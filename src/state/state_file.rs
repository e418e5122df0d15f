//! `state.json`: per node, the fingerprint and resolved spec sanctuary last realised, when,
//! and how it went.
//!
//! A missing file is an empty state (a fresh project). A file that cannot be parsed, or was
//! written by a newer sanctuary, is an error naming the file: it is never silently replaced,
//! because it is the only record of what exists. Every save goes through
//! [`crate::fsutil::write_atomic_deferred`], so a killed process leaves the old file or the new
//! one; the fsync that makes it durable is made when the command ends.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The file's name inside the state directory.
pub const STATE_FILE_NAME: &str = "state.json";

/// The schema version this build reads and writes.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// How a node's last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RecordResult {
    Ran,
    Cached,
    UpToDate,
    Failed { message: String },
}

/// What sanctuary knows about one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node kind: `image`, `service`, `task`, ...
    pub kind: String,
    /// Node name, unique within its kind.
    pub name: String,
    /// The node's content fingerprint (hex) when it was realised.
    pub fingerprint: String,
    /// The resolved spec that was realised, so a plan can say what changed. Never holds
    /// secret values.
    pub spec: serde_json::Value,
    /// When the node finished.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub result: RecordResult,
}

impl NodeRecord {
    /// The key this record is stored under: `kind/name`.
    pub fn key(&self) -> String {
        record_key(&self.kind, &self.name)
    }
}

fn record_key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// Schema version of the file.
    pub version: u32,
    /// Records keyed by `kind/name`, sorted so the file diffs cleanly.
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            version: STATE_SCHEMA_VERSION,
            nodes: BTreeMap::new(),
        }
    }
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {} is corrupt; it was left untouched (move it aside to start from an empty state)", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {} has schema version {found}, newer than this sanctuary understands ({STATE_SCHEMA_VERSION}); upgrade sanctuary", path.display())]
    NewerVersion { path: PathBuf, found: u32 },
    #[error("cannot serialise the state for {}", path.display())]
    Serialise {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write state file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateFile {
    /// The state file's path inside the state directory `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE_NAME)
    }

    /// Loads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateFile::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file: StateFile =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?;
        if file.version > STATE_SCHEMA_VERSION {
            return Err(StateError::NewerVersion {
                path: path.to_path_buf(),
                found: file.version,
            });
        }
        Ok(file)
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|source| StateError::Serialise {
                path: path.to_path_buf(),
                source,
            })?;
        bytes.push(b'\n');
        // Renamed into place complete at once, fsynced when the command ends: a killed run
        // never leaves half a state file, and fifty services do not wait on fifty fsyncs.
        crate::fsutil::write_atomic_deferred(path, &bytes).map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The record of `kind/name`, if any.
    pub fn get(&self, kind: &str, name: &str) -> Option<&NodeRecord> {
        self.nodes.get(&record_key(kind, name))
    }

    /// Records one finished node (replacing its previous record) and saves at once, so a
    /// crash later in the run does not forget work already done.
    pub fn record(&mut self, path: &Path, record: NodeRecord) -> Result<(), StateError> {
        self.nodes.insert(record.key(), record);
        self.save(path)
    }

    /// Forgets `kind/name` (after it was destroyed) and saves at once. Returns the old record.
    pub fn forget(
        &mut self,
        path: &Path,
        kind: &str,
        name: &str,
    ) -> Result<Option<NodeRecord>, StateError> {
        let old = self.nodes.remove(&record_key(kind, name));
        if old.is_some() {
            self.save(path)?;
        }
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, fp: &str) -> NodeRecord {
        NodeRecord {
            kind: "task".into(),
            name: name.into(),
            fingerprint: fp.into(),
            spec: serde_json::json!({"run": "make"}),
            finished_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            result: RecordResult::Ran,
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::load(&StateFile::path_in(dir.path())).unwrap();
        assert_eq!(s, StateFile::default());
    }

    #[test]
    fn record_saves_at_once_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_in(&dir.path().join(".sanctuary"));
        let mut s = StateFile::load(&path).unwrap();
        s.record(&path, record("build", "aa")).unwrap();
        s.record(&path, record("build", "bb")).unwrap();
        let mut failed = record("test", "cc");
        failed.result = RecordResult::Failed {
            message: "exit 1".into(),
        };
        s.record(&path, failed.clone()).unwrap();
        let back = StateFile::load(&path).unwrap();
        assert_eq!(back.get("task", "build").unwrap().fingerprint, "bb");
        assert_eq!(back.get("task", "test"), Some(&failed));
        assert_eq!(back.nodes.len(), 2);

        let mut back = back;
        assert!(back.forget(&path, "task", "build").unwrap().is_some());
        assert!(StateFile::load(&path)
            .unwrap()
            .get("task", "build")
            .is_none());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_in(dir.path());
        std::fs::write(&path, "{\"version\": 1, \"nodes\": ").unwrap();
        let err = StateFile::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"version\": 1, \"nodes\": "
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_in(dir.path());
        std::fs::write(&path, r#"{"version": 99, "nodes": {}}"#).unwrap();
        assert!(matches!(
            StateFile::load(&path).unwrap_err(),
            StateError::NewerVersion { found: 99, .. }
        ));
    }
}
