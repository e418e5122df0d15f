//! Restoring a snapshot, safely.
//!
//! The snapshot is looked up across the given copies in order. Each candidate copy is read
//! once into a fresh staging directory created beside the target, with every check of
//! [`scan`](super::scan) applied on the way: the archive sha256 and size, every entry
//! against the manifest, and path safety. Any problem discards the staging directory, is
//! reported, and the next copy is tried; the target is untouched until one copy passed. Then
//! the staging directory is swapped in (atomically with `RENAME_EXCHANGE` where the file
//! system supports it, else rename old aside, rename staging in) and the old tree removed.
//!
//! Archives made by other tools (`tar --zstd -cf`) have no manifest: they restore after the
//! same safety checks, and the report says they are unverified. Their setuid and setgid
//! bits are cleared unless the caller keeps them ([`SpecialBits`]); a snapshot's are
//! restored as its manifest records them.
//!
//! Fifos, device nodes and unknown entry types are never restored. In an archive made by
//! another tool they are skipped and the report lists each with its kind
//! ([`RestoreReport::skipped`]); a snapshot holding one fails verification, as our backups
//! never store them. The tar stream of such an archive for a volume is written anew from the
//! checked entries, so the engine that unpacks it sees none of them either.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::catalog::{list_snapshots, read_manifest, SnapshotInfo};
use super::error::BackupError;
use super::extract::Extractor;
use super::manifest::SnapshotManifest;
use super::retar::Retar;
use super::scan::{scan, Discard, EntrySink, ScanResult};
use super::skipped::Skipped;
use super::special_bits::{ClearSetid, SpecialBits};
use super::stop::{Stop, StopReader};
use super::store::Store;
use crate::debris::Debris;
use crate::fsutil;

/// Which snapshot of a backup to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest snapshot found in any copy.
    Latest,
    /// The newest snapshot that passes verification in some copy: older snapshots are tried
    /// in turn when every copy of a newer one is damaged (disaster recovery).
    NewestGood,
    /// The snapshot whose id starts with this prefix.
    Id(String),
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    /// The snapshot id; `None` for a foreign archive.
    pub snapshot: Option<String>,
    /// The copy (or archive path) that was restored.
    pub from: String,
    /// Whether the content was checked against a manifest.
    pub verified: bool,
    /// Copies that were tried and refused, with the reason.
    pub rejected_copies: Vec<String>,
    /// Newer snapshots passed over because no copy of them was usable
    /// ([`Selector::NewestGood`] only), newest first.
    pub passed_over: Vec<String>,
    /// Entries restored.
    pub entries: usize,
    /// Whether file owners were restored (needs root).
    pub ownership_restored: bool,
    /// Entries not restored (fifos, devices, unknown entry types), in archive order.
    pub skipped: Vec<Skipped>,
    /// Files whose setuid/setgid bits were cleared (archives without a manifest, unless
    /// [`SpecialBits::Keep`]), in archive order.
    pub special_bits_cleared: Vec<String>,
    /// The old tree, if it could not be removed after the swap.
    pub leftover: Option<PathBuf>,
}

impl RestoreReport {
    /// The report of a restore from `from` that read the entries in `result` and cleared
    /// the bits of `cleared`; verified against a manifest exactly when it restored a
    /// `snapshot`.
    fn new(
        snapshot: Option<&str>,
        from: String,
        (result, cleared): (ScanResult, Vec<String>),
        ownership_restored: bool,
        leftover: Option<PathBuf>,
    ) -> Self {
        RestoreReport {
            snapshot: snapshot.map(str::to_string),
            from,
            verified: snapshot.is_some(),
            rejected_copies: Vec::new(),
            passed_over: Vec::new(),
            entries: result.entries.len(),
            ownership_restored,
            skipped: result.skipped,
            special_bits_cleared: cleared,
            leftover,
        }
    }
}

