//! Listing, measuring and pruning the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::entry::Entry;
use super::error::CacheError;
use super::{is_fingerprint, Cache};

/// Files that belong to no committed entry (temp files of an interrupted save, an archive
/// whose metadata never landed) are removed by `gc` only once this old, so a save running
/// concurrently is never robbed of its half-written files.
const STRAY_GRACE: Duration = Duration::from_secs(3600);

/// A summary of the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub entries: usize,
    /// Archive and metadata bytes of all entries.
    pub total_bytes: u64,
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
    /// Entries per node, keyed `"<kind> <name>"`.
    pub per_node: BTreeMap<String, usize>,
    /// Metadata files that could not be read (a lookup will discard them).
    pub unreadable: usize,
}

/// One entry removed by [`Cache::gc`].
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub fingerprint: String,
    /// `"<kind> <name>"` of the node it belonged to.
    pub node: String,
    pub created: DateTime<Utc>,
    pub bytes: u64,
}

/// What [`Cache::gc`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Removed entries, oldest first.
    pub removed: Vec<Removed>,
    /// Bytes freed, stray files included.
    pub freed: u64,
    /// Stray files removed (leftovers of interrupted saves).
    pub strays: usize,
}

struct Listed {
    entry: Entry,
    bytes: u64,
}

impl Cache {
    /// Counts and measures the committed entries.
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let (listed, unreadable, _) = self.list()?;
        let mut stats = Stats {
            unreadable,
            ..Stats::default()
        };
        for item in &listed {
            stats.entries += 1;
            stats.total_bytes += item.bytes;
            let created = item.entry.created;
            stats.oldest = Some(stats.oldest.map_or(created, |o| o.min(created)));
            stats.newest = Some(stats.newest.map_or(created, |n| n.max(created)));
            *stats.per_node.entry(node_label(&item.entry)).or_default() += 1;
        }
        Ok(stats)
    }

    /// Removes entries older than `max_age`, then the oldest entries until the cache holds
    /// at most `max_size` bytes; also removes stray files older than an hour.
    pub fn gc(
        &self,
        max_size: Option<u64>,
        max_age: Option<Duration>,
    ) -> Result<GcReport, CacheError> {
        let (mut listed, _, strays) = self.list()?;
        listed.sort_by(|a, b| {
            (a.entry.created, &a.entry.fingerprint).cmp(&(b.entry.created, &b.entry.fingerprint))
        });
        let mut report = GcReport::default();
        let now = Utc::now();
        let mut total: u64 = listed.iter().map(|l| l.bytes).sum();
        for item in listed {
            let too_old = max_age.is_some_and(|age| {
                chrono::Duration::from_std(age).is_ok_and(|age| item.entry.created < now - age)
            });
            let too_big = max_size.is_some_and(|max| total > max);
            if !too_old && !too_big {
                continue;
            }
            let freed = self.remove_entry(&item.entry.fingerprint)?;
            total = total.saturating_sub(item.bytes);
            report.freed += freed;
            report.removed.push(Removed {
                node: node_label(&item.entry),
                fingerprint: item.entry.fingerprint,
                created: item.entry.created,
                bytes: freed,
            });
        }
        let cutoff = SystemTime::now() - STRAY_GRACE;
        for path in strays {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.modified().is_ok_and(|m| m < cutoff) {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        report.freed += meta.len();
                        report.strays += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(CacheError::Remove { path, source }),
                }
            }
        }
        Ok(report)
    }

    /// Committed entries, the number of unreadable metadata files, and stray files.
    fn list(&self) -> Result<(Vec<Listed>, usize, Vec<PathBuf>), CacheError> {
        let mut listed = Vec::new();
        let mut unreadable = 0;
        let mut strays = Vec::new();
        for shard in read_dir(&self.objects())? {
            if !shard.is_dir() {
                continue;
            }
            for path in read_dir(&shard)? {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if let Some(fp) = name.strip_suffix(".json").filter(|s| is_fingerprint(s)) {
                    match read_entry(&path, fp) {
                        Some(entry) => {
                            let meta_bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                            let archive_bytes = fs::metadata(self.archive_path(fp))
                                .map(|m| m.len())
                                .unwrap_or(0);
                            listed.push(Listed {
                                entry,
                                bytes: meta_bytes + archive_bytes,
                            });
                        }
                        None => unreadable += 1,
                    }
                } else if let Some(fp) = name.strip_suffix(".tar.zst").filter(|s| is_fingerprint(s))
                {
                    if !self.metadata_path(fp).exists() {
                        strays.push(path);
                    }
                } else {
                    strays.push(path);
                }
            }
        }
        Ok((listed, unreadable, strays))
    }
}

fn node_label(entry: &Entry) -> String {
    format!("{} {}", entry.key.kind, entry.key.name)
}

fn read_entry(path: &Path, fingerprint: &str) -> Option<Entry> {
    let entry: Entry = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    (entry.fingerprint == fingerprint).then_some(entry)
}

/// The paths in `dir`, sorted; an absent directory is empty.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let list_err = |source| CacheError::List {
        path: dir.to_path_buf(),
        source,
    };
    let iter = match fs::read_dir(dir) {
        Ok(i) => i,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(list_err(source)),
    };
    let mut paths = Vec::new();
    for item in iter {
        paths.push(item.map_err(list_err)?.path());
    }
    paths.sort();
    Ok(paths)
}
