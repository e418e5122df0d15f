//! Reading an archive back, entry by entry, with every check a restore needs: the archive's
//! own sha256 and size, each entry against the manifest (kind, metadata, content hash), and
//! path safety (no absolute paths, no `..`, no symlink pointing out of the root, nothing
//! written through a symlink, no duplicates). Verification reads into a discarding sink;
//! restore reads into an extracting one, so both apply the very same checks.
//!
//! Fifos, devices and entry types we do not know reach no sink: they are listed in
//! [`ScanResult::skipped`] with their kind, for the restore report, and so is a hard link to
//! one of them. Checked against a manifest, such an entry is a problem instead: our backups
//! never store one, so a snapshot holding one is not what was backed up. Paths in problems
//! are shown through [`display_name`], so a hostile name cannot flood a message.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

use super::entry::{check_symlink_target, normalize_path, Entry, EntryKind};
use super::error::{display_name, BackupError};
use super::hashing::HashingReader;
use super::manifest::SnapshotManifest;
use super::skipped::{Skipped, SkippedKind};

/// One thing wrong with an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The archive has another size than the manifest says.
    ArchiveSize { expected: u64, actual: u64 },
    /// The archive has another sha256 than the manifest says.
    ArchiveHash { expected: String, actual: String },
    /// The archive could not be read or decoded.
    Unreadable { detail: String },
    /// An entry differs from the manifest.
    EntryMismatch { path: String, fields: Vec<String> },
    /// The manifest lists entries the archive lacks.
    Missing { paths: Vec<String> },
    /// The archive has an entry the manifest does not list.
    Unexpected { path: String },
    /// An entry would escape or subvert the restore root.
    Unsafe { path: String, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ArchiveSize { expected, actual } => {
                write!(f, "archive is {actual} bytes, manifest says {expected}")
            }
            Problem::ArchiveHash { expected, actual } => {
                write!(f, "archive sha256 is {actual}, manifest says {expected}")
            }
            Problem::Unreadable { detail } => write!(f, "archive unreadable: {detail}"),
            Problem::EntryMismatch { path, fields } => write!(
                f,
                "{}: {} differ from the manifest",
                display_name(path),
                fields.join(", ")
            ),
            Problem::Missing { paths } => write!(
                f,
                "{} manifest entries missing from the archive (first: {})",
                paths.len(),
                display_name(paths.first().map(String::as_str).unwrap_or(""))
            ),
            Problem::Unexpected { path } => {
                write!(f, "{}: not in the manifest", display_name(path))
            }
            Problem::Unsafe { path, reason } => {
                write!(f, "{}: refused: {reason}", display_name(path))
            }
        }
    }
}

/// Receives the entries that passed the safety checks.
pub(crate) trait EntrySink {
    /// A directory.
    fn dir(&mut self, e: &Entry) -> Result<(), BackupError>;
    /// A regular file; `data` yields its content, `e.size` bytes as the archive's header
    /// declares them (a shorter content is reported as damage once read).
    fn file(&mut self, e: &Entry, data: &mut dyn Read) -> Result<(), BackupError>;
    /// A symlink (target checked).
    fn symlink(&mut self, e: &Entry) -> Result<(), BackupError>;
    /// A hard link to an earlier file (target checked).
    fn hardlink(&mut self, e: &Entry) -> Result<(), BackupError>;
}

/// A sink that keeps nothing: verification.
pub(crate) struct Discard;

impl EntrySink for Discard {
    fn dir(&mut self, _: &Entry) -> Result<(), BackupError> {
        Ok(())
    }
    fn file(&mut self, _: &Entry, _: &mut dyn Read) -> Result<(), BackupError> {
        Ok(())
    }
    fn symlink(&mut self, _: &Entry) -> Result<(), BackupError> {
        Ok(())
    }
    fn hardlink(&mut self, _: &Entry) -> Result<(), BackupError> {
        Ok(())
    }
}

/// What a scan found.
#[derive(Debug, Clone)]
pub struct ScanResult {
    /// Everything wrong; empty means the archive is good.
    pub problems: Vec<Problem>,
    /// Entries as read, in order.
    pub entries: Vec<Entry>,
    /// Entries that reached no sink (fifos, devices, unknown types), in archive order.
    pub skipped: Vec<Skipped>,
}

