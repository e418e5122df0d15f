//! The metadata record of one cache entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Key;

/// What `objects/<fp[0..2]>/<fp>.json` holds; its presence commits the entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub fingerprint: String,
    /// The full key, so `why` can diff against it.
    pub key: Key,
    pub created: DateTime<Utc>,
    /// How long the node took to produce these outputs, in milliseconds.
    pub duration_ms: u64,
    /// The archived files, sorted by path.
    pub outputs: Vec<OutputFile>,
    /// sha256 hex of the `.tar.zst` file as stored.
    pub archive_sha256: String,
    pub archive_size: u64,
    /// The node's captured output, replayed on a hit.
    pub log: String,
}

/// One archived output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// `/`-separated path relative to the project directory.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Permission bits (e.g. `0o755`).
    pub mode: u32,
}
