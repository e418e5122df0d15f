//! [`Side`] over a directory inside a running container, through the [`Backend`]'s archive
//! API and exec.
//!
//! A scan is one `copy_out` of the whole root (one round trip however many files), hashed in
//! host form in parallel. Reads are `copy_out` of one path. Writes are `copy_in` of a one-file
//! archive under a temporary name beside the target, then `mv` inside the container, so a
//! reader there never sees half a file. Owner and mode travel in the archive headers: the
//! configured owner, else the owner the path (or the sync root) already had. Deletions and
//! stats run small `sh` scripts, so the container must be running and have a POSIX shell;
//! every write first checks that no ancestor of the path is a symlink (Docker resolves paths
//! inside the container's file system, so a link could lead out of the sync root).
//!
//! The [`Side`] trait is synchronous; each call blocks on the runtime `handle`, so a
//! `ContainerSide` must be used from a thread that is not itself driving that runtime.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ignore::gitignore::Gitignore;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::container_listing::{self as listing, Listed, Record};
use super::container_tar::{self, Owner, Staged, TarItem};
use super::model::{Entry, EntryKind, RelPath, Snapshot};
use super::rewrite::{Direction, RuleSet};
use super::side::{CachedHash, HashCache, Put, PutItem, Side, SideError, Stat, RACY_WINDOW_MS};
use crate::backend::{chunks, Backend, BackendError};
use crate::debris;

/// How files written into the container are owned and permissioned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteAttrs {
    /// Owner of written files and directories; `None` keeps the path's (or the root's) owner.
    pub owner: Option<Owner>,
    /// Permission bits of written files; the executable bits still follow the source, so a
    /// sync never flips them back and forth.
    pub file_mode: Option<u32>,
}

/// A sync side rooted at a directory in a container.
pub struct ContainerSide {
    backend: Arc<dyn Backend>,
    handle: tokio::runtime::Handle,
    container: String,
    root: String,
    attrs: WriteAttrs,
    /// Owners seen by the last scan, so a rewritten file keeps its owner.
    owners: Mutex<HashMap<RelPath, Owner>>,
    root_owner: Mutex<Owner>,
    /// File content the last scan had to fetch anyway, kept for the pass's reads.
    fetched: Mutex<HashMap<RelPath, TarItem>>,
    /// Bytes of all files under the root at the last scan (decides how to fetch).
    tree_bytes: AtomicU64,
    /// Numbers this process's staging directories.
    stages: AtomicU64,
    /// Cancelled: every call in flight ends at once with an `Interrupted` error.
    stop: Option<CancellationToken>,
    /// The listing [`Side::root_exists`] made, for the scan that follows it.
    prelisted: Mutex<Option<Listing>>,
}

