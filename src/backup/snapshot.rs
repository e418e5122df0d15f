//! Taking a snapshot into the primary backup directory.
//!
//! The content id decides: if a committed snapshot of this backup already has it, nothing
//! new is written. When the id is known before compressing (a spooled stream is hashed on
//! the way in; a host directory's files may all be answered by the stat cache), an
//! unchanged source is neither compressed nor, for a directory, read. Otherwise the archive
//! is written to a temp file while its entries are hashed, and the id is checked after.
//! A new archive and its manifest are both written to temporary files and fsynced; then the
//! archive is renamed into place, and the manifest after it. The manifest is the commit
//! point: a crash before it leaves temporaries named for this process, which the next command
//! sweeps ([`crate::debris`]), or, between the two renames, an orphan archive that listing
//! ignores and prune removes. A requested stop ([`Stop`](super::stop::Stop)) is honoured up
//! to the first rename.

use std::io::{BufWriter, Write};

use chrono::{DateTime, SubsecRound, Utc};

use super::archive::{prepare, ArchiveOptions, Source};
use super::catalog::{list_snapshots, SnapshotInfo};
use super::error::BackupError;
use super::manifest::{snapshot_id, ArchiveInfo, SnapshotManifest, MANIFEST_FORMAT};
use super::naming::{validate_backup_name, FileRole, SnapshotStem};
use super::skipped::Skipped;
use super::store::DirStore;
use super::store::Store;
use crate::fingerprint::StatCache;
use crate::fsutil;

/// What a backup run did.
#[derive(Debug, Clone)]
pub enum BackupOutcome {
    /// A new snapshot was committed.
    Created(SnapshotManifest),
    /// The content equals an existing snapshot; nothing was written.
    Unchanged(SnapshotInfo),
}

/// A backup run's result with anything the user should know.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// Created or unchanged.
    pub outcome: BackupOutcome,
    /// Objects not archived (devices, sockets, fifos).
    pub skipped: Vec<Skipped>,
    /// Entries a restore would refuse (symlinks pointing out of the root).
    pub warnings: Vec<String>,
    /// Whether the source was compressed into an archive (kept or dropped). False when the
    /// content id was known up front and matched an existing snapshot: for a host directory
    /// answered by the stat cache, that means no file was read.
    pub archived: bool,
}

