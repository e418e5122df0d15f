//! File names of snapshots: `<backup>-<YYYYMMDDTHHMMSSZ>-<id12>.tar.zst` for the archive,
//! `<stem>.json` for its manifest (the commit point) and `<stem>.verified` for the last
//! verification record. Only names that parse here are ever deleted by prune.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::error::BackupError;

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const TIME_LEN: usize = 16;
const ID_LEN: usize = 12;

/// Suffix of snapshot archives.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";
/// Suffix of snapshot manifests.
pub const MANIFEST_SUFFIX: &str = ".json";
/// Suffix of verification records.
pub const VERIFIED_SUFFIX: &str = ".verified";

/// The parsed stem shared by a snapshot's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStem {
    /// Backup name.
    pub backup: String,
    /// Creation time (second resolution).
    pub created: DateTime<Utc>,
    /// First 12 hex digits of the snapshot id.
    pub id12: String,
}

/// Which of a snapshot's files a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileRole {
    /// `<stem>.tar.zst`.
    Archive,
    /// `<stem>.json`.
    Manifest,
    /// `<stem>.verified`.
    Verified,
}

impl SnapshotStem {
    /// Builds the stem for a new snapshot.
    pub fn new(backup: &str, created: DateTime<Utc>, id: &str) -> Self {
        Self {
            backup: backup.to_string(),
            created,
            id12: id.chars().take(ID_LEN).collect(),
        }
    }

    /// The stem as text.
    pub fn stem(&self) -> String {
        format!(
            "{}-{}-{}",
            self.backup,
            self.created.format(TIME_FORMAT),
            self.id12
        )
    }

    /// Archive file name.
    pub fn archive_name(&self) -> String {
        format!("{}{ARCHIVE_SUFFIX}", self.stem())
    }

    /// Manifest file name.
    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.stem())
    }

    /// Verification record file name.
    pub fn verified_name(&self) -> String {
        format!("{}{VERIFIED_SUFFIX}", self.stem())
    }

    /// Parses a file name written by this module; `None` for anything else.
    pub fn parse_file_name(name: &str) -> Option<(Self, FileRole)> {
        let (stem, role) = if let Some(s) = name.strip_suffix(ARCHIVE_SUFFIX) {
            (s, FileRole::Archive)
        } else if let Some(s) = name.strip_suffix(MANIFEST_SUFFIX) {
            (s, FileRole::Manifest)
        } else if let Some(s) = name.strip_suffix(VERIFIED_SUFFIX) {
            (s, FileRole::Verified)
        } else {
            return None;
        };
        Self::parse_stem(stem).map(|s| (s, role))
    }

    fn parse_stem(stem: &str) -> Option<Self> {
        // Parse from the right: backup names may themselves contain '-'.
        let (rest, id12) = stem.rsplit_once('-')?;
        if id12.len() != ID_LEN || !id12.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (backup, time) = rest.rsplit_once('-')?;
        if time.len() != TIME_LEN || validate_backup_name(backup).is_err() {
            return None;
        }
        let created = NaiveDateTime::parse_from_str(time, TIME_FORMAT)
            .ok()?
            .and_utc();
        Some(Self {
            backup: backup.to_string(),
            created,
            id12: id12.to_string(),
        })
    }
}

/// Backup names become file-name prefixes, so they are restricted to a safe alphabet.
pub fn validate_backup_name(name: &str) -> Result<(), BackupError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_even_with_dashes_in_backup_name() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let stem = SnapshotStem::new("my-data", t, "0123456789abcdef");
        assert_eq!(
            stem.archive_name(),
            "my-data-20260304T050607Z-0123456789ab.tar.zst"
        );
        let (parsed, role) = SnapshotStem::parse_file_name(&stem.manifest_name()).unwrap();
        assert_eq!(parsed, stem);
        assert_eq!(role, FileRole::Manifest);
    }

    #[test]
    fn foreign_names_do_not_parse() {
        assert!(SnapshotStem::parse_file_name("notes.json").is_none());
        assert!(SnapshotStem::parse_file_name("x-20260304T050607Z-zzzzzzzzzzzz.tar.zst").is_none());
        assert!(SnapshotStem::parse_file_name(".tmpAbc").is_none());
    }

    #[test]
    fn backup_names_are_restricted() {
        assert!(validate_backup_name("artifacts-2").is_ok());
        assert!(validate_backup_name("../x").is_err());
        assert!(validate_backup_name("").is_err());
        assert!(validate_backup_name("a b").is_err());
    }
}
