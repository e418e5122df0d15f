//! Per-node "last success" records: `nodes/<kind>.<name>.json`.

use std::fs;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::CacheError;
use super::Cache;
use crate::fingerprint::Key;

/// The fingerprint and key of a node's last successful run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub kind: String,
    pub name: String,
    pub fingerprint: String,
    pub key: Key,
    pub recorded: DateTime<Utc>,
}

impl Cache {
    /// Records `key` as the last success of its node (atomically, replacing the previous;
    /// durable once [`crate::fsutil::flush_deferred`] runs at the end of the command).
    pub fn record_success(&self, key: &Key) -> Result<NodeRecord, CacheError> {
        let record = NodeRecord {
            kind: key.kind.clone(),
            name: key.name.clone(),
            fingerprint: key.fingerprint(),
            key: key.clone(),
            recorded: Utc::now(),
        };
        let path = self.record_path(&key.kind, &key.name);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| CacheError::WriteRecord {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        crate::fsutil::write_atomic_deferred(&path, &json)
            .map_err(|source| CacheError::WriteRecord { path, source })?;
        Ok(record)
    }

    /// The last success of node `kind`/`name`, if any. A record that cannot be parsed (a
    /// different version wrote it) counts as none: the node simply runs again.
    pub fn last_success(&self, kind: &str, name: &str) -> Result<Option<NodeRecord>, CacheError> {
        let path = self.record_path(kind, name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::ReadRecord { path, source }),
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                tracing::warn!("ignoring unreadable record {}: {e}", path.display());
                Ok(None)
            }
        }
    }

    /// The fingerprint of the last success of node `kind`/`name`, without building its full
    /// key: all an up-to-date check needs, and much cheaper for a node with many inputs.
    /// Unreadable or missing records count as none.
    pub fn last_fingerprint(&self, kind: &str, name: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Head {
            fingerprint: String,
        }
        let bytes = fs::read(self.record_path(kind, name)).ok()?;
        serde_json::from_slice::<Head>(&bytes)
            .ok()
            .map(|h| h.fingerprint)
    }

    fn record_path(&self, kind: &str, name: &str) -> PathBuf {
        self.root
            .join("nodes")
            .join(format!("{}.{}.json", file_safe(kind), file_safe(name)))
    }
}

/// Encodes a node name for use in a file name: `[A-Za-z0-9_-]` stay, anything else
/// (including `.`, so kind and name cannot run together) becomes `%XX`.
fn file_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_or_collide() {
        assert_eq!(file_safe("fetch-busybox"), "fetch-busybox");
        assert_eq!(file_safe("../x"), "%2E%2E%2Fx");
        assert_ne!(file_safe("a.b"), file_safe("a_b"));
    }
}