/// Restores a snapshot of `backup` into the directory `target`, trying `copies` in order.
/// When `stop` is requested before the swap, the restore ends with [`BackupError::Stopped`],
/// its staging directory removed and the target untouched.
pub fn restore_into_dir(
    copies: &[&dyn Store],
    backup: &str,
    which: &Selector,
    target: &Path,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<RestoreReport, BackupError> {
    or_stopped(stop, into_dir(copies, backup, which, target, now, stop))
}

/// `result`, or [`BackupError::Stopped`] when it failed because `stop` was requested.
fn or_stopped<T>(stop: &Stop, result: Result<T, BackupError>) -> Result<T, BackupError> {
    match result {
        Err(_) if stop.requested() => Err(BackupError::Stopped),
        other => other,
    }
}

fn into_dir(
    copies: &[&dyn Store],
    backup: &str,
    which: &Selector,
    target: &Path,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<RestoreReport, BackupError> {
    let (ids, mut rejected) = resolve(copies, backup, which, now)?;
    let mut passed_over = Vec::new();
    for id in &ids {
        if let Some(mut report) =
            restore_one_into_dir(copies, id, target, now, &mut rejected, stop)?
        {
            report.rejected_copies = rejected;
            report.passed_over = passed_over;
            return Ok(report);
        }
        passed_over.push(id.clone());
    }
    Err(BackupError::NoUsableCopy {
        snapshot: ids.first().cloned().unwrap_or_default(),
        failures: rejected,
    })
}

/// Tries each copy of snapshot `id`; `None` when none was usable (the reasons are added to
/// `rejected`).
fn restore_one_into_dir(
    copies: &[&dyn Store],
    id: &str,
    target: &Path,
    now: DateTime<Utc>,
    rejected: &mut Vec<String>,
    stop: &Stop,
) -> Result<Option<RestoreReport>, BackupError> {
    for (store, info) in holders(copies, id, now, rejected) {
        if stop.requested() {
            return Err(BackupError::Stopped);
        }
        let manifest = match read_manifest(store, &info) {
            Ok(m) => m,
            Err(e) => {
                rejected.push(format!("{}: {e}", store.describe()));
                continue;
            }
        };
        let reader = match store.open(&info.archive_name) {
            Ok(r) => r,
            Err(e) => {
                rejected.push(format!("{}: {e}", store.describe()));
                continue;
            }
        };
        // A verified snapshot's bits are what our own backup recorded.
        let staged = extract_to_staging(reader, Some(&manifest), target, SpecialBits::Keep, stop)?;
        match staged {
            Err(problems) => {
                rejected.push(format!("{}: {}", store.describe(), problems.join("; ")));
            }
            Ok(staged) => {
                let leftover = swap_into_place(&staged.dir, target)?;
                return Ok(Some(RestoreReport::new(
                    Some(id),
                    store.describe(),
                    (staged.result, staged.cleared),
                    staged.owners,
                    leftover,
                )));
            }
        }
    }
    Ok(None)
}

fn open_foreign(archive: &Path) -> Result<BufReader<File>, BackupError> {
    File::open(archive)
        .map(BufReader::new)
        .map_err(|source| BackupError::ReadCopy {
            copy: archive.display().to_string(),
            name: archive.display().to_string(),
            source,
        })
}

/// Restores a `.tar.zst` made by another tool (no manifest of ours) into `target`. It must be
/// readable to the end and pass the path-safety checks; `bits` says whether setuid and
/// setgid bits on its files survive. The report marks it unverified.
pub fn restore_foreign_archive(
    archive: &Path,
    target: &Path,
    bits: SpecialBits,
    stop: &Stop,
) -> Result<RestoreReport, BackupError> {
    or_stopped(stop, foreign_into_dir(archive, target, bits, stop))
}

fn foreign_into_dir(
    archive: &Path,
    target: &Path,
    bits: SpecialBits,
    stop: &Stop,
) -> Result<RestoreReport, BackupError> {
    let reader = open_foreign(archive)?;
    match extract_to_staging(Box::new(reader), None, target, bits, stop)? {
        Err(problems) => Err(BackupError::ForeignArchiveRejected {
            path: archive.to_path_buf(),
            problems,
        }),
        Ok(staged) => {
            let leftover = swap_into_place(&staged.dir, target)?;
            Ok(RestoreReport::new(
                None,
                archive.display().to_string(),
                (staged.result, staged.cleared),
                staged.owners,
                leftover,
            ))
        }
    }
}

/// A decompressed tar stream of a `.tar.zst` made by another tool (for copying into a
/// container), once it was read to the end and passed the path-safety checks. The stream is
/// not the archive itself but a copy written from its checked entries into a spool file in
/// `spool_dir`: without the entries the scan skipped, with the bits `bits` leaves, and
/// immune to the archive changing after the check. The report marks it unverified: there is
/// no manifest to check it against.
pub fn foreign_tar_stream(
    archive: &Path,
    spool_dir: &Path,
    bits: SpecialBits,
    stop: &Stop,
) -> Result<(VerifiedTarStream, RestoreReport), BackupError> {
    or_stopped(stop, foreign_spooled(archive, spool_dir, bits, stop))
}

fn foreign_spooled(
    archive: &Path,
    spool_dir: &Path,
    bits: SpecialBits,
    stop: &Stop,
) -> Result<(VerifiedTarStream, RestoreReport), BackupError> {
    let spool_err = |source| BackupError::Spool {
        dir: spool_dir.to_path_buf(),
        source,
    };
    let spool = fsutil::unnamed_temp_in(spool_dir).map_err(spool_err)?;
    // Compressed like the archive, so the spool takes about the archive's room; level 1,
    // since it is read once, soon.
    let encoder = zstd::stream::write::Encoder::new(spool, 1).map_err(spool_err)?;
    // zstd wants large writes, tar makes 512-byte ones.
    let mut retar = Retar::new(BufWriter::with_capacity(1 << 20, encoder), spool_dir);
    let reader = StopReader::new(open_foreign(archive)?, stop);
    let scanned = scan_through(reader, None, &mut retar, bits)?;
    if !scanned.0.problems.is_empty() {
        return Err(BackupError::ForeignArchiveRejected {
            path: archive.to_path_buf(),
            problems: scanned.0.problems.iter().map(|p| p.to_string()).collect(),
        });
    }
    let encoder = retar
        .finish()?
        .into_inner()
        .map_err(|e| spool_err(e.into_error()))?;
    let mut spool = encoder.finish().map_err(spool_err)?;
    spool.seek(SeekFrom::Start(0)).map_err(spool_err)?;
    let decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::new(spool)).map_err(spool_err)?;
    let report = RestoreReport::new(None, archive.display().to_string(), scanned, true, None);
    Ok((VerifiedTarStream { decoder }, report))
}

/// Scans `reader` into `sink`, stopping at the first problem, with the setuid and setgid
/// bits of files cleared on the way unless `bits` keeps them; returns the scan result and
/// the files whose bits were cleared.
fn scan_through(
    reader: impl Read,
    manifest: Option<&SnapshotManifest>,
    sink: &mut dyn EntrySink,
    bits: SpecialBits,
) -> Result<(ScanResult, Vec<String>), BackupError> {
    match bits {
        SpecialBits::Keep => Ok((scan(reader, manifest, sink, true)?, Vec::new())),
        SpecialBits::Clear => {
            let mut clearing = ClearSetid::new(sink);
            let result = scan(reader, manifest, &mut clearing, true)?;
            Ok((result, clearing.cleared))
        }
    }
}

/// A decompressed tar stream that was checked in full before the first byte is handed out:
/// a verified snapshot, or the checked entries of a foreign archive. It reads from a private
/// spooled copy, so the stored archive cannot change between the check and use.
pub struct VerifiedTarStream {
    decoder: zstd::stream::read::Decoder<'static, BufReader<File>>,
}

impl Read for VerifiedTarStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder.read(buf)
    }
}