/// Reads a compressed archive from `reader`, checks it (against `expected` when given) and
/// feeds safe entries to `sink`. With `stop_early`, the first problem ends the scan (restore
/// has no use for the rest). Sink errors are returned as errors; damage is a [`Problem`].
pub(crate) fn scan(
    reader: impl Read,
    expected: Option<&SnapshotManifest>,
    sink: &mut dyn EntrySink,
    stop_early: bool,
) -> Result<ScanResult, BackupError> {
    let mut hashed = HashingReader::new(reader);
    let mut result = ScanResult {
        problems: Vec::new(),
        entries: Vec::new(),
        skipped: Vec::new(),
    };
    let unreadable = |e: io::Error| Problem::Unreadable {
        detail: e.to_string(),
    };
    match zstd::stream::read::Decoder::new(&mut hashed) {
        Err(e) => result.problems.push(unreadable(e)),
        Ok(decoder) => {
            let mut archive = tar::Archive::new(decoder);
            match archive.entries() {
                Err(e) => result.problems.push(unreadable(e)),
                Ok(entries) => {
                    let mut guard = Guard::default();
                    for entry in entries {
                        if stop_early && !result.problems.is_empty() {
                            break;
                        }
                        let mut entry = match entry {
                            Ok(e) => e,
                            Err(e) => {
                                result.problems.push(unreadable(e));
                                break;
                            }
                        };
                        if let Err(p) =
                            scan_entry(&mut entry, expected, &mut guard, sink, &mut result)?
                        {
                            result.problems.push(p);
                        }
                    }
                }
            }
        }
    }
    let stopped = stop_early && !result.problems.is_empty();
    // The tar end marker may come before the end of the file: hash the rest too (unless the
    // scan already failed and the caller wants no more of this copy).
    if !stopped {
        if let Err(e) = io::copy(&mut hashed, &mut io::sink()) {
            result.problems.push(unreadable(e));
        }
    }
    let (sha256, size) = hashed.finish();
    if let (Some(m), false) = (expected, stopped) {
        let n = result.entries.len();
        if m.entries.len() > n {
            result.problems.push(Problem::Missing {
                paths: m.entries[n..].iter().map(|e| e.path.clone()).collect(),
            });
        }
        if m.archive.size != size {
            result.problems.push(Problem::ArchiveSize {
                expected: m.archive.size,
                actual: size,
            });
        }
        if m.archive.sha256 != sha256 {
            result.problems.push(Problem::ArchiveHash {
                expected: m.archive.sha256.clone(),
                actual: sha256,
            });
        }
    }
    Ok(result)
}

/// Tracks what earlier entries were, to refuse writes through symlinks and duplicates.
#[derive(Default)]
struct Guard {
    kinds: HashMap<String, EntryKind>,
    /// Entries that were skipped, which a hard link may name.
    skipped: HashMap<String, SkippedKind>,
}

impl Guard {
    fn check(&self, e: &Entry) -> Result<(), String> {
        if self.kinds.contains_key(&e.path) {
            return Err("appears twice in the archive".into());
        }
        let mut prefix = String::new();
        let parts: Vec<&str> = e.path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.kinds.get(&prefix) {
                Some(EntryKind::Symlink) => {
                    return Err(format!(
                        "would be written through symlink {}",
                        display_name(&prefix)
                    ))
                }
                Some(EntryKind::File) | Some(EntryKind::Hardlink) => {
                    return Err(format!(
                        "parent {} is not a directory",
                        display_name(&prefix)
                    ))
                }
                _ => {}
            }
        }
        match e.kind {
            EntryKind::Symlink => check_symlink_target(&e.path, e.target.as_deref().unwrap_or("")),
            EntryKind::Hardlink => {
                let t = e.target.as_deref().unwrap_or("");
                match self.kinds.get(t) {
                    Some(EntryKind::File) => Ok(()),
                    _ => Err(format!(
                        "hard link to {}, which is not an earlier file",
                        display_name(t)
                    )),
                }
            }
            _ => Ok(()),
        }
    }
}

