//! The recorded base of a sync: the last state both sides agreed on, per path, plus the
//! host-form text of agreed `.json` files (the common ancestor a three-way JSON merge needs).
//!
//! Stored as one JSON file under the state directory, replaced atomically on every save, so a
//! crash leaves the previous base, which is always safe to reconcile against again.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{RelPath, RootKind, Snapshot};
use super::side::HashCache;
use crate::fsutil;

/// The format version written into the file.
const VERSION: u32 = 1;

/// The recorded base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseState {
    /// Format version.
    pub version: u32,
    /// The agreed entries, host form.
    pub entries: Snapshot,
    /// The agreed host-form text of `.json` files.
    pub json: BTreeMap<RelPath, String>,
    /// Whether the rule synced a directory or a single file (bases written before single-file
    /// rules existed were all directories).
    #[serde(default)]
    pub root: RootKind,
    /// The rewrite rules the caches were computed under (hashes are of the host form, so
    /// other rules invalidate them).
    #[serde(default)]
    pub rules_key: String,
    /// Hash cache of the host side.
    #[serde(default)]
    pub host_cache: HashCache,
    /// Hash cache of the container side.
    #[serde(default)]
    pub container_cache: HashCache,
}

impl BaseState {
    /// The hash cache of one side.
    pub fn cache_mut(&mut self, side: super::model::SideName) -> &mut HashCache {
        match side {
            super::model::SideName::Host => &mut self.host_cache,
            super::model::SideName::Container => &mut self.container_cache,
        }
    }
}

/// Loading or saving the base failed.
#[derive(Debug, thiserror::Error)]
pub enum BaseStoreError {
    /// The file exists but could not be read.
    #[error("cannot read sync base {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a base this version understands.
    #[error("sync base {path} is corrupt or from another version")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file could not be written.
    #[error("cannot write sync base {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Where one sync rule's base lives.
#[derive(Debug, Clone)]
pub struct BaseStore {
    path: PathBuf,
}

impl BaseStore {
    /// The store for sync `name` under `state_dir` (`<state_dir>/sync/<name>.base.json`).
    pub fn new(state_dir: &Path, name: &str) -> Self {
        BaseStore {
            path: state_dir.join("sync").join(format!("{name}.base.json")),
        }
    }

    /// A store at an explicit file path.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        BaseStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded base; empty when none was recorded yet.
    pub fn load(&self) -> Result<BaseState, BaseStoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(BaseState {
                    version: VERSION,
                    ..BaseState::default()
                })
            }
            Err(source) => {
                return Err(BaseStoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| BaseStoreError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    /// Replaces the recorded base atomically.
    pub fn save(&self, state: &BaseState) -> Result<(), BaseStoreError> {
        let mut state = state.clone();
        state.version = VERSION;
        let bytes = serde_json::to_vec(&state).map_err(|e| BaseStoreError::Write {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        fsutil::write_atomic(&self.path, &bytes).map_err(|source| BaseStoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::model::{Entry, EntryKind};

    #[test]
    fn missing_base_is_empty_and_saved_base_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaseStore::new(dir.path(), "claude");
        assert!(store.load().unwrap().entries.is_empty());
        let mut state = BaseState::default();
        let p = RelPath::new("a.json").unwrap();
        state.entries.insert(
            p.clone(),
            Entry {
                kind: EntryKind::File,
                hash: "h".into(),
                size: 2,
                mode: 0o644,
                mtime: 5,
            },
        );
        state.json.insert(p, "{}".into());
        store.save(&state).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.entries, state.entries);
        assert_eq!(loaded.json, state.json);
        assert_eq!(loaded.version, VERSION);
    }

    #[test]
    fn corrupt_base_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaseStore::at(dir.path().join("b.json"));
        std::fs::write(store.path(), "{not json").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("b.json"), "{err}");
    }
}
