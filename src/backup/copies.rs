//! Copies of snapshots on other media, and the 3-2-1 rule.
//!
//! A copy is any [`Store`]: a directory on a second disk or mounted share, or an `rclone`
//! remote. Replicating sends the archive first, hashes it again at the destination, and
//! writes the manifest last, so the snapshot only becomes visible in the copy once its
//! archive is known to be intact there.

use std::fmt;

use chrono::{DateTime, Utc};

use super::catalog::SnapshotInfo;
use super::error::BackupError;
use super::hashing::hash_reader;
use super::manifest::{VerificationRecord, VerifyLevel};
use super::stop::{Stop, StopReader};
use super::store::{DirStore, Store};
use super::sweep::sweep_listed;
use crate::debris::Debris;

/// One place a backup is kept.
pub struct CopyTarget {
    /// The name the manifest gives the copy (`primary`, `usb`, `offsite`).
    pub name: String,
    /// The medium (`disk`, `usb`, `cloud`): copies on one medium fail together.
    pub media: String,
    /// Whether it is away from the machine's site.
    pub offsite: bool,
    /// Where the files go.
    pub store: Box<dyn Store>,
}

/// What replicating one snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The snapshot was copied and its archive hash checked at the destination.
    Copied,
    /// The copy already held the snapshot (manifest and archive of the right size).
    AlreadyPresent,
}

/// What replicating one snapshot did in one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicated {
    /// Whether the snapshot was sent.
    pub outcome: CopyOutcome,
    /// The debris of interrupted writes found in the copy and removed on the way.
    pub swept: Debris,
}

/// Copies one committed snapshot from the primary directory to `target`, removing the
/// copy's debris ([`sweep`](super::sweep)) seen in the listing it makes anyway. When `stop` is
/// requested the copy ends between files, or inside the archive's transfer or check, with
/// [`BackupError::Stopped`]; an archive sent without its manifest is removed again.
pub fn replicate(
    primary: &DirStore,
    info: &SnapshotInfo,
    target: &CopyTarget,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<Replicated, BackupError> {
    let store = target.store.as_ref();
    let present = store.list()?;
    let swept = sweep_listed(store, &present, now)?;
    let done = |outcome| Ok(Replicated { outcome, swept });
    let has = |name: &str, size: Option<u64>| {
        present
            .iter()
            .any(|f| f.name == name && size.is_none_or(|s| s == f.size))
    };
    if has(&info.manifest_name, None) && has(&info.archive_name, Some(info.size)) {
        return done(CopyOutcome::AlreadyPresent);
    }
    let manifest = super::catalog::read_manifest(primary, info)?;
    if stop.requested() {
        return Err(BackupError::Stopped);
    }
    let sent = send_archive(primary, info, store, &manifest.archive.sha256, stop);
    if let Err(e) = sent {
        let stopped = stop.requested();
        if stopped || matches!(e, BackupError::CopyMismatch { .. }) {
            // A cut or bad archive is of no use, and without its manifest it would only be an
            // orphan. Other failures (an unreachable remote) would fail the removal too.
            let _ = store.remove(&info.archive_name);
        }
        return Err(if stopped { BackupError::Stopped } else { e });
    }
    store.put_file(&info.manifest_name, &primary.path_of(&info.manifest_name))?;
    let record = VerificationRecord {
        at: now,
        level: VerifyLevel::Quick,
        ok: true,
        problems: Vec::new(),
    };
    store.put_bytes(
        &info.verified_name,
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )?;
    done(CopyOutcome::Copied)
}

/// Sends the archive of `info` to `store` and hashes it there again, expecting `sha256`.
fn send_archive(
    primary: &DirStore,
    info: &SnapshotInfo,
    store: &dyn Store,
    sha256: &str,
    stop: &Stop,
) -> Result<(), BackupError> {
    store.put_file(&info.archive_name, &primary.path_of(&info.archive_name))?;
    if stop.requested() {
        return Err(BackupError::Stopped);
    }
    let reader = StopReader::new(store.open(&info.archive_name)?, stop);
    let (sha, _) = hash_reader(reader).map_err(|source| BackupError::ReadCopy {
        copy: store.describe(),
        name: info.archive_name.clone(),
        source,
    })?;
    if sha != sha256 {
        return Err(BackupError::CopyMismatch {
            copy: store.describe(),
            name: info.archive_name.clone(),
            expected: sha256.to_string(),
            actual: sha,
        });
    }
    Ok(())
}

/// A way a set of copies falls short of 3-2-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Fewer than three copies.
    TooFewCopies { have: usize },
    /// Fewer than two distinct media.
    TooFewMedia { have: usize },
    /// No copy is offsite.
    NoOffsite,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TooFewCopies { have } => {
                write!(
                    f,
                    "only {have} cop{} (3-2-1 wants 3)",
                    if *have == 1 { "y" } else { "ies" }
                )
            }
            Warning::TooFewMedia { have } => {
                write!(f, "copies on only {have} medium (3-2-1 wants 2)")
            }
            Warning::NoOffsite => write!(f, "no offsite copy (3-2-1 wants 1)"),
        }
    }
}

/// Checks the 3-2-1 rule over all copies of a backup, the primary included.
pub fn check_321(copies: &[CopyTarget]) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if copies.len() < 3 {
        warnings.push(Warning::TooFewCopies { have: copies.len() });
    }
    let mut media: Vec<&str> = copies.iter().map(|c| c.media.as_str()).collect();
    media.sort_unstable();
    media.dedup();
    if media.len() < 2 {
        warnings.push(Warning::TooFewMedia { have: media.len() });
    }
    if !copies.iter().any(|c| c.offsite) {
        warnings.push(Warning::NoOffsite);
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, media: &str, offsite: bool) -> CopyTarget {
        CopyTarget {
            name: name.into(),
            media: media.into(),
            offsite,
            store: Box::new(DirStore::new(format!("/nonexistent/{name}"))),
        }
    }

    #[test]
    fn three_two_one_is_satisfied_by_the_design_example() {
        let copies = vec![
            target("primary", "disk", false),
            target("usb", "usb", false),
            target("offsite", "cloud", true),
        ];
        assert!(check_321(&copies).is_empty());
    }

    #[test]
    fn each_shortfall_is_reported() {
        let copies = vec![target("a", "disk", false), target("b", "disk", false)];
        assert_eq!(
            check_321(&copies),
            vec![
                Warning::TooFewCopies { have: 2 },
                Warning::TooFewMedia { have: 1 },
                Warning::NoOffsite
            ]
        );
        assert_eq!(
            Warning::TooFewCopies { have: 1 }.to_string(),
            "only 1 copy (3-2-1 wants 3)"
        );
    }
}