/// Produces a verified tar stream of a snapshot (for copying into a container), trying
/// `copies` in order. The compressed archive is spooled into `spool_dir`, in a file without a
/// name. `stop` ends the copying and checking with [`BackupError::Stopped`]; the stream itself
/// is read later, by the caller.
pub fn restore_tar_stream(
    copies: &[&dyn Store],
    backup: &str,
    which: &Selector,
    spool_dir: &Path,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<(VerifiedTarStream, RestoreReport), BackupError> {
    or_stopped(stop, spooled(copies, backup, which, spool_dir, now, stop))
}

fn spooled(
    copies: &[&dyn Store],
    backup: &str,
    which: &Selector,
    spool_dir: &Path,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<(VerifiedTarStream, RestoreReport), BackupError> {
    let (ids, mut rejected) = resolve(copies, backup, which, now)?;
    let mut passed_over = Vec::new();
    for id in &ids {
        if let Some((stream, mut report)) =
            spool_one(copies, id, spool_dir, now, &mut rejected, stop)?
        {
            report.rejected_copies = rejected;
            report.passed_over = passed_over;
            return Ok((stream, report));
        }
        passed_over.push(id.clone());
    }
    Err(BackupError::NoUsableCopy {
        snapshot: ids.first().cloned().unwrap_or_default(),
        failures: rejected,
    })
}

/// Spools and verifies the first usable copy of snapshot `id`; `None` when no copy was
/// usable (the reasons are added to `rejected`).
fn spool_one(
    copies: &[&dyn Store],
    id: &str,
    spool_dir: &Path,
    now: DateTime<Utc>,
    rejected: &mut Vec<String>,
    stop: &Stop,
) -> Result<Option<(VerifiedTarStream, RestoreReport)>, BackupError> {
    let spool_err = |source| BackupError::Spool {
        dir: spool_dir.to_path_buf(),
        source,
    };
    for (store, info) in holders(copies, id, now, rejected) {
        if stop.requested() {
            return Err(BackupError::Stopped);
        }
        let manifest = match read_manifest(store, &info) {
            Ok(m) => m,
            Err(e) => {
                rejected.push(format!("{}: {e}", store.describe()));
                continue;
            }
        };
        let mut spool = fsutil::unnamed_temp_in(spool_dir).map_err(spool_err)?;
        let copied = store.open(&info.archive_name).and_then(|r| {
            let mut r = StopReader::new(r, stop);
            io::copy(&mut r, &mut spool).map_err(|source| BackupError::ReadCopy {
                copy: store.describe(),
                name: info.archive_name.clone(),
                source,
            })
        });
        if let Err(e) = copied {
            if stop.requested() {
                return Err(BackupError::Stopped);
            }
            rejected.push(format!("{}: {e}", store.describe()));
            continue;
        }
        spool.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        let checked = StopReader::new(BufReader::new(&spool), stop);
        let result = scan(checked, Some(&manifest), &mut Discard, true)?;
        if stop.requested() {
            return Err(BackupError::Stopped);
        }
        if !result.problems.is_empty() {
            rejected.push(format!("{}: {}", store.describe(), join(&result)));
            continue;
        }
        spool.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        let decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::new(spool)).map_err(spool_err)?;
        let report =
            RestoreReport::new(Some(id), store.describe(), (result, Vec::new()), true, None);
        return Ok(Some((VerifiedTarStream { decoder }, report)));
    }
    Ok(None)
}

/// The full ids the selector means, across all copies, in the order to try them: one id,
/// except for [`Selector::NewestGood`], which gives every snapshot newest first. Copies that
/// cannot be listed are noted, not fatal: another copy may hold the snapshot.
fn resolve(
    copies: &[&dyn Store],
    backup: &str,
    which: &Selector,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, Vec<String>), BackupError> {
    let mut rejected = Vec::new();
    let mut found: Vec<SnapshotInfo> = Vec::new();
    for store in copies {
        match list_snapshots(*store, now) {
            Ok(c) => found.extend(c.of_backup(backup).filter(|s| s.archive_present).cloned()),
            Err(e) => rejected.push(format!("{}: {e}", store.describe())),
        }
    }
    let not_found = || BackupError::SnapshotNotFound {
        backup: backup.to_string(),
        wanted: match which {
            Selector::Latest | Selector::NewestGood => "latest".to_string(),
            Selector::Id(p) => format!("id {p}"),
        },
    };
    // Newest first; equal times are ordered by id so the choice is stable.
    found.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    let mut newest_first: Vec<String> = Vec::new();
    for s in &found {
        if !newest_first.contains(&s.id) {
            newest_first.push(s.id.clone());
        }
    }
    let ids = match which {
        Selector::Latest => vec![newest_first.first().cloned().ok_or_else(not_found)?],
        Selector::NewestGood if newest_first.is_empty() => return Err(not_found()),
        Selector::NewestGood => newest_first,
        Selector::Id(prefix) => {
            let mut ids: Vec<String> = found
                .iter()
                .filter(|s| s.id.starts_with(prefix.as_str()))
                .map(|s| s.id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            match ids.len() {
                0 => return Err(not_found()),
                1 => ids,
                _ => {
                    return Err(BackupError::AmbiguousSnapshot {
                        backup: backup.to_string(),
                        prefix: prefix.clone(),
                        candidates: ids,
                    })
                }
            }
        }
    };
    Ok((ids, rejected))
}

/// The copies holding snapshot `id`, in the caller's order.
fn holders<'a>(
    copies: &[&'a dyn Store],
    id: &str,
    now: DateTime<Utc>,
    rejected: &mut Vec<String>,
) -> Vec<(&'a dyn Store, SnapshotInfo)> {
    let mut out = Vec::new();
    for store in copies {
        if let Ok(c) = list_snapshots(*store, now) {
            if let Some(info) = c
                .snapshots
                .into_iter()
                .find(|s| s.id == id && s.archive_present)
            {
                out.push((*store, info));
            } else {
                rejected.push(format!("{}: does not hold snapshot {id}", store.describe()));
            }
        }
    }
    out
}

fn join(result: &ScanResult) -> String {
    result
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A tree extracted into a staging directory, not yet swapped in.
struct Staged {
    dir: PathBuf,
    result: ScanResult,
    /// Files whose setuid/setgid bits were cleared.
    cleared: Vec<String>,
    /// Whether owners were restored.
    owners: bool,
}

/// Extracts into a new staging directory beside `target`, clearing setuid and setgid bits
/// unless `bits` keeps them. On problems the staging directory is removed and the problems
/// returned as `Ok(Err(..))`; I/O failures are errors.
fn extract_to_staging(
    reader: Box<dyn Read + Send>,
    manifest: Option<&SnapshotManifest>,
    target: &Path,
    bits: SpecialBits,
    stop: &Stop,
) -> Result<Result<Staged, Vec<String>>, BackupError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => {
            return Err(BackupError::BadTarget {
                path: target.to_path_buf(),
            })
        }
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BackupError::BadTarget {
            path: target.to_path_buf(),
        })?;
    if let Ok(m) = fs::symlink_metadata(target) {
        if !m.is_dir() {
            return Err(BackupError::BadTarget {
                path: target.to_path_buf(),
            });
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix(&name))
        .tempdir_in(&parent)
        .map_err(|_| BackupError::BadTarget {
            path: target.to_path_buf(),
        })?;
    let mut extractor = Extractor::new(staging.path());
    let reader = StopReader::new(reader, stop);
    let (result, cleared) = scan_through(reader, manifest, &mut extractor, bits)?;
    // Checked before the swap, the last point where stopping leaves the target as it was.
    if stop.requested() {
        return Err(BackupError::Stopped);
    }
    if !result.problems.is_empty() {
        // Dropping `staging` removes everything written so far.
        return Ok(Err(result.problems.iter().map(|p| p.to_string()).collect()));
    }
    let owners = extractor.finish()?;
    // The root keeps the mode of the tree it replaces; a new one gets the usual 0755.
    let mode = fs::metadata(target)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o755);
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(mode)).map_err(|source| {
        BackupError::Extract {
            staging: staging.path().to_path_buf(),
            entry: ".".into(),
            source,
        }
    })?;
    Ok(Ok(Staged {
        dir: staging.keep(),
        result,
        cleared,
        owners,
    }))
}

