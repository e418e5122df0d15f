//! [`Side`] over a directory on the local file system.
//!
//! The scan walks the tree itself (never following symlinks), skips ignored paths without
//! descending into them, and hashes files in parallel. Writes go through
//! [`crate::fsutil`]'s temporary-file-and-rename helpers and refuse any path whose ancestors
//! include a symlink, so nothing is written outside the root.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ignore::gitignore::Gitignore;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::model::{Entry, EntryKind, RelPath, Snapshot};
use super::rewrite::{Direction, RuleSet};
use super::side::{CachedHash, HashCache, Put, PutItem, Side, SideError, Stat, RACY_WINDOW_MS};
use crate::debris;
use crate::fsutil;

/// A sync side rooted at a local directory.
#[derive(Debug, Clone)]
pub struct HostSide {
    root: PathBuf,
    /// [`Side::put_many`] wrote files that are not flushed yet (shared by clones: they are
    /// the same directory).
    unflushed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HostSide {
    /// A side rooted at `root` (which need not exist yet; [`Side::root_exists`] tells).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostSide {
            root: root.into(),
            unflushed: Default::default(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn abs(&self, path: &RelPath) -> PathBuf {
        path.under(&self.root)
    }

    fn show(&self, path: &RelPath) -> String {
        self.abs(path).display().to_string()
    }

    /// Refuses a write below a symlinked ancestor (it could point anywhere).
    fn check_ancestors(&self, path: &RelPath) -> Result<(), SideError> {
        let mut anc = path.parent();
        while let Some(a) = anc {
            if let Ok(md) = fs::symlink_metadata(self.abs(&a)) {
                if md.file_type().is_symlink() {
                    return Err(SideError::ThroughSymlink {
                        path: self.show(path),
                        via: self.show(&a),
                    });
                }
            }
            anc = a.parent();
        }
        Ok(())
    }

    /// The entry for a found path, its content hashed in host form as `as_path` (which
    /// decides JSON-aware rewriting); `cached` is trusted when size, mtime and inode match.
    /// Also returns the record to cache, unless the file is too fresh to trust one.
    fn hash_found(
        &self,
        f: &Found,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
        scan_started: i64,
    ) -> Result<(Entry, Option<CachedHash>), SideError> {
        let mode = f.md.permissions().mode() & 0o7777;
        let mtime = mtime_ms(&f.md);
        let ino = f.md.ino();
        let cached = cached.filter(|c| c.size == f.md.len() && c.mtime == mtime && c.ino == ino);
        let (hash, size) = match (f.kind, cached) {
            (EntryKind::Dir, _) => (String::new(), 0),
            (EntryKind::File, Some(c)) => (c.hash.clone(), c.host_size),
            (EntryKind::File, None) => {
                let raw = self.read(&f.path)?;
                let content = match to_host {
                    Some(rules) => rules.convert(as_path, &raw, Direction::ToHost),
                    None => raw.as_slice().into(),
                };
                (sha256_hex(&content), content.len() as u64)
            }
            (EntryKind::Symlink, _) => {
                let raw = self.read_link(&f.path)?;
                let target = match to_host {
                    Some(rules) => rules.apply_str(&raw, Direction::ToHost).into_owned(),
                    None => raw,
                };
                (sha256_hex(target.as_bytes()), target.len() as u64)
            }
        };
        let record =
            (f.kind == EntryKind::File && scan_started - mtime >= RACY_WINDOW_MS).then(|| {
                CachedHash {
                    size: f.md.len(),
                    mtime,
                    ino,
                    hash: hash.clone(),
                    host_size: size,
                }
            });
        let entry = Entry {
            kind: f.kind,
            hash,
            size,
            mode,
            mtime,
        };
        Ok((entry, record))
    }

    /// The one entry at `path` (a link is recorded as a link), hashed as [`Side::scan`] would,
    /// or `None` when nothing (or a socket, fifo or device) is there. For a single-file rule:
    /// nothing else in the directory is read.
    pub fn scan_path(
        &self,
        path: &RelPath,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
    ) -> Result<Option<(Entry, Option<CachedHash>)>, SideError> {
        let scan_started = now_ms();
        let md = match fs::symlink_metadata(self.abs(path)) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SideError::Scan {
                    path: self.show(path),
                    source,
                })
            }
        };
        let Some(kind) = kind_of(&md) else {
            return Ok(None);
        };
        let found = Found {
            path: path.clone(),
            kind,
            md,
        };
        self.hash_found(&found, as_path, to_host, cached, scan_started)
            .map(Some)
    }
}

