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
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ignore::gitignore::Gitignore;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::container_tar::{self, Owner, TarItem};
use super::model::{Entry, EntryKind, RelPath, Snapshot};
use super::rewrite::{Direction, RuleSet};
use super::side::{CachedHash, HashCache, Side, SideError, Stat, RACY_WINDOW_MS};
use crate::backend::{Backend, BackendError};

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
        let res = self
            .handle
            .block_on(self.backend.exec(&self.container, &cmd, &env))
            .map_err(backend_io)?;
        Ok((res.exit_code, res.output))
    }

    fn copy_out(&self, abs: &str) -> io::Result<Vec<u8>> {
        self.handle
            .block_on(self.backend.copy_out(&self.container, abs))
            .map_err(backend_io)
    }

    fn copy_in(&self, dir: &str, tar: Vec<u8>) -> io::Result<()> {
        self.handle
            .block_on(self.backend.copy_in(&self.container, dir, tar))
            .map_err(backend_io)
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
        let size = item.content.len() as u64;
        let cached = cached.filter(|c| c.size == size && c.mtime == item.mtime_ms && c.ino == 0);
        let (hash, host_size) = hash_item(as_path, &item, to_host, cached);
        let record = (item.kind == EntryKind::File && started - item.mtime_ms >= RACY_WINDOW_MS)
            .then(|| CachedHash {
                size,
                mtime: item.mtime_ms,
                ino: 0,
                hash: hash.clone(),
                host_size,
            });
        self.remember_owner(path, item.owner);
        let entry = Entry {
            kind: item.kind,
            hash,
            size: host_size,
            mode: item.mode,
            mtime: item.mtime_ms,
        };
        Ok(Some((entry, record)))
    }
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

impl Side for ContainerSide {
    fn describe(&self) -> String {
        format!("container directory {}:{}", self.container, self.root())
    }

    fn root_exists(&self) -> Result<bool, SideError> {
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
                let size = item.content.len() as u64;
                let cached = old
                    .get(path)
                    .filter(|c| c.size == size && c.mtime == item.mtime_ms && c.ino == 0);
                let (hash, host_size) = hash_item(path, item, to_host, cached);
                let record = (item.kind == EntryKind::File
                    && started - item.mtime_ms >= RACY_WINDOW_MS)
                    .then(|| CachedHash {
                        size,
                        mtime: item.mtime_ms,
                        ino: 0,
                        hash: hash.clone(),
                        host_size,
                    });
                let entry = Entry {
                    kind: item.kind,
                    hash,
                    size: host_size,
                    mode: item.mode,
                    mtime: item.mtime_ms,
                };
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