fn scan_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    expected: Option<&SnapshotManifest>,
    guard: &mut Guard,
    sink: &mut dyn EntrySink,
    result: &mut ScanResult,
) -> Result<Result<(), Problem>, BackupError> {
    let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let path = match normalize_path(&raw) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Ok(())),
        Err(reason) => return Ok(Err(Problem::Unsafe { path: raw, reason })),
    };
    let h = entry.header();
    let meta = (|| -> io::Result<(u32, u64, u64, u64)> {
        Ok((h.mode()? & 0o7777, h.uid()?, h.gid()?, h.mtime()?))
    })();
    let (mode, uid, gid, mtime) = match meta {
        Ok(m) => m,
        Err(e) => {
            return Ok(Err(Problem::Unreadable {
                detail: format!("{}: {e}", display_name(&path)),
            }))
        }
    };
    let link = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(kind) = SkippedKind::of_tar(h.entry_type()) {
        // Our own backups never store these, so in a snapshot one is not what was backed up.
        if expected.is_some() {
            return Ok(Err(Problem::Unexpected { path }));
        }
        guard.skipped.insert(path.clone(), kind);
        result.skipped.push(Skipped { path, kind });
        return Ok(Ok(()));
    }
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::Hardlink,
        // Extension headers the tar reader has already applied to the next entry.
        _ => return Ok(Ok(())),
    };
    let target = match kind {
        EntryKind::Hardlink => {
            let refused = |reason: String| {
                Ok(Err(Problem::Unsafe {
                    path: path.clone(),
                    reason,
                }))
            };
            match link.as_deref().map(|t| (t, normalize_path(t))) {
                Some((_, Ok(Some(t)))) => Some(t),
                Some((_, Ok(None))) => return refused("hard link to the root directory".into()),
                Some((t, Err(why))) => {
                    return refused(format!("hard link target {}: {why}", display_name(t)))
                }
                None => return refused("hard link without a target".into()),
            }
        }
        EntryKind::Symlink => link,
        _ => None,
    };
    // A second name of a fifo or device node is skipped with it, not refused as a link to
    // nothing.
    let skipped_target = match kind {
        EntryKind::Hardlink => target
            .as_deref()
            .and_then(|t| guard.skipped.get(t))
            .copied(),
        _ => None,
    };
    if let Some(kind) = skipped_target {
        guard.skipped.insert(path.clone(), kind);
        result.skipped.push(Skipped { path, kind });
        return Ok(Ok(()));
    }
    let mut e = Entry {
        path: path.clone(),
        kind,
        mode,
        uid,
        gid,
        mtime,
        // What the header declares, checked against what is read.
        size: if kind == EntryKind::File {
            entry.size()
        } else {
            0
        },
        sha256: None,
        target,
    };
    if let Err(reason) = guard.check(&e) {
        return Ok(Err(Problem::Unsafe { path, reason }));
    }
    guard.kinds.insert(path.clone(), kind);
    match kind {
        EntryKind::Dir => sink.dir(&e)?,
        EntryKind::Symlink => sink.symlink(&e)?,
        EntryKind::Hardlink => sink.hardlink(&e)?,
        EntryKind::File => {
            let mut data = Tap {
                inner: HashingReader::new(&mut *entry),
                failed: None,
            };
            let sunk = sink.file(&e, &mut data);
            let drained = io::copy(&mut data, &mut io::sink());
            // A read failure is damage in the archive, whatever the sink made of it.
            if let Some(detail) = data.failed.take() {
                return Ok(Err(Problem::Unreadable {
                    detail: format!("{}: {detail}", display_name(&path)),
                }));
            }
            sunk?;
            if let Err(err) = drained {
                return Ok(Err(Problem::Unreadable {
                    detail: format!("{}: {err}", display_name(&path)),
                }));
            }
            let (sha, n) = data.inner.finish();
            if n != e.size {
                return Ok(Err(Problem::Unreadable {
                    detail: format!(
                        "{}: {n} bytes of content, the header says {}",
                        display_name(&path),
                        e.size
                    ),
                }));
            }
            e.sha256 = Some(sha);
        }
    }
    let index = result.entries.len();
    result.entries.push(e);
    let e = &result.entries[index];
    if let Some(m) = expected {
        match m.entries.get(index) {
            None => return Ok(Err(Problem::Unexpected { path })),
            Some(want) => {
                let fields = differing_fields(want, e);
                if !fields.is_empty() {
                    return Ok(Err(Problem::EntryMismatch { path, fields }));
                }
            }
        }
    }
    Ok(Ok(()))
}

fn differing_fields(want: &Entry, got: &Entry) -> Vec<String> {
    let mut d = Vec::new();
    if want.path != got.path {
        d.push(format!("path (manifest has {})", display_name(&want.path)));
    }
    if want.kind != got.kind {
        d.push("kind".into());
    }
    if want.mode != got.mode {
        d.push("mode".into());
    }
    if want.uid != got.uid || want.gid != got.gid {
        d.push("owner".into());
    }
    if want.mtime != got.mtime {
        d.push("mtime".into());
    }
    if want.size != got.size {
        d.push("size".into());
    }
    if want.sha256 != got.sha256 {
        d.push("sha256".into());
    }
    if want.target != got.target {
        d.push("link target".into());
    }
    d
}

/// Remembers a read error so it is classed as archive damage, not as a sink failure.
struct Tap<R> {
    inner: R,
    failed: Option<String>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed.get_or_insert_with(|| e.to_string());
        })
    }
}
