//! Verifying snapshots in a copy. Quick: the archive's size and sha256 against its manifest.
//! Full: that, plus decompressing every entry and checking path, kind, metadata and content
//! hash against the manifest. The outcome is recorded beside the snapshot
//! (`<stem>.verified`) so listings and retention know which snapshots are known good.

use chrono::{DateTime, Utc};

use super::catalog::{list_snapshots, read_manifest, SnapshotInfo};
use super::error::BackupError;
use super::hashing::hash_reader;
use super::manifest::{VerificationRecord, VerifyLevel};
use super::scan::{scan, Discard, Problem};
use super::store::Store;

/// The outcome of verifying one snapshot in one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// The copy.
    pub copy: String,
    /// The snapshot id.
    pub snapshot: String,
    /// Quick or full.
    pub level: VerifyLevel,
    /// Everything wrong; empty means good.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the snapshot passed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies one snapshot and records the outcome in the copy.
pub fn verify_snapshot(
    store: &dyn Store,
    info: &SnapshotInfo,
    level: VerifyLevel,
    now: DateTime<Utc>,
) -> Result<VerifyReport, BackupError> {
    let manifest = read_manifest(store, info)?;
    let problems = match store.open(&info.archive_name) {
        Err(e) => vec![Problem::Unreadable {
            detail: e.to_string(),
        }],
        Ok(reader) => match level {
            VerifyLevel::Quick => match hash_reader(reader) {
                Err(e) => vec![Problem::Unreadable {
                    detail: e.to_string(),
                }],
                Ok((sha, size)) => {
                    let mut p = Vec::new();
                    if size != manifest.archive.size {
                        p.push(Problem::ArchiveSize {
                            expected: manifest.archive.size,
                            actual: size,
                        });
                    }
                    if sha != manifest.archive.sha256 {
                        p.push(Problem::ArchiveHash {
                            expected: manifest.archive.sha256.clone(),
                            actual: sha,
                        });
                    }
                    p
                }
            },
            VerifyLevel::Full => scan(reader, Some(&manifest), &mut Discard, false)?.problems,
        },
    };
    let record = VerificationRecord {
        at: now,
        level,
        ok: problems.is_empty(),
        problems: problems.iter().map(|p| p.to_string()).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    store.put_bytes(&info.verified_name, &bytes)?;
    Ok(VerifyReport {
        copy: store.describe(),
        snapshot: info.id.clone(),
        level,
        problems,
    })
}

/// Verifies every committed snapshot (of `backup`, or all) in a copy.
pub fn verify_all(
    store: &dyn Store,
    backup: Option<&str>,
    level: VerifyLevel,
    now: DateTime<Utc>,
) -> Result<Vec<VerifyReport>, BackupError> {
    let catalog = list_snapshots(store, now)?;
    catalog
        .snapshots
        .iter()
        .filter(|s| backup.is_none_or(|b| s.backup == b))
        .map(|s| verify_snapshot(store, s, level, now))
        .collect()
}
