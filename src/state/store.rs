//! [`StateStore`]: the state file together with where it lives, so callers record a node
//! without carrying the path around.

use std::path::{Path, PathBuf};

use super::state_file::{NodeRecord, StateError, StateFile};

/// The loaded state of one state directory; every change is saved at once.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    file: StateFile,
}

impl StateStore {
    /// Loads the state file in state directory `dir` (normally `.sanctuary/`); a missing
    /// file is an empty state and nothing is written until the first record.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = StateFile::path_in(dir);
        let file = StateFile::load(&path)?;
        Ok(StateStore { path, file })
    }

    /// The state as loaded and recorded so far.
    pub fn file(&self) -> &StateFile {
        &self.file
    }

    /// Where the state file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one finished node and saves the file atomically.
    pub fn record(&mut self, record: NodeRecord) -> Result<(), StateError> {
        self.file.record(&self.path, record)
    }

    /// Forgets `kind/name` and saves; returns the record it had.
    pub fn forget(&mut self, kind: &str, name: &str) -> Result<Option<NodeRecord>, StateError> {
        self.file.forget(&self.path, kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RecordResult;

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join(".sanctuary");
        let mut store = StateStore::open(&state_dir).unwrap();
        assert!(!store.path().exists(), "opening alone writes nothing");
        store
            .record(NodeRecord {
                kind: "volume".into(),
                name: "artifacts".into(),
                fingerprint: "f00d".into(),
                spec: serde_json::json!({}),
                finished_at: chrono::Utc::now(),
                result: RecordResult::UpToDate,
            })
            .unwrap();
        let reopened = StateStore::open(&state_dir).unwrap();
        assert_eq!(
            reopened
                .file()
                .get("volume", "artifacts")
                .unwrap()
                .fingerprint,
            "f00d"
        );
        let mut reopened = reopened;
        assert!(reopened.forget("volume", "artifacts").unwrap().is_some());
        assert!(StateStore::open(&state_dir)
            .unwrap()
            .file()
            .nodes
            .is_empty());
    }
}
