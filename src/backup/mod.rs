//! Backups: content-addressed `.tar.zst` snapshots with sha256 manifests, copies to other
//! disks or `rclone` remotes, quick and full verification, restic-style retention and a
//! restore that verifies before it touches the target and swaps the result in atomically.
//!
//! This module knows nothing of the manifest model or of Docker: a backup reads a host
//! directory or a tar stream, a restore writes a directory or yields a verified tar stream.
//!
//! Decisions worth knowing:
//! - The source root itself is not an entry: a restore gives the target the mode of the tree
//!   it replaces (0755 for a new one). Sockets, devices and fifos are skipped and reported
//!   ([`skipped`]), by a backup and by a restore of an archive made by another tool.
//! - Setuid and setgid bits are restored from a verified snapshot and cleared from the
//!   files of an archive made by another tool unless asked for ([`special_bits`]).
//! - Hard links in a tar-stream source are stored as plain files, so every entry restores on
//!   its own; hard links in archives made by other tools are restored as hard links.
//! - Symlinks must stay inside the root: absolute targets and targets that climb out are
//!   refused at restore, and a backup warns about them at once rather than at restore time.
//! - Files are the unit of change detection: the snapshot id covers paths, kinds, modes,
//!   owners, mtimes (seconds, as tar stores them), link targets and content hashes.
//! - A copy is a flat directory of files behind [`Store`]; the primary is a [`DirStore`],
//!   others may be [`DirStore`]s or [`RcloneStore`]s. Copy order is restore preference.
//!
//! The glue to the project lives apart from the library: [`targets`] maps the manifest's
//! `backup` node, [`volume_io`] reads and writes Docker volumes through a helper container,
//! [`quiesce`] stops or pauses writers, and [`runner`] puts these together for the commands.

pub mod archive;
pub mod catalog;
pub mod copies;
pub mod entry;
pub mod error;
mod extract;
pub mod hashing;
pub mod manifest;
pub mod naming;
pub mod quiesce;
pub mod rclone;
pub mod restore;
mod retar;
pub mod retention;
pub mod run_error;
pub mod runner;
pub mod scan;
pub mod skipped;
pub mod snapshot;
pub mod special_bits;
pub mod stop;
pub mod store;
pub mod sweep;
pub mod targets;
pub mod verify;
pub mod volume_io;

pub use archive::{write_archive, ArchiveOptions, ArchiveSummary, Source};
pub use catalog::{list_snapshots, Catalog, SnapshotInfo};
pub use copies::{check_321, replicate, CopyOutcome, CopyTarget, Replicated, Warning};
pub use entry::{Entry, EntryKind};
pub use error::BackupError;
pub use manifest::{SnapshotManifest, VerificationRecord, VerifyLevel};
pub use rclone::RcloneStore;
pub use restore::{
    restore_foreign_archive, restore_into_dir, restore_tar_stream, RestoreReport, Selector,
    VerifiedTarStream,
};
pub use retention::{prune, select_keep, Candidate, KeepDecision, KeepPolicy, PruneReport};
pub use scan::Problem;
pub use skipped::{Skipped, SkippedKind};
pub use snapshot::{create_snapshot, BackupOutcome, BackupReport};
pub use special_bits::SpecialBits;
pub use stop::Stop;
pub use store::{DirStore, Store, StoredFile};
pub use verify::{verify_all, verify_snapshot, VerifyReport};

#[cfg(test)]
mod tests;