/// The mode bits a file gets in the container.
pub fn container_mode(source_mode: u32, file_mode: Option<u32>) -> u32 {
    match file_mode {
        Some(m) => (m & !0o111 & 0o7777) | (source_mode & 0o111),
        None => source_mode & 0o7777,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn backend_io(e: BackendError) -> io::Error {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    io::Error::other(s)
}

/// Prints `kind|size|mtime` for `$1`, or `absent`; never follows a final symlink.
const STAT_SCRIPT: &str =
    r#"if [ -L "$1" ] || [ -e "$1" ]; then stat -c '%F|%s|%Y' "$1"; else echo absent; fi"#;
/// Fails (exit 3, naming it) when any argument is a symlink.
const NO_LINKS_SCRIPT: &str =
    r#"for a in "$@"; do if [ -L "$a" ]; then echo "$a"; exit 3; fi; done"#;
/// Prints the owner of directory `$1` as `uid:gid`, then `absent`, `directory` or `other` for
/// `$2` (never following a final symlink).
const LOOK_SCRIPT: &str = r#"stat -c '%u:%g' "$1" || exit 4
if [ -L "$2" ]; then echo other; elif [ -d "$2" ]; then echo directory; elif [ -e "$2" ]; then echo other; else echo absent; fi"#;
/// Removes a file, link or empty directory; absent is fine.
const DELETE_SCRIPT: &str =
    r#"if [ -d "$1" ] && [ ! -L "$1" ]; then rmdir "$1"; else rm -f "$1"; fi"#;

impl ContainerSide {
    /// The single entry at `path`, which must be of `kind` (`wrong_kind` says otherwise).
    fn read_item(
        &self,
        path: &RelPath,
        kind: EntryKind,
        wrong_kind: &str,
    ) -> Result<container_tar::TarItem, SideError> {
        let err = |source| SideError::Read {
            path: self.show(path),
            source,
        };
        let bytes = self.copy_out(&self.abs(path)).map_err(err)?;
        match container_tar::read_single(&bytes).map_err(err)? {
            Some(item) if item.kind == kind => Ok(item),
            _ => Err(err(other(wrong_kind))),
        }
    }

    /// A side rooted at `root` (absolute) in the running container `container`.
    pub fn new(
        backend: Arc<dyn Backend>,
        handle: tokio::runtime::Handle,
        container: impl Into<String>,
        root: impl Into<String>,
        attrs: WriteAttrs,
    ) -> Self {
        let root: String = root.into();
        let trimmed = root.trim_end_matches('/');
        ContainerSide {
            backend,
            handle,
            container: container.into(),
            root: if trimmed.is_empty() {
                String::new()
            } else {
                trimmed.to_string()
            },
            attrs,
            owners: Mutex::new(HashMap::new()),
            root_owner: Mutex::new(Owner::default()),
            fetched: Mutex::new(HashMap::new()),
            tree_bytes: AtomicU64::new(0),
            stages: AtomicU64::new(0),
            stop: None,
            prelisted: Mutex::new(None),
        }
    }

    /// Makes every call end with an `Interrupted` error as soon as `stop` is cancelled,
    /// even in the middle of a transfer.
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Runs `fut` on the runtime, giving up when the stop token is cancelled.
    fn block<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> io::Result<T> {
        match &self.stop {
            None => self.handle.block_on(fut).map_err(backend_io),
            Some(stop) => self.handle.block_on(async {
                tokio::select! {
                    r = fut => r.map_err(backend_io),
                    _ = stop.cancelled() => Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted")),
                }
            }),
        }
    }

    /// The container's name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The root directory inside the container.
    pub fn root(&self) -> &str {
        if self.root.is_empty() {
            "/"
        } else {
            &self.root
        }
    }

    fn abs(&self, path: &RelPath) -> String {
        format!("{}/{}", self.root, path)
    }

    fn show(&self, path: &RelPath) -> String {
        format!("{}:{}", self.container, self.abs(path))
    }

    /// Runs `sh -c script sh args…`; the exit code and output.
    fn sh(&self, script: &str, args: &[String]) -> io::Result<(i64, String)> {
        let mut cmd = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
        cmd.extend(args.iter().cloned());
        let env = BTreeMap::new();
        let res = self.block(self.backend.exec(&self.container, &cmd, &env))?;
        Ok((res.exit_code, res.output))
    }

    /// [`ContainerSide::sh`] that runs to its end even after a stop request: moving a
    /// staged batch into place, or cleaning one up, must not be cut in half.
    fn sh_unstoppable(&self, script: &str, args: &[String]) -> io::Result<(i64, String)> {
        let mut cmd = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
        cmd.extend(args.iter().cloned());
        let env = BTreeMap::new();
        let res = self
            .handle
            .block_on(self.backend.exec(&self.container, &cmd, &env))
            .map_err(backend_io)?;
        Ok((res.exit_code, res.output))
    }

    fn copy_out(&self, abs: &str) -> io::Result<Vec<u8>> {
        self.block(self.backend.copy_out(&self.container, abs))
    }

    fn copy_in(&self, dir: &str, tar: Vec<u8>) -> io::Result<()> {
        self.block(self.backend.copy_in(&self.container, dir, tar))
    }

    /// Unpacks into directory `dir` the archive `write` produces, built on a thread of its
    /// own while it is sent, so reading and sending overlap and memory holds a few chunks.
    fn copy_in_written(
        &self,
        dir: &str,
        write: impl FnOnce(&mut chunks::ChunkWriter) -> io::Result<()> + Send,
    ) -> io::Result<()> {
        let (mut writer, stream) = chunks::channel();
        std::thread::scope(|s| {
            // The upload ending first (failed, or stopped) drops the stream, and the
            // writer's next send fails: the thread always ends.
            s.spawn(move || match write(&mut writer) {
                Ok(()) => {
                    let _ = writer.finish();
                }
                Err(e) => writer.fail(e),
            });
            self.block(self.backend.copy_in_stream(&self.container, dir, stream))
        })
    }

    fn parent_dir(&self, path: &RelPath) -> String {
        match path.parent() {
            Some(p) => self.abs(&p),
            None => self.root().to_string(),
        }
    }

    /// The owner a write to `path` should give it.
    fn owner_for(&self, path: &RelPath) -> Owner {
        if let Some(o) = self.attrs.owner {
            return o;
        }
        let known = self.owners.lock().ok().and_then(|m| {
            let mut p = Some(path.clone());
            while let Some(q) = p {
                if let Some(o) = m.get(&q) {
                    return Some(*o);
                }
                p = q.parent();
            }
            None
        });
        known.unwrap_or_else(|| self.root_owner.lock().map(|o| *o).unwrap_or_default())
    }

    fn remember_owner(&self, path: &RelPath, owner: Owner) {
        if let Ok(mut m) = self.owners.lock() {
            m.insert(path.clone(), owner);
        }
    }

    /// Refuses a write below a symlinked ancestor.
    fn check_ancestors(&self, path: &RelPath) -> Result<(), SideError> {
        let mut ancestors = Vec::new();
        let mut anc = path.parent();
        while let Some(a) = anc {
            ancestors.push(self.abs(&a));
            anc = a.parent();
        }
        if ancestors.is_empty() {
            return Ok(());
        }
        let (code, out) =
            self.sh(NO_LINKS_SCRIPT, &ancestors)
                .map_err(|source| SideError::Write {
                    path: self.show(path),
                    source,
                })?;
        match code {
            0 => Ok(()),
            3 => Err(SideError::ThroughSymlink {
                path: self.show(path),
                via: out.trim().to_string(),
            }),
            _ => Err(SideError::Write {
                path: self.show(path),
                source: other(format!(
                    "checking the parent directories failed: {}",
                    out.trim()
                )),
            }),
        }
    }
}

impl ContainerSide {
    /// The one entry at `path` (a link is recorded as a link), hashed in host form as
    /// `as_path` (which decides JSON-aware rewriting), or `None` when nothing is there. For a
    /// single-file rule: one exec and one `copy_out` of that path, nothing else is read. The
    /// root's owner is remembered, so a file created later gets it (unless `owner` is set).
    pub fn scan_path(
        &self,
        path: &RelPath,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
    ) -> Result<Option<(Entry, Option<CachedHash>)>, SideError> {
        let started = now_ms();
        let err = |source| SideError::Scan {
            path: self.show(path),
            source,
        };
        let (code, out) = self
            .sh(LOOK_SCRIPT, &[self.root().to_string(), self.abs(path)])
            .map_err(err)?;
        let mut lines = out.lines().map(str::trim);
        let (Some(owner), Some(what)) = (lines.next(), lines.next()) else {
            return Err(err(other(out.trim())));
        };
        if code != 0 {
            return Err(err(other(out.trim())));
        }
        if let (Ok(o), Ok(mut r)) = (owner.parse::<Owner>(), self.root_owner.lock()) {
            *r = o;
        }
        let item = match what {
            "absent" => return Ok(None),
            // A directory where the file should be is reported as one (reconcile decides),
            // without copying its whole tree out.
            "directory" => TarItem {
                kind: EntryKind::Dir,
                mode: 0o755,
                mtime_ms: 0,
                owner: Owner::default(),
                content: Vec::new(),
                link: String::new(),
            },
            _ => {
                let bytes = self.copy_out(&self.abs(path)).map_err(err)?;
                match container_tar::read_single(&bytes).map_err(err)? {
                    Some(item) => item,
                    None => return Ok(None),
                }
            }
        };
        self.remember_owner(path, item.owner);
        Ok(Some(entry_of(as_path, &item, to_host, cached, started)))
    }
}

/// The entry of an item read from the container, hashed in host form as `path` (a matching
/// `cached` record is trusted), and the record to cache unless it changed within the racy
/// window of a scan that started at `started`.
fn entry_of(
    path: &RelPath,
    item: &TarItem,
    to_host: Option<&RuleSet>,
    cached: Option<&CachedHash>,
    started: i64,
) -> (Entry, Option<CachedHash>) {
    let size = stored_size(item);
    let cached = cached.filter(|c| c.size == size && c.mtime == item.mtime_ms && c.ino == 0);
    let (hash, host_size) = hash_item(path, item, to_host, cached);
    let record =
        (item.kind != EntryKind::Dir && started - item.mtime_ms >= RACY_WINDOW_MS).then(|| {
            CachedHash {
                size,
                mtime: item.mtime_ms,
                ino: 0,
                hash: hash.clone(),
                host_size,
            }
        });
    let entry = Entry {
        kind: item.kind,
        hash,
        size: host_size,
        mode: item.mode,
        mtime: item.mtime_ms,
    };
    (entry, record)
}

fn hash_item(
    path: &RelPath,
    item: &TarItem,
    to_host: Option<&RuleSet>,
    cached: Option<&CachedHash>,
) -> (String, u64) {
    match item.kind {
        EntryKind::Dir => (String::new(), 0),
        EntryKind::File => {
            if let Some(c) = cached {
                return (c.hash.clone(), c.host_size);
            }
            let content = match to_host {
                Some(rules) => rules.convert(path, &item.content, Direction::ToHost),
                None => item.content.as_slice().into(),
            };
            (sha256_hex(&content), content.len() as u64)
        }
        EntryKind::Symlink => {
            let target = match to_host {
                Some(rules) => rules.apply_str(&item.link, Direction::ToHost).into_owned(),
                None => item.link.clone(),
            };
            (sha256_hex(target.as_bytes()), target.len() as u64)
        }
    }
}

/// Below this many bytes per file fetched, one archive of the whole tree costs less than a
/// round trip per file (about what Docker streams in the time of one round trip).
const ROUND_TRIP_BYTES: u64 = 2 << 20;
/// Files fetched at once when fetching one by one.
const FETCH_CONCURRENCY: usize = 8;
/// The most argument bytes one exec carries (Linux allows 128 KiB per argument and about
/// 2 MiB in all).
const MAX_EXEC_ARG_BYTES: usize = 256 << 10;

/// How a put that did not move into place is reported by the move script.
enum Unmoved {
    /// Inside (or as) the staged top directory `t<k>`.
    Dir(usize),
    /// The file `name` staged in group `g<k>`.
    File(usize, String),
}

/// One scanned path: its entry, what to cache, its owner, and the content kept for reads.
type Hashed = (RelPath, Entry, Option<CachedHash>, Owner, Option<TarItem>);

/// What the listing scripts found.
struct Listing {
    root_owner: Option<Owner>,
    /// Whether the root is a directory.
    root_is_dir: bool,
    entries: Vec<(RelPath, Listed)>,
    temps: Vec<String>,
}

impl ContainerSide {
    /// A scan from one `copy_out` of the whole tree.
    fn scan_archive(
        &self,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError> {
        let started = now_ms();
        let scan_err = |source| SideError::Scan {
            path: self.describe(),
            source,
        };
        let bytes = self
            .copy_out(&format!("{}/.", self.root))
            .map_err(scan_err)?;
        let tree = container_tar::read_tree(&bytes).map_err(scan_err)?;
        if let (Some(o), Ok(mut r)) = (tree.root_owner, self.root_owner.lock()) {
            *r = o;
        }
        let kept: Vec<&(RelPath, TarItem)> = tree
            .items
            .iter()
            .filter(|(p, item)| {
                !ignore
                    .matched_path_or_any_parents(Path::new(p.as_str()), item.kind == EntryKind::Dir)
                    .is_ignore()
            })
            .collect();
        let old: &HashCache = cache;
        let hashed: Vec<(RelPath, Entry, Option<CachedHash>, Owner)> = kept
            .par_iter()
            .map(|(path, item)| {
                let (entry, record) = entry_of(path, item, to_host, old.get(path), started);
                (path.clone(), entry, record, item.owner)
            })
            .collect();
        let mut snapshot = Snapshot::new();
        let mut new_cache = HashCache::new();
        let mut owners = HashMap::with_capacity(hashed.len());
        for (path, entry, record, owner) in hashed {
            if let Some(r) = record {
                new_cache.insert(path.clone(), r);
            }
            owners.insert(path.clone(), owner);
            snapshot.insert(path, entry);
        }
        *cache = new_cache;
        if let Ok(mut m) = self.owners.lock() {
            *m = owners;
        }
        Ok(snapshot)
    }

    /// The tree as `stat` lines; `None` when the container cannot list it that way.
    fn list(&self) -> io::Result<Option<Listing>> {
        let nonce = listing::nonce();
        let (code, out) = self.sh(
            listing::LIST_SCRIPT,
            &[
                self.root().to_string(),
                listing::stat_format(&nonce),
                listing::temp_format(&nonce),
            ],
        )?;
        if code != 0 {
            tracing::debug!(container = %self.container, code, "listing failed, reading an archive instead: {}", out.trim());
            return Ok(None);
        }
        let records = match listing::parse_records(&out, &nonce) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(container = %self.container, "{e}; reading an archive instead");
                return Ok(None);
            }
        };
        let mut found = Listing {
            root_owner: None,
            root_is_dir: false,
            entries: Vec::with_capacity(records.len()),
            temps: Vec::new(),
        };
        for record in records {
            match record {
                Record::Temp(abs) => found.temps.push(abs),
                Record::Stat(abs, Some(l)) if abs == self.root() => {
                    found.root_owner = Some(l.owner);
                    found.root_is_dir = l.kind == EntryKind::Dir;
                }
                Record::Stat(abs, Some(l)) => match listing::relative(&self.root, &abs) {
                    Some(path) => found.entries.push((path, l)),
                    None => tracing::warn!(name = %abs, "skipping an unusable container path"),
                },
                // Fifos, sockets and devices are not synced (as on the host side).
                Record::Stat(_, None) => {}
            }
        }
        Ok(Some(found))
    }

    /// Removes temporaries whose writer no longer runs (see [`crate::debris`]).
    fn sweep(&self, temps: &[String]) {
        let dead: Vec<String> = temps
            .iter()
            .filter(|abs| debris::is_orphan(abs.rsplit('/').next().unwrap_or(abs)))
            .cloned()
            .collect();
        for chunk in arg_chunks(&dead) {
            let mut args = vec!["-rf".to_string(), "--".to_string()];
            args.extend(chunk.iter().cloned());
            match self.sh(r#"rm "$@""#, &args) {
                Ok((0, _)) => {
                    tracing::info!(container = %self.container, count = chunk.len(), "removed temporaries left by an interrupted sync")
                }
                Ok((_, out)) => {
                    tracing::warn!(container = %self.container, "cannot remove temporaries left by an interrupted sync: {}", out.trim())
                }
                Err(e) => {
                    tracing::warn!(container = %self.container, "cannot remove temporaries left by an interrupted sync: {e}")
                }
            }
        }
    }

    /// A scan from a listing: files whose size and mtime match the cache are not read; the
    /// rest are fetched (see [`ContainerSide::fetch`]) and kept for this pass's reads.
    fn scan_listed(
        &self,
        found: Listing,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError> {
        let started = now_ms();
        if let (Some(o), Ok(mut r)) = (found.root_owner, self.root_owner.lock()) {
            *r = o;
        }
        self.sweep(&found.temps);
        let kept: Vec<(RelPath, Listed)> = found
            .entries
            .into_iter()
            .filter(|(p, l)| {
                !ignore
                    .matched_path_or_any_parents(Path::new(p.as_str()), l.kind == EntryKind::Dir)
                    .is_ignore()
            })
            .collect();
        let tree_bytes: u64 = kept
            .iter()
            .filter(|(_, l)| l.kind == EntryKind::File)
            .map(|(_, l)| l.size)
            .sum();
        self.tree_bytes.store(tree_bytes, Ordering::Relaxed);
        let cached_of = |p: &RelPath, l: &Listed| {
            cache
                .get(p)
                .filter(|c| c.size == l.size && c.mtime == l.mtime_ms && c.ino == 0)
                .cloned()
        };
        let need: Vec<RelPath> = kept
            .iter()
            .filter(|(p, l)| l.kind != EntryKind::Dir && cached_of(p, l).is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let mut fetched = self.fetch(&need).map_err(|source| SideError::Scan {
            path: self.describe(),
            source,
        })?;
        let rows: Vec<(RelPath, Listed, Option<CachedHash>, Option<TarItem>)> = kept
            .into_iter()
            .filter_map(|(p, l)| {
                let cached = cached_of(&p, &l);
                let item = if l.kind == EntryKind::Dir || cached.is_some() {
                    None
                } else {
                    // Gone since the listing: as if the listing had not seen it.
                    Some(fetched.remove(&p)?)
                };
                Some((p, l, cached, item))
            })
            .collect();
        let hashed: Vec<Hashed> = rows
            .into_par_iter()
            .map(|(path, l, cached, item)| {
                let (entry, record) = match &item {
                    Some(item) => entry_of(&path, item, to_host, None, started),
                    None => {
                        let (hash, size) = cached
                            .as_ref()
                            .map_or((String::new(), 0), |c| (c.hash.clone(), c.host_size));
                        let entry = Entry {
                            kind: l.kind,
                            hash,
                            size,
                            mode: l.mode,
                            mtime: l.mtime_ms,
                        };
                        (entry, cached)
                    }
                };
                let item = item.filter(|i| i.kind == EntryKind::File);
                (path, entry, record, l.owner, item)
            })
            .collect();
        let mut snapshot = Snapshot::new();
        let mut new_cache = HashCache::new();
        let mut owners = HashMap::with_capacity(hashed.len());
        let mut kept_items = HashMap::new();
        for (path, entry, record, owner, item) in hashed {
            if let Some(r) = record {
                new_cache.insert(path.clone(), r);
            }
            if let Some(item) = item {
                kept_items.insert(path.clone(), item);
            }
            owners.insert(path.clone(), owner);
            snapshot.insert(path, entry);
        }
        *cache = new_cache;
        if let Ok(mut m) = self.owners.lock() {
            *m = owners;
        }
        if let Ok(mut m) = self.fetched.lock() {
            *m = kept_items;
        }
        Ok(snapshot)
    }

    /// The entries at `paths`, read from the container: one by one (a few at a time) when
    /// they are few or small, else one archive of the whole tree from which they are taken.
    /// A path that is gone is missing from the result.
    fn fetch(&self, paths: &[RelPath]) -> io::Result<HashMap<RelPath, TarItem>> {
        if paths.is_empty() {
            return Ok(HashMap::new());
        }
        let tree = self.tree_bytes.load(Ordering::Relaxed);
        if paths.len() as u64 * ROUND_TRIP_BYTES < tree {
            return self.fetch_each(paths);
        }
        let want: std::collections::HashSet<&RelPath> = paths.iter().collect();
        let tree = self.copy_out_read(&format!("{}/.", self.root), |tar| {
            container_tar::read_tree_where(tar, |p| want.contains(p))
        })?;
        Ok(tree.items.into_iter().collect())
    }

    /// `abs` out of the container, read by `read` on a thread of its own as it arrives, so
    /// reading the archive overlaps its transfer and memory holds a few chunks of it.
    fn copy_out_read<T: Send>(
        &self,
        abs: &str,
        read: impl FnOnce(&mut chunks::ChunkReader) -> io::Result<T> + Send,
    ) -> io::Result<T> {
        use futures_util::StreamExt;
        let (tx, mut reader) = chunks::reader();
        std::thread::scope(|s| {
            // The transfer ending first (failed, stopped) drops the sender, and the reader
            // fails: the thread always ends.
            let parsed = s.spawn(move || read(&mut reader));
            let sent = self.block(async move {
                let mut stream = self.backend.copy_out_stream(&self.container, abs);
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => {
                            if !tx.send(Ok(c)).await {
                                // The reader failed; its error says why.
                                return Ok(());
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.finish().await;
                Ok(())
            });
            let parsed = parsed
                .join()
                .unwrap_or_else(|_| Err(other("reading the archive panicked")));
            // The transfer's own error is the cause of a reader's cut stream.
            sent?;
            parsed
        })
    }

    fn fetch_each(&self, paths: &[RelPath]) -> io::Result<HashMap<RelPath, TarItem>> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let backend = &self.backend;
        let container = self.container.as_str();
        let fut = stream::iter(paths.iter().map(|p| {
            let abs = self.abs(p);
            async move {
                match backend.copy_out(container, &abs).await {
                    Ok(bytes) => Ok(Some((p.clone(), bytes))),
                    Err(BackendError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }))
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect::<Vec<_>>();
        let fetched = self.block(fut)?;
        let mut out = HashMap::with_capacity(fetched.len());
        for (p, bytes) in fetched.into_iter().flatten() {
            if let Some(item) = container_tar::read_single(&bytes)? {
                out.insert(p, item);
            }
        }
        Ok(out)
    }

    /// Runs a batch script whose arguments are `fixed` then `paths`, in as few execs as the
    /// argument limit allows; the output of each.
    fn sh_chunked(
        &self,
        script: &str,
        fixed: &[String],
        paths: &[String],
    ) -> io::Result<Vec<(i64, String)>> {
        let mut outs = Vec::new();
        for chunk in arg_chunks(paths) {
            let mut args = fixed.to_vec();
            args.extend(chunk.iter().cloned());
            outs.push(self.sh(script, &args)?);
        }
        Ok(outs)
    }

    fn next_stage(&self) -> String {
        format!(
            "{}{}-stage{}",
            debris::MARK,
            std::process::id(),
            self.stages.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The size `stat` reports for an item (a symlink's is its target's length).
fn stored_size(item: &TarItem) -> u64 {
    match item.kind {
        EntryKind::Symlink => item.link.len() as u64,
        _ => item.content.len() as u64,
    }
}

/// Splits arguments into runs that fit one exec.
fn arg_chunks(args: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, a) in args.iter().enumerate() {
        if i > start && bytes + a.len() + 1 > MAX_EXEC_ARG_BYTES {
            chunks.push(&args[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += a.len() + 1;
    }
    if start < args.len() {
        chunks.push(&args[start..]);
    }
    chunks
}

impl Side for ContainerSide {
    fn describe(&self) -> String {
        format!("container directory {}:{}", self.container, self.root())
    }

    fn root_exists(&self) -> Result<bool, SideError> {
        // The listing the scan needs answers this too: one round trip instead of two. A
        // root that is missing (or a container that cannot list) is asked directly. A
        // listing from an earlier pass never stands in for this one.
        let mut prelisted = self.prelisted.lock().unwrap_or_else(|e| e.into_inner());
        *prelisted = None;
        if let Ok(Some(listing)) = self.list() {
            if listing.root_is_dir {
                *prelisted = Some(listing);
                return Ok(true);
            }
        }
        drop(prelisted);
        let (code, out) = self
            .sh(
                r#"if [ -d "$1" ]; then echo yes; else echo no; fi"#,
                &[self.root().to_string()],
            )
            .map_err(|source| SideError::Stat {
                path: self.describe(),
                source,
            })?;
        if code != 0 {
            return Err(SideError::Stat {
                path: self.describe(),
                source: other(out.trim()),
            });
        }
        Ok(out.trim() == "yes")
    }

    fn scan(
        &self,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError> {
        let scan_err = |source| SideError::Scan {
            path: self.describe(),
            source,
        };
        let prelisted = self
            .prelisted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let listed = match prelisted {
            Some(l) => Some(l),
            None => self.list().map_err(scan_err)?,
        };
        match listed {
            Some(listing) => self.scan_listed(listing, ignore, to_host, cache),
            // No `find` or `stat` that lists the tree (or a part could not be read): one
            // archive of the whole tree, as Docker reads it.
            None => self.scan_archive(ignore, to_host, cache),
        }
    }

    fn stat(&self, path: &RelPath) -> Result<Option<Stat>, SideError> {
        let err = |source| SideError::Stat {
            path: self.show(path),
            source,
        };
        let (code, out) = self.sh(STAT_SCRIPT, &[self.abs(path)]).map_err(err)?;
        let line = out.trim();
        if code != 0 {
            return Err(err(other(line)));
        }
        if line == "absent" {
            return Ok(None);
        }
        let mut parts = line.rsplitn(3, '|');
        let (Some(mtime), Some(size), Some(kind)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err(other(format!("unexpected stat output `{line}`"))));
        };
        let kind = match kind {
            "directory" => EntryKind::Dir,
            "symbolic link" => EntryKind::Symlink,
            _ => EntryKind::File,
        };
        let size = size.parse().map_err(|_| err(other(line)))?;
        let mtime: i64 = mtime.parse().map_err(|_| err(other(line)))?;
        Ok(Some(Stat {
            kind,
            size,
            mtime: mtime.saturating_mul(1000),
        }))
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>, SideError> {
        self.read_item(path, EntryKind::File, "not a regular file")
            .map(|item| item.content)
    }

    fn read_link(&self, path: &RelPath) -> Result<String, SideError> {
        self.read_item(path, EntryKind::Symlink, "not a symlink")
            .map(|item| item.link)
    }

    fn write_file(&self, path: &RelPath, bytes: &[u8], mode: u32) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let err = |source| SideError::Write {
            path: self.show(path),
            source,
        };
        let owner = self.owner_for(path);
        let tmp_name = format!(
            ".{}.sanctuary-tmp-{}-{}",
            path.file_name(),
            std::process::id(),
            now_ms()
        );
        let archive = container_tar::file_archive(
            &tmp_name,
            bytes,
            container_mode(mode, self.attrs.file_mode),
            owner,
            now_s(),
        )
        .map_err(err)?;
        let dir = self.parent_dir(path);
        self.copy_in(&dir, archive).map_err(err)?;
        let tmp = format!("{dir}/{tmp_name}");
        let (code, out) = self
            .sh(r#"mv -f "$1" "$2""#, &[tmp.clone(), self.abs(path)])
            .map_err(err)?;
        if code != 0 {
            let _ = self.sh(r#"rm -f "$1""#, &[tmp]);
            return Err(err(other(format!("mv failed: {}", out.trim()))));
        }
        self.remember_owner(path, owner);
        Ok(())
    }

    fn delete(&self, path: &RelPath) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let err = |source| SideError::Delete {
            path: self.show(path),
            source,
        };
        let (code, out) = self.sh(DELETE_SCRIPT, &[self.abs(path)]).map_err(err)?;
        if code != 0 {
            return Err(err(other(out.trim())));
        }
        Ok(())
    }

    fn mkdir(&self, path: &RelPath, mode: u32) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let err = |source| SideError::CreateDir {
            path: self.show(path),
            source,
        };
        let owner = self.owner_for(path);
        let archive =
            container_tar::dir_archive(path.file_name(), mode, owner, now_s()).map_err(err)?;
        self.copy_in(&self.parent_dir(path), archive).map_err(err)?;
        self.remember_owner(path, owner);
        Ok(())
    }

    fn symlink(&self, path: &RelPath, target: &str) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let err = |source| SideError::CreateSymlink {
            path: self.show(path),
            source,
        };
        let owner = self.owner_for(path);
        let archive = container_tar::symlink_archive(path.file_name(), target, owner, now_s())
            .map_err(err)?;
        self.copy_in(&self.parent_dir(path), archive).map_err(err)
    }

    fn stat_many(&self, paths: &[RelPath]) -> Result<Vec<Option<Stat>>, SideError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let err = |source| SideError::Stat {
            path: self.describe(),
            source,
        };
        let nonce = listing::nonce();
        let abs: Vec<String> = paths.iter().map(|p| self.abs(p)).collect();
        let outs = self
            .sh_chunked(
                listing::STAT_MANY_SCRIPT,
                &[listing::stat_format(&nonce)],
                &abs,
            )
            .map_err(err)?;
        let mut seen: HashMap<String, Stat> = HashMap::with_capacity(paths.len());
        for (_, out) in outs {
            for record in listing::parse_records(&out, &nonce).map_err(|e| err(other(e)))? {
                if let Record::Stat(name, Some(l)) = record {
                    seen.insert(
                        name,
                        Stat {
                            kind: l.kind,
                            size: l.size,
                            mtime: l.mtime_ms,
                        },
                    );
                }
            }
        }
        Ok(abs.iter().map(|a| seen.get(a).copied()).collect())
    }

    fn keeps_new_arrivals(&self) -> bool {
        true
    }

    fn holds_scanned(&self, path: &RelPath) -> bool {
        let now = now_ms();
        self.fetched.lock().is_ok_and(|m| {
            m.get(path)
                .is_some_and(|i| now - i.mtime_ms >= RACY_WINDOW_MS)
        })
    }

    fn read_many(&self, paths: &[RelPath]) -> Vec<Result<Vec<u8>, SideError>> {
        // Content the scan fetched is the content it hashed, which is what the base records
        // (see `holds_scanned`). A file changed within the racy window might have changed in
        // the same second as the scan: it is read again.
        let now = now_ms();
        let mut kept = self
            .fetched
            .lock()
            .map(|mut m| {
                paths
                    .iter()
                    .filter_map(|p| m.remove(p).map(|i| (p.clone(), i)))
                    .filter(|(_, i)| now - i.mtime_ms >= RACY_WINDOW_MS)
                    .collect::<HashMap<_, _>>()
            })
            .unwrap_or_default();
        let missing: Vec<RelPath> = paths
            .iter()
            .filter(|p| !kept.contains_key(*p))
            .cloned()
            .collect();
        match self.fetch(&missing) {
            Ok(more) => kept.extend(more),
            Err(e) => {
                let message = e.to_string();
                return paths
                    .iter()
                    .map(|p| {
                        Err(SideError::Read {
                            path: self.show(p),
                            source: io::Error::new(e.kind(), message.clone()),
                        })
                    })
                    .collect();
            }
        }
        paths
            .iter()
            .map(|p| match kept.remove(p) {
                Some(item) if item.kind == EntryKind::File => Ok(item.content),
                Some(_) => Err(SideError::Read {
                    path: self.show(p),
                    source: other("not a regular file"),
                }),
                None => Err(SideError::Read {
                    path: self.show(p),
                    source: io::Error::new(io::ErrorKind::NotFound, "no longer there"),
                }),
            })
            .collect()
    }

    fn put_many(&self, items: &[PutItem]) -> Vec<Result<(), SideError>> {
        if items.is_empty() {
            return Vec::new();
        }
        let write_err = |path: &RelPath, source: io::Error| SideError::Write {
            path: self.show(path),
            source,
        };
        let fail_all = |e: io::Error| -> Vec<Result<(), SideError>> {
            let message = e.to_string();
            items
                .iter()
                .map(|i| {
                    Err(write_err(
                        &i.path,
                        io::Error::new(e.kind(), message.clone()),
                    ))
                })
                .collect()
        };
        // Directories that are new move as a whole, with whatever is put inside them; files
        // in directories that exist move into them, one group per directory.
        let new_dirs: std::collections::HashSet<&RelPath> = items
            .iter()
            .filter(|i| matches!(i.put, Put::Dir { .. }))
            .map(|i| &i.path)
            .collect();
        // The outermost new directory above `p`.
        let inside_new = |p: &RelPath| {
            let mut outer = None;
            let mut a = p.parent();
            while let Some(d) = a {
                a = d.parent();
                if new_dirs.contains(&d) {
                    outer = Some(d);
                }
            }
            outer
        };
        let mut tops: Vec<&RelPath> = Vec::new();
        // Files are grouped by directory and by whether they replace what the scan saw
        // (moved with `mv -f`) or go where the scan saw nothing (`mv -n`: whatever appeared
        // since stays).
        let mut groups: BTreeMap<(Option<RelPath>, bool), usize> = BTreeMap::new();
        // Where each item sits in the stage, and the record that reports it.
        let mut staged_as: Vec<(String, Unmoved)> = Vec::with_capacity(items.len());
        for item in items {
            match (inside_new(&item.path), &item.put) {
                (Some(top), _) => {
                    let k = tops.iter().position(|t| **t == top).unwrap_or_else(|| {
                        tops.push(
                            items
                                .iter()
                                .map(|i| &i.path)
                                .find(|p| **p == top)
                                .unwrap_or(&item.path),
                        );
                        tops.len() - 1
                    });
                    let rest = &item.path.as_str()[top.as_str().len() + 1..];
                    staged_as.push((format!("t{k}/{rest}"), Unmoved::Dir(k)));
                }
                (None, Put::Dir { .. }) => {
                    let k = tops
                        .iter()
                        .position(|t| **t == item.path)
                        .unwrap_or_else(|| {
                            tops.push(&item.path);
                            tops.len() - 1
                        });
                    staged_as.push((format!("t{k}"), Unmoved::Dir(k)));
                }
                (None, Put::File { .. }) => {
                    let n = groups.len();
                    let k = *groups
                        .entry((item.path.parent(), item.replaces))
                        .or_insert(n);
                    staged_as.push((
                        format!("g{k}/{}", item.path.file_name()),
                        Unmoved::File(k, item.path.file_name().to_string()),
                    ));
                }
            }
        }
        let mut entries: Vec<(&str, Staged<'_>, Owner)> =
            Vec::with_capacity(items.len() + groups.len());
        let stage_owner = self.root_owner.lock().map(|o| *o).unwrap_or_default();
        let group_names: Vec<String> = (0..groups.len()).map(|k| format!("g{k}")).collect();
        for name in &group_names {
            entries.push((name.as_str(), Staged::Dir { mode: 0o700 }, stage_owner));
        }
        for (item, (name, _)) in items.iter().zip(&staged_as) {
            let owner = self.owner_for(&item.path);
            let staged = match &item.put {
                Put::File {
                    bytes,
                    mode,
                    mtime_ms,
                } => Staged::File {
                    bytes,
                    mode: container_mode(*mode, self.attrs.file_mode),
                    mtime_s: u64::try_from(mtime_ms / 1000).unwrap_or(0),
                },
                Put::Dir { mode } => Staged::Dir { mode: *mode },
            };
            entries.push((name.as_str(), staged, owner));
        }
        let stage = self.next_stage();
        let sent = self.copy_in_written(self.root(), |out| {
            container_tar::write_staged_archive(out, &stage, stage_owner, &entries, now_s())
                .map(drop)
        });
        drop(entries);
        let stage_abs = format!("{}/{stage}", self.root);
        if let Err(e) = sent {
            // Whatever was unpacked is debris now; a later scan sweeps it if this fails too.
            let _ = self.sh_unstoppable(r#"rm -rf "$1""#, &[stage_abs]);
            return fail_all(e);
        }
        // Every directory something moves into must not be a symlink, up to the root.
        let mut guard: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for top in &tops {
            guard.extend(listing::ancestors(&self.root, top.parent().as_ref()));
        }
        for (dir, _) in groups.keys() {
            guard.extend(listing::ancestors(&self.root, dir.as_ref()));
        }
        let nonce = listing::nonce();
        let mut args = vec![stage_abs.clone(), nonce.clone(), guard.len().to_string()];
        args.extend(guard);
        for (k, top) in tops.iter().enumerate() {
            args.extend(["D".to_string(), k.to_string(), self.abs(top)]);
        }
        for ((dir, replaces), k) in &groups {
            let dest = match dir {
                Some(d) => self.abs(d),
                None => self.root().to_string(),
            };
            let op = if *replaces { "F" } else { "N" };
            args.extend([op.to_string(), k.to_string(), dest]);
        }
        tracing::debug!(entries = items.len(), "batch sent; moving it into place");
        let (code, out) = match self.sh_unstoppable(listing::MOVE_SCRIPT, &args) {
            Ok(r) => r,
            Err(e) => return fail_all(e),
        };
        let mut unmoved_dirs = std::collections::HashSet::new();
        let mut unmoved_files = std::collections::HashSet::new();
        let mut link = None;
        for record in listing::split_records(&out, &nonce) {
            if let Some(k) = record.strip_prefix("|D|") {
                unmoved_dirs.insert(k.parse::<usize>().unwrap_or(usize::MAX));
            } else if let Some(path) = record.strip_prefix("|F|") {
                let rest = path.strip_prefix(&format!("{stage_abs}/g")).unwrap_or(path);
                if let Some((k, name)) = rest.split_once('/') {
                    unmoved_files
                        .insert((k.parse::<usize>().unwrap_or(usize::MAX), name.to_string()));
                }
            } else if let Some(via) = record.strip_prefix("|link|") {
                link = Some(via.to_string());
            }
        }
        if code != 0 && link.is_none() {
            return fail_all(other(format!(
                "moving the batch into place failed: {}",
                out.trim()
            )));
        }
        items
            .iter()
            .zip(staged_as)
            .map(|(item, (_, unmoved))| {
                if let Some(via) = &link {
                    return Err(SideError::ThroughSymlink {
                        path: self.show(&item.path),
                        via: via.clone(),
                    });
                }
                let stuck = match &unmoved {
                    Unmoved::Dir(k) => unmoved_dirs.contains(k),
                    Unmoved::File(k, name) => unmoved_files.contains(&(*k, name.clone())),
                };
                // Only a path the scan saw empty can be refused: something arrived there.
                if stuck && (!item.replaces || matches!(unmoved, Unmoved::Dir(_))) {
                    return Err(SideError::Appeared {
                        path: self.show(&item.path),
                    });
                }
                if stuck {
                    return Err(write_err(
                        &item.path,
                        other("could not be moved into place (something else is there now)"),
                    ));
                }
                self.remember_owner(&item.path, self.owner_for(&item.path));
                Ok(())
            })
            .collect()
    }

    fn written(&self, _path: &RelPath, bytes: u64, mtime_ms: i64) -> Option<(u64, i64, u64)> {
        // The archive header set the mtime, in whole seconds.
        Some((bytes, (mtime_ms / 1000) * 1000, 0))
    }

    fn delete_many(&self, paths: &[RelPath]) -> Vec<Result<(), SideError>> {
        if paths.is_empty() {
            return Vec::new();
        }
        let del_err = |path: &RelPath, source: io::Error| SideError::Delete {
            path: self.show(path),
            source,
        };
        let mut guard: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for p in paths {
            guard.extend(listing::ancestors(&self.root, p.parent().as_ref()));
        }
        let abs: Vec<String> = paths.iter().map(|p| self.abs(p)).collect();
        let nonce = listing::nonce();
        let mut fixed = vec![nonce.clone(), guard.len().to_string()];
        fixed.extend(guard);
        let mut left = std::collections::HashSet::new();
        let mut link = None;
        // Chunks keep the order: a directory comes after its contents in the same or a
        // later chunk.
        let outs = match self.sh_chunked(listing::DELETE_MANY_SCRIPT, &fixed, &abs) {
            Ok(o) => o,
            Err(e) => {
                let message = e.to_string();
                return paths
                    .iter()
                    .map(|p| Err(del_err(p, io::Error::new(e.kind(), message.clone()))))
                    .collect();
            }
        };
        for (_, out) in outs {
            for record in listing::split_records(&out, &nonce) {
                match record.strip_prefix("|link|") {
                    Some(via) => link = Some(via.to_string()),
                    None => {
                        left.insert(record.trim_start_matches('|').to_string());
                    }
                }
            }
        }
        paths
            .iter()
            .zip(&abs)
            .map(|(p, a)| {
                if let Some(via) = &link {
                    return Err(SideError::ThroughSymlink {
                        path: self.show(p),
                        via: via.clone(),
                    });
                }
                if left.contains(a) {
                    return Err(del_err(
                        p,
                        other("still there (a directory that is not empty?)"),
                    ));
                }
                Ok(())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mode_sets_permissions_but_keeps_the_executable_bits_of_the_source() {
        assert_eq!(container_mode(0o644, None), 0o644);
        assert_eq!(container_mode(0o644, Some(0o600)), 0o600);
        assert_eq!(container_mode(0o755, Some(0o600)), 0o711);
        assert_eq!(container_mode(0o600, Some(0o755)), 0o644);
    }
}
