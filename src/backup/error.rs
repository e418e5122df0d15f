//! The one error type of the backup module. Each variant names what was being done and to
//! what, so a message read at 3 a.m. during a restore says where to look.

use std::io;
use std::path::PathBuf;

/// Everything that can stop a backup, copy, verification, prune or restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup name cannot be used in file names.
    #[error("invalid backup name {name:?}: use letters, digits, '.', '_' or '-'")]
    InvalidName { name: String },
    /// Reading the source tree or stream failed.
    #[error("reading backup source {path}")]
    ReadSource { path: PathBuf, source: io::Error },
    /// A source path cannot be stored (not UTF-8, or escaping the source root).
    #[error("source entry {path:?} cannot be archived: {reason}")]
    BadSourceEntry { path: String, reason: String },
    /// Writing the archive (compression or the temp file) failed.
    #[error("writing archive {path}")]
    WriteArchive { path: PathBuf, source: io::Error },
    /// Writing or committing a file in a backup directory failed.
    #[error("writing {path}")]
    WriteFile { path: PathBuf, source: io::Error },
    /// Reading a file in a copy failed.
    #[error("reading {name} from copy {copy}")]
    ReadCopy {
        copy: String,
        name: String,
        source: io::Error,
    },
    /// Listing a copy failed.
    #[error("listing copy {copy}")]
    ListCopy { copy: String, source: io::Error },
    /// Deleting a file from a copy failed.
    #[error("deleting {name} from copy {copy}")]
    DeleteFromCopy {
        copy: String,
        name: String,
        source: io::Error,
    },
    /// An `rclone` command failed.
    #[error("rclone {action} on {target} failed: {detail}")]
    Rclone {
        action: String,
        target: String,
        detail: String,
    },
    /// A snapshot manifest could not be parsed.
    #[error("snapshot manifest {name} in copy {copy} is not valid: {detail}")]
    BadManifest {
        copy: String,
        name: String,
        detail: String,
    },
    /// The archive arrived at a copy with other bytes than were sent.
    #[error("copy {copy}: {name} has sha256 {actual} after copying, expected {expected}")]
    CopyMismatch {
        copy: String,
        name: String,
        expected: String,
        actual: String,
    },
    /// No copy holds a snapshot matching the request.
    #[error("no snapshot of backup {backup:?} matches {wanted}")]
    SnapshotNotFound { backup: String, wanted: String },
    /// Several snapshots match an id prefix.
    #[error("snapshot id {prefix:?} of backup {backup:?} is ambiguous: {candidates:?}")]
    AmbiguousSnapshot {
        backup: String,
        prefix: String,
        candidates: Vec<String>,
    },
    /// Every copy of the snapshot failed verification or was refused.
    #[error("no usable copy of snapshot {snapshot}: {}", failures.join("; "))]
    NoUsableCopy {
        snapshot: String,
        failures: Vec<String>,
    },
    /// The restore target's parent directory is missing or unusable.
    #[error("restore target {path} has no usable parent directory")]
    BadTarget { path: PathBuf },
    /// Writing into the staging directory failed.
    #[error("extracting {entry} into staging directory {staging}")]
    Extract {
        staging: PathBuf,
        entry: String,
        source: io::Error,
    },
    /// Swapping the staged tree into place failed; the message says where both trees are.
    #[error("swapping restored tree {staging} into {target}")]
    Swap {
        staging: PathBuf,
        target: PathBuf,
        source: io::Error,
    },
    /// A foreign archive (no manifest) is damaged or unsafe.
    #[error("archive {path} cannot be restored: {}", problems.join("; "))]
    ForeignArchiveRejected {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// Creating a temporary spool file failed.
    #[error("creating a temporary file in {dir}")]
    Spool { dir: PathBuf, source: io::Error },
}
