//! The JSON manifest written beside each archive. It lists every entry and the archive's own
//! sha256 and size, and it is the snapshot's commit point: a snapshot exists only once its
//! manifest does. Also the small verification record kept beside it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::hashing::sha256_hex;

/// Manifest format version, bumped on incompatible changes.
pub const MANIFEST_FORMAT: u32 = 1;

/// The archive file a manifest describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// File name of the archive in the same directory.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the archive bytes, hex.
    pub sha256: String,
    /// zstd compression level used.
    pub zstd_level: i32,
}

/// Everything known about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// [`MANIFEST_FORMAT`] at write time.
    pub format: u32,
    /// Backup name.
    pub backup: String,
    /// Content id: see [`snapshot_id`].
    pub id: String,
    /// When the snapshot was taken (UTC, second resolution).
    pub created: DateTime<Utc>,
    /// Human description of the source (a directory, or a tar stream).
    pub source: String,
    /// The archive file.
    pub archive: ArchiveInfo,
    /// Entries in archive order.
    pub entries: Vec<Entry>,
}

impl SnapshotManifest {
    /// Canonical, pretty JSON (stable field order, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data structs to a Vec cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses a manifest, checking the format version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let m: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!("unsupported manifest format {}", m.format));
        }
        Ok(m)
    }

    /// Total bytes of file content.
    pub fn content_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// The snapshot id: sha256 over the canonical JSON of the entry list (paths, kinds, metadata
/// and file hashes). Identical content gives the same id whatever the time or compression.
pub fn snapshot_id(entries: &[Entry]) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        schema: &'static str,
        entries: &'a [Entry],
    }
    let key = Key {
        schema: "sanctuary-snapshot-v1",
        entries,
    };
    sha256_hex(&serde_json::to_vec(&key).unwrap_or_default())
}

/// How thorough a verification was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// Archive size and sha256 against the manifest.
    Quick,
    /// Every entry decompressed and checked.
    Full,
}

/// The result of the last verification of one snapshot in one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Quick or full.
    pub level: VerifyLevel,
    /// Whether it passed.
    pub ok: bool,
    /// What was wrong, if anything.
    #[serde(default)]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::entry::EntryKind;

    fn file(path: &str, sha: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            size: 1,
            sha256: Some(sha.into()),
            target: None,
        }
    }

    #[test]
    fn id_changes_with_content_and_metadata() {
        let a = vec![file("a", "00")];
        let b = vec![file("a", "01")];
        let mut c = a.clone();
        c[0].mode = 0o600;
        assert_eq!(snapshot_id(&a), snapshot_id(&a.clone()));
        assert_ne!(snapshot_id(&a), snapshot_id(&b));
        assert_ne!(snapshot_id(&a), snapshot_id(&c));
    }

    #[test]
    fn manifest_json_round_trips_and_rejects_other_formats() {
        let m = SnapshotManifest {
            format: MANIFEST_FORMAT,
            backup: "b".into(),
            id: "ab".into(),
            created: DateTime::from_timestamp(0, 0).unwrap(),
            source: "dir".into(),
            archive: ArchiveInfo {
                file: "f".into(),
                size: 1,
                sha256: "00".into(),
                zstd_level: 3,
            },
            entries: vec![file("a", "00")],
        };
        assert_eq!(SnapshotManifest::from_json(&m.to_json()).unwrap(), m);
        let mut other = m.clone();
        other.format = 99;
        assert!(SnapshotManifest::from_json(&other.to_json()).is_err());
    }
}