/// What a path is, or `None` for what is never synced (sockets, fifos, devices).
fn kind_of(md: &fs::Metadata) -> Option<EntryKind> {
    let ft = md.file_type();
    if ft.is_dir() {
        Some(EntryKind::Dir)
    } else if ft.is_symlink() {
        Some(EntryKind::Symlink)
    } else if ft.is_file() {
        Some(EntryKind::File)
    } else {
        None
    }
}

/// A directory entry found by the walk, before hashing.
struct Found {
    path: RelPath,
    kind: EntryKind,
    md: fs::Metadata,
}

fn mtime_ms(md: &fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl HostSide {
    /// `bytes` with `mode`, written under a temporary name beside `path`'s target and not
    /// yet in place: [`Side::write_file`] and [`Side::put_many`] commit it each their way.
    fn staged_file(
        &self,
        path: &RelPath,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(PathBuf, tempfile::NamedTempFile), SideError> {
        self.check_ancestors(path)?;
        let target = self.abs(path);
        let err = |source| SideError::Write {
            path: self.show(path),
            source,
        };
        let mut tmp = fsutil::temp_beside(&target).map_err(err)?;
        tmp.write_all(bytes).map_err(err)?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(err)?;
        Ok((target, tmp))
    }

    /// One file of a batch, with the source's mtime; not flushed (the pass is).
    fn put_file(
        &self,
        path: &RelPath,
        bytes: &[u8],
        mode: u32,
        mtime_ms: i64,
    ) -> Result<(), SideError> {
        let (target, tmp) = self.staged_file(path, bytes, mode)?;
        let err = |source| SideError::Write {
            path: self.show(path),
            source,
        };
        let mtime =
            UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(mtime_ms).unwrap_or(0));
        tmp.as_file().set_modified(mtime).map_err(err)?;
        tmp.persist(&target).map_err(|e| err(e.error))?;
        Ok(())
    }
}

impl Side for HostSide {
    fn describe(&self) -> String {
        format!("host directory {}", self.root.display())
    }

    fn root_exists(&self) -> Result<bool, SideError> {
        match fs::metadata(&self.root) {
            Ok(md) => Ok(md.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SideError::Stat {
                path: self.root.display().to_string(),
                source,
            }),
        }
    }

    fn scan(
        &self,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError> {
        let scan_started = now_ms();
        let mut found = Vec::new();
        let mut stack: Vec<(PathBuf, Option<RelPath>)> = vec![(self.root.clone(), None)];
        while let Some((dir, rel)) = stack.pop() {
            let scan_err = |source| SideError::Scan {
                path: dir.display().to_string(),
                source,
            };
            for item in fs::read_dir(&dir).map_err(scan_err)? {
                let item = item.map_err(scan_err)?;
                let Some(name) = item.file_name().to_str().map(str::to_string) else {
                    tracing::warn!(path = %item.path().display(), "skipping a name that is not UTF-8");
                    continue;
                };
                let path = match &rel {
                    None => RelPath::new(name.clone()),
                    Some(r) => r.join(&name),
                };
                let Ok(path) = path else { continue };
                // Temporaries are never content; one left by a process that is gone is
                // removed (see crate::debris).
                if debris::owner(&name).is_some() {
                    if debris::is_orphan(&name) {
                        let p = item.path();
                        let removed = if item.file_type().is_ok_and(|t| t.is_dir()) {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                        match removed {
                            Ok(()) => {
                                tracing::info!(path = %p.display(), "removed a temporary left by an interrupted sync")
                            }
                            Err(e) => {
                                tracing::warn!(path = %p.display(), "cannot remove a temporary left by an interrupted sync: {e}")
                            }
                        }
                    }
                    continue;
                }
                // symlink_metadata: a link is recorded as a link, never followed.
                let md = fs::symlink_metadata(item.path()).map_err(|source| SideError::Scan {
                    path: item.path().display().to_string(),
                    source,
                })?;
                let Some(kind) = kind_of(&md) else {
                    continue; // sockets, fifos, devices are not synced
                };
                if ignore
                    .matched(Path::new(path.as_str()), kind == EntryKind::Dir)
                    .is_ignore()
                {
                    continue;
                }
                if kind == EntryKind::Dir {
                    stack.push((item.path(), Some(path.clone())));
                }
                found.push(Found { path, kind, md });
            }
        }
        let old_cache: &HashCache = cache;
        let scanned: Result<Vec<(RelPath, Entry, Option<CachedHash>)>, SideError> = found
            .into_par_iter()
            .map(|f| {
                let (entry, record) =
                    self.hash_found(&f, &f.path, to_host, old_cache.get(&f.path), scan_started)?;
                Ok((f.path, entry, record))
            })
            .collect();
        let scanned = scanned?;
        let mut snapshot = Snapshot::new();
        let mut new_cache = HashCache::new();
        for (path, entry, record) in scanned {
            if let Some(r) = record {
                new_cache.insert(path.clone(), r);
            }
            snapshot.insert(path, entry);
        }
        *cache = new_cache;
        Ok(snapshot)
    }

    fn stat(&self, path: &RelPath) -> Result<Option<Stat>, SideError> {
        match fs::symlink_metadata(self.abs(path)) {
            Ok(md) => {
                let ft = md.file_type();
                let kind = if ft.is_dir() {
                    EntryKind::Dir
                } else if ft.is_symlink() {
                    EntryKind::Symlink
                } else {
                    EntryKind::File
                };
                Ok(Some(Stat {
                    kind,
                    size: md.len(),
                    mtime: mtime_ms(&md),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SideError::Stat {
                path: self.show(path),
                source,
            }),
        }
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>, SideError> {
        fs::read(self.abs(path)).map_err(|source| SideError::Read {
            path: self.show(path),
            source,
        })
    }

    fn read_link(&self, path: &RelPath) -> Result<String, SideError> {
        fs::read_link(self.abs(path))
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|source| SideError::Read {
                path: self.show(path),
                source,
            })
    }

    fn write_file(&self, path: &RelPath, bytes: &[u8], mode: u32) -> Result<(), SideError> {
        let (target, tmp) = self.staged_file(path, bytes, mode)?;
        fsutil::commit_atomic(tmp, &target).map_err(|source| SideError::Write {
            path: self.show(path),
            source,
        })
    }

    fn delete(&self, path: &RelPath) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let target = self.abs(path);
        let result = match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Err(e),
            // remove_dir, not remove_dir_all: a directory still holding (ignored or unseen)
            // entries is left alone rather than silently emptied.
            Ok(md) if md.is_dir() => fs::remove_dir(&target),
            Ok(_) => fs::remove_file(&target),
        };
        result.map_err(|source| SideError::Delete {
            path: self.show(path),
            source,
        })
    }

    fn mkdir(&self, path: &RelPath, mode: u32) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        let target = self.abs(path);
        let err = |source| SideError::CreateDir {
            path: self.show(path),
            source,
        };
        match fs::create_dir(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && target.is_dir() => {}
            Err(e) => return Err(err(e)),
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o7777)).map_err(err)
    }

    fn symlink(&self, path: &RelPath, target: &str) -> Result<(), SideError> {
        self.check_ancestors(path)?;
        std::os::unix::fs::symlink(target, self.abs(path)).map_err(|source| {
            SideError::CreateSymlink {
                path: self.show(path),
                source,
            }
        })
    }

    fn written(&self, path: &RelPath, bytes: u64, mtime: i64) -> Option<(u64, i64, u64)> {
        let md = fs::symlink_metadata(self.abs(path)).ok()?;
        (md.len() == bytes && mtime_ms(&md) == mtime).then(|| (md.len(), mtime, md.ino()))
    }

    /// Each file goes through a temporary name and a rename, as [`Side::write_file`]; the
    /// fsyncs are one `syncfs` for the whole pass ([`Side::flush`]), before the engine
    /// records the base. A crash before that can lose a write whose base was not recorded
    /// yet: the next pass then sees both sides changed and keeps both, so nothing is lost.
    fn put_many(&self, items: &[PutItem]) -> Vec<Result<(), SideError>> {
        // Directories first, in order (parents before their contents); then the files, on
        // every core: creating and renaming thousands of files is kernel work that one
        // thread leaves half the machine idle for.
        let mut done: Vec<Option<Result<(), SideError>>> = items
            .iter()
            .map(|item| match &item.put {
                Put::Dir { mode } => Some(self.mkdir(&item.path, *mode)),
                Put::File { .. } => None,
            })
            .collect();
        let written: Vec<(usize, Result<(), SideError>)> = items
            .par_iter()
            .enumerate()
            .filter_map(|(k, item)| match &item.put {
                Put::File {
                    bytes,
                    mode,
                    mtime_ms,
                } => Some((k, self.put_file(&item.path, bytes, *mode, *mtime_ms))),
                Put::Dir { .. } => None,
            })
            .collect();
        for (k, r) in written {
            done[k] = Some(r);
        }
        let results: Vec<Result<(), SideError>> =
            done.into_iter().map(|r| r.unwrap_or(Ok(()))).collect();
        if results.iter().any(Result::is_ok) {
            self.unflushed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        results
    }

    fn flush(&self) -> Result<(), SideError> {
        if !self
            .unflushed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        tracing::debug!("flushing the written files to disk");
        fs::File::open(&self.root)
            .and_then(|d| nix::unistd::syncfs(&d).map_err(io::Error::from))
            .map_err(|source| SideError::Write {
                path: self.describe(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignore::gitignore::GitignoreBuilder;

    fn no_ignore() -> Gitignore {
        Gitignore::empty()
    }

    #[test]
    fn scan_records_files_dirs_and_links_without_following() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/f.txt"), "hello").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let side = HostSide::new(dir.path());
        let snap = side
            .scan(&no_ignore(), None, &mut HashCache::new())
            .unwrap();
        let names: Vec<_> = snap.keys().map(|p| p.to_string()).collect();
        assert_eq!(names, ["d", "d/f.txt", "out"]);
        assert_eq!(snap[&RelPath::new("out").unwrap()].kind, EntryKind::Symlink);
        let f = &snap[&RelPath::new("d/f.txt").unwrap()];
        assert_eq!(f.hash, sha256_hex(b"hello"));
        assert_eq!(f.size, 5);
    }

    #[test]
    fn scan_skips_ignored_paths_and_does_not_descend() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("statsig/x")).unwrap();
        fs::write(dir.path().join("statsig/x/a"), "a").unwrap();
        fs::write(dir.path().join("run.log"), "l").unwrap();
        fs::write(dir.path().join("keep"), "k").unwrap();
        let mut b = GitignoreBuilder::new(dir.path());
        b.add_line(None, "*.log").unwrap();
        b.add_line(None, "statsig/").unwrap();
        let ig = b.build().unwrap();
        let snap = HostSide::new(dir.path())
            .scan(&ig, None, &mut HashCache::new())
            .unwrap();
        let names: Vec<_> = snap.keys().map(|p| p.to_string()).collect();
        assert_eq!(names, ["keep"]);
    }

    #[test]
    fn scan_hashes_container_content_in_host_form() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("p.txt"), "/home/node/x").unwrap();
        let rules = RuleSet::new(vec![super::super::rewrite::Rule::new(
            "/Users/alice/",
            "/home/node/",
        )])
        .unwrap();
        let snap = HostSide::new(dir.path())
            .scan(&no_ignore(), Some(&rules), &mut HashCache::new())
            .unwrap();
        assert_eq!(
            snap[&RelPath::new("p.txt").unwrap()].hash,
            sha256_hex(b"/Users/alice/x")
        );
    }

    #[test]
    fn unchanged_old_files_are_not_rehashed_and_fresh_ones_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        fs::write(&old, "aaaa").unwrap();
        fs::write(dir.path().join("fresh"), "f").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let set_old = || {
            let f = fs::File::options().write(true).open(&old).unwrap();
            f.set_modified(an_hour_ago).unwrap();
        };
        set_old();
        let side = HostSide::new(dir.path());
        let mut cache = HashCache::new();
        side.scan(&no_ignore(), None, &mut cache).unwrap();
        let names: Vec<_> = cache.keys().map(|p| p.to_string()).collect();
        assert_eq!(names, ["old"], "fresh files are left out of the cache");
        // Same size, same mtime, same inode: the cached hash is trusted without reading.
        fs::OpenOptions::new()
            .write(true)
            .open(&old)
            .unwrap()
            .write_all(b"bbbb")
            .unwrap();
        set_old();
        let snap = side.scan(&no_ignore(), None, &mut cache).unwrap();
        assert_eq!(
            snap[&RelPath::new("old").unwrap()].hash,
            sha256_hex(b"aaaa")
        );
        // A different size is noticed.
        fs::write(&old, "ccccc").unwrap();
        set_old();
        let snap = side.scan(&no_ignore(), None, &mut cache).unwrap();
        assert_eq!(
            snap[&RelPath::new("old").unwrap()].hash,
            sha256_hex(b"ccccc")
        );
    }

    #[test]
    fn writes_are_atomic_keep_mode_and_refuse_symlinked_parents() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let side = HostSide::new(dir.path());
        let p = RelPath::new("run.sh").unwrap();
        side.write_file(&p, b"#!/bin/sh", 0o755).unwrap();
        let md = fs::metadata(dir.path().join("run.sh")).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o755);
        let err = side
            .write_file(&RelPath::new("link/x").unwrap(), b"x", 0o644)
            .unwrap_err();
        assert!(matches!(err, SideError::ThroughSymlink { .. }), "{err}");
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn delete_leaves_non_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x"), "x").unwrap();
        let side = HostSide::new(dir.path());
        assert!(side.delete(&RelPath::new("d").unwrap()).is_err());
        side.delete(&RelPath::new("d/x").unwrap()).unwrap();
        side.delete(&RelPath::new("d").unwrap()).unwrap();
        side.delete(&RelPath::new("d").unwrap()).unwrap();
        assert!(!dir.path().join("d").exists());
    }
}