/// The start of the names of the staging directories (and of the old trees set aside) of a
/// restore into a directory named `target_name`, by this process:
/// `.<target_name>.restore.sanctuary-tmp-<pid>-`.
fn staging_prefix(target_name: &str) -> String {
    format!(".{target_name}.restore{}", crate::debris::own_prefix())
}

/// The staging directories and set-aside old trees that restores into `target` by processes
/// now gone left beside it; removed when `remove`. Nothing else beside the target is touched.
pub fn sweep_staging(target: &Path, remove: bool) -> io::Result<Debris> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(Debris::default());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let start = format!(".{}.restore{}", name.to_string_lossy(), crate::debris::MARK);
    crate::debris::sweep_where(parent, remove, |n| n.starts_with(&start))
}

/// Puts `staging` where `target` is; returns the old tree's path if it could not be removed.
fn swap_into_place(staging: &Path, target: &Path) -> Result<Option<PathBuf>, BackupError> {
    let swap_err = |source| BackupError::Swap {
        staging: staging.to_path_buf(),
        target: target.to_path_buf(),
        source,
    };
    if fs::symlink_metadata(target).is_err() {
        fs::rename(staging, target).map_err(swap_err)?;
        return Ok(None);
    }
    let old = if exchange(staging, target) {
        // After the exchange the staging path holds the old tree.
        staging.to_path_buf()
    } else {
        let mut aside = staging.as_os_str().to_owned();
        aside.push(".old");
        let aside = PathBuf::from(aside);
        fs::rename(target, &aside).map_err(swap_err)?;
        if let Err(e) = fs::rename(staging, target) {
            // Put the old tree back rather than leave the target missing.
            let _ = fs::rename(&aside, target);
            return Err(swap_err(e));
        }
        aside
    };
    match fs::remove_dir_all(&old) {
        Ok(()) => Ok(None),
        Err(_) => Ok(Some(old)),
    }
}

/// Atomically exchanges two paths where the kernel and file system allow it.
fn exchange(a: &Path, b: &Path) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).is_ok()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (a, b);
        false
    }
}
