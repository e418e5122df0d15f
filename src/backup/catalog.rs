//! Listing the snapshots held by one copy. Only committed snapshots (those with a manifest)
//! are listed; archives without a manifest (an interrupted backup), stray verification
//! records and stale temp files are reported as orphans for prune to clean.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::error::BackupError;
use super::manifest::{SnapshotManifest, VerificationRecord};
use super::naming::{FileRole, SnapshotStem};
use super::store::Store;

/// Orphans younger than this may belong to a backup still being written, so they are left.
pub const TEMP_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// One committed snapshot in one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// Backup name.
    pub backup: String,
    /// Full content id.
    pub id: String,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// `now - created` at listing time.
    pub age: chrono::Duration,
    /// Archive file name.
    pub archive_name: String,
    /// Manifest file name.
    pub manifest_name: String,
    /// Verification record file name.
    pub verified_name: String,
    /// Archive size per the manifest.
    pub size: u64,
    /// Number of entries.
    pub entries: usize,
    /// Whether the archive file is present in the copy.
    pub archive_present: bool,
    /// The last verification, if any ran.
    pub verified: Option<VerificationRecord>,
}

impl SnapshotInfo {
    /// Whether the last verification passed.
    pub fn verified_ok(&self) -> bool {
        self.verified.as_ref().is_some_and(|v| v.ok)
    }
}

/// A file that looks like ours but is not part of a committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// File name.
    pub name: String,
    /// Why it is an orphan.
    pub reason: String,
}

/// What one copy holds.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The copy, as [`Store::describe`] names it.
    pub copy: String,
    /// Committed snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Leftovers that prune may delete.
    pub orphans: Vec<Orphan>,
    /// Manifests that could not be read (never deleted automatically).
    pub unreadable: Vec<(String, String)>,
}

impl Catalog {
    /// Snapshots of one backup, oldest first.
    pub fn of_backup<'a>(&'a self, backup: &'a str) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        self.snapshots.iter().filter(move |s| s.backup == backup)
    }
}

/// Lists `store`, reading only committed manifests.
pub fn list_snapshots(store: &dyn Store, now: DateTime<Utc>) -> Result<Catalog, BackupError> {
    let files = store.list()?;
    let mut by_role: HashMap<FileRole, HashSet<String>> = HashMap::new();
    let mut orphans = Vec::new();
    // Leftovers younger than the grace period may belong to a backup still being written.
    let stale_names: HashSet<&str> = files
        .iter()
        .filter(|f| {
            f.modified
                .is_none_or(|m| now - DateTime::<Utc>::from(m) > TEMP_GRACE)
        })
        .map(|f| f.name.as_str())
        .collect();
    for f in &files {
        if let Some((stem, role)) = SnapshotStem::parse_file_name(&f.name) {
            by_role.entry(role).or_default().insert(stem.stem());
        } else if f.name.starts_with(".tmp") || f.name.starts_with(crate::debris::MARK) {
            // Temp files from fsutil::temp_beside (named for their writer, or by older
            // versions `.tmp…`).
            if stale_names.contains(f.name.as_str()) {
                orphans.push(Orphan {
                    name: f.name.clone(),
                    reason: "temp file left by an interrupted write".into(),
                });
            }
        }
    }
    let empty = HashSet::new();
    let manifests = by_role.get(&FileRole::Manifest).unwrap_or(&empty);
    let archives = by_role.get(&FileRole::Archive).unwrap_or(&empty);
    let records = by_role.get(&FileRole::Verified).unwrap_or(&empty);
    let mut snapshots = Vec::new();
    let mut unreadable = Vec::new();
    for f in &files {
        let Some((stem, FileRole::Manifest)) = SnapshotStem::parse_file_name(&f.name) else {
            continue;
        };
        let m = match read_manifest_named(store, &f.name) {
            Ok(m) => m,
            Err(e) => {
                unreadable.push((f.name.clone(), e.to_string()));
                continue;
            }
        };
        if m.backup != stem.backup
            || !m.id.starts_with(&stem.id12)
            || m.archive.file != stem.archive_name()
        {
            unreadable.push((
                f.name.clone(),
                "manifest does not match its file name".into(),
            ));
            continue;
        }
        let verified = if records.contains(&stem.stem()) {
            store
                .read_all(&stem.verified_name())
                .ok()
                .and_then(|b| serde_json::from_slice::<VerificationRecord>(&b).ok())
        } else {
            None
        };
        snapshots.push(SnapshotInfo {
            backup: m.backup.clone(),
            id: m.id.clone(),
            created: m.created,
            age: now - m.created,
            archive_name: stem.archive_name(),
            manifest_name: f.name.clone(),
            verified_name: stem.verified_name(),
            size: m.archive.size,
            entries: m.entries.len(),
            archive_present: archives.contains(&stem.stem()),
            verified,
        });
    }
    for (role, names) in [(FileRole::Archive, archives), (FileRole::Verified, records)] {
        for stem in names.difference(manifests) {
            let suffix = match role {
                FileRole::Archive => super::naming::ARCHIVE_SUFFIX,
                _ => super::naming::VERIFIED_SUFFIX,
            };
            let name = format!("{stem}{suffix}");
            if stale_names.contains(name.as_str()) {
                orphans.push(Orphan {
                    name,
                    reason: "no manifest: the snapshot was never committed".into(),
                });
            }
        }
    }
    orphans.sort_by(|a, b| a.name.cmp(&b.name));
    snapshots.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(Catalog {
        copy: store.describe(),
        snapshots,
        orphans,
        unreadable,
    })
}

/// Reads and parses the manifest of a listed snapshot.
pub fn read_manifest(
    store: &dyn Store,
    info: &SnapshotInfo,
) -> Result<SnapshotManifest, BackupError> {
    read_manifest_named(store, &info.manifest_name)
}

fn read_manifest_named(store: &dyn Store, name: &str) -> Result<SnapshotManifest, BackupError> {
    let bytes = store.read_all(name)?;
    SnapshotManifest::from_json(&bytes).map_err(|detail| BackupError::BadManifest {
        copy: store.describe(),
        name: name.to_string(),
        detail,
    })
}