impl BackupReport {
    /// The snapshot id (new or existing).
    pub fn id(&self) -> &str {
        match &self.outcome {
            BackupOutcome::Created(m) => &m.id,
            BackupOutcome::Unchanged(s) => &s.id,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match &self.outcome {
            BackupOutcome::Created(m) => format!(
                "created snapshot {} of {} ({} entries, {} bytes compressed)",
                &m.id[..12.min(m.id.len())],
                m.backup,
                m.entries.len(),
                m.archive.size
            ),
            BackupOutcome::Unchanged(s) => format!(
                "unchanged, snapshot {} already exists",
                &s.id[..12.min(s.id.len())]
            ),
        }
    }
}

/// Backs `source` up as a snapshot of `backup` in the directory `primary`. When `opts.stop`
/// is requested before the commit, the work ends with [`BackupError::Stopped`] and leaves
/// nothing in `primary`.
pub fn create_snapshot(
    primary: &DirStore,
    backup: &str,
    source: Source,
    opts: &ArchiveOptions,
    now: DateTime<Utc>,
) -> Result<BackupReport, BackupError> {
    match snapshot_into(primary, backup, source, opts, now) {
        // Whatever failed was cut short by the stop: that is the cause worth reporting.
        Err(_) if opts.stop.requested() => Err(BackupError::Stopped),
        result => result,
    }
}

fn snapshot_into(
    primary: &DirStore,
    backup: &str,
    source: Source,
    opts: &ArchiveOptions,
    now: DateTime<Utc>,
) -> Result<BackupReport, BackupError> {
    validate_backup_name(backup)?;
    let now = now.trunc_subsecs(0);
    let description = source.describe();
    let mut opts = opts.clone();
    if opts.spool_dir.is_none() {
        // Spool beside the archive: the system temp dir may be small.
        std::fs::create_dir_all(primary.root()).map_err(|source| BackupError::WriteFile {
            path: primary.root().to_path_buf(),
            source,
        })?;
        opts.spool_dir = Some(primary.root().to_path_buf());
    }
    let mut prepared = prepare(source, &opts)?;
    let mut cache = opts.stat_cache.as_deref().map(StatCache::load);
    if let Some(cache) = cache.as_mut() {
        prepared.hash_from_cache(cache);
        prepared.hash_missing(cache, PREHASH_SHARE, &opts.stop)?;
    }
    if let Some(id) = prepared.known_id() {
        if let Some(same) = find_existing(primary, backup, &id, now)? {
            return Ok(BackupReport {
                outcome: BackupOutcome::Unchanged(same),
                skipped: prepared.skipped().to_vec(),
                warnings: prepared.warnings().to_vec(),
                archived: false,
            });
        }
    }
    let placeholder = primary.path_of(&format!("{backup}.tar.zst"));
    let werr = |source| BackupError::WriteArchive {
        path: primary.root().to_path_buf(),
        source,
    };
    let mut tmp = fsutil::temp_beside(&placeholder).map_err(werr)?;
    let summary = {
        let tmp_path = tmp.path().to_path_buf();
        let syncer = tmp.as_file().try_clone().map_err(werr)?;
        std::thread::scope(|scope| {
            // Flush finished parts of the archive to disk while later parts are compressed,
            // so the fsync before the commit has little left to wait for.
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            scope.spawn(move || {
                while rx.recv().is_ok() {
                    let _ = syncer.sync_data();
                }
            });
            let out = BufWriter::with_capacity(
                1 << 20,
                EarlyWriteback {
                    file: tmp.as_file_mut(),
                    unsynced: 0,
                    tx,
                },
            );
            prepared.write(out, &tmp_path, &opts, cache.as_mut())
        })?
    };
    if let Some(cache) = cache.as_mut() {
        // Every file of the tree was looked up or recorded: the rest are gone.
        cache.prune_unseen();
        // The cache only saves work; failing to keep it must not fail the backup.
        if let Err(e) = cache.save() {
            tracing::warn!("{e}");
        }
    }
    let id = snapshot_id(&summary.entries);
    if let Some(same) = find_existing(primary, backup, &id, now)? {
        // Dropping `tmp` deletes the temp archive.
        return Ok(BackupReport {
            outcome: BackupOutcome::Unchanged(same.clone()),
            skipped: summary.skipped,
            warnings: summary.warnings,
            archived: true,
        });
    }
    let stem = SnapshotStem::new(backup, now, &id);
    let archive_path = primary.path_of(&stem.archive_name());
    let manifest = SnapshotManifest {
        format: MANIFEST_FORMAT,
        backup: backup.to_string(),
        id,
        created: now,
        source: description,
        archive: ArchiveInfo {
            file: stem.archive_name(),
            size: summary.size,
            sha256: summary.sha256,
            zstd_level: opts.level,
        },
        entries: summary.entries,
    };
    let manifest_path = primary.path_of(&stem.manifest_name());
    let manifest_err = |source| BackupError::WriteFile {
        path: manifest_path.clone(),
        source,
    };
    // The manifest is written and fsynced before the archive is renamed into place, so that
    // between the two renames of the commit nothing slow happens: a kill there is the only
    // way to leave an archive without its manifest.
    let mut manifest_tmp = fsutil::temp_beside(&manifest_path).map_err(manifest_err)?;
    manifest_tmp
        .write_all(&manifest.to_json())
        .and_then(|()| manifest_tmp.as_file().sync_all())
        .map_err(manifest_err)?;
    if opts.stop.requested() {
        // The last point where stopping leaves nothing behind.
        return Err(BackupError::Stopped);
    }
    fsutil::commit_atomic(tmp, &archive_path).map_err(|source| BackupError::WriteFile {
        path: archive_path.clone(),
        source,
    })?;
    fsutil::commit_atomic(manifest_tmp, &manifest_path).map_err(manifest_err)?;
    Ok(BackupReport {
        outcome: BackupOutcome::Created(manifest),
        skipped: summary.skipped,
        warnings: summary.warnings,
        archived: true,
    })
}

/// The committed snapshot of `backup` with content id `id`, if any. Only manifests whose file
/// name carries the id's prefix are read, so an unchanged backup stays cheap with a long history.
fn find_existing(
    primary: &DirStore,
    backup: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<SnapshotInfo>, BackupError> {
    let candidate = primary.list()?.into_iter().any(|f| {
        SnapshotStem::parse_file_name(&f.name).is_some_and(|(stem, role)| {
            role == FileRole::Manifest && stem.backup == backup && id.starts_with(&stem.id12)
        })
    });
    if !candidate {
        return Ok(None);
    }
    let catalog = list_snapshots(primary, now)?;
    let found = catalog.of_backup(backup).find(|s| s.id == id).cloned();
    Ok(found)
}

/// Files the stat cache cannot answer are hashed before compressing when they hold at most
/// this share of the tree's bytes; above it, a change is likely and the files are hashed
/// once, on their way into the archive.
const PREHASH_SHARE: f64 = 0.25;

/// Bytes written between requests to flush the archive to disk in the background.
const WRITEBACK_STEP: u64 = 32 << 20;

/// A file writer that asks a background thread to `fdatasync` every [`WRITEBACK_STEP`]
/// bytes. A request is dropped while one is pending: the next one covers it.
struct EarlyWriteback<'a> {
    file: &'a mut std::fs::File,
    unsynced: u64,
    tx: std::sync::mpsc::SyncSender<()>,
}

impl std::io::Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_STEP {
            self.unsynced = 0;
            let _ = self.tx.try_send(());
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
