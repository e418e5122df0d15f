//! A single file as a sync side: a [`Side`] that shows exactly one entry, the file, and
//! writes it (and its conflict copies) in the file's parent directory.
//!
//! Both ends of a single-file rule show the file under one shared name, the HOST file's name
//! (which decides JSON handling); the container's file may be named differently, and a path
//! that extends the shared name (`NAME.conflict-host-…`) is mapped to the same extension of
//! the local name. The inner side is rooted at the parent directory, so "the root exists"
//! means the parent directory does: a missing file is a deletion, a missing parent halts the
//! pass. A scan reads only the file, never the rest of the directory. Writes go through the
//! inner side, so they stay atomic (temporary name beside the file, fsync, rename) and never
//! pass through a symlink.

use ignore::gitignore::Gitignore;
use std::path::Path;

use super::container_side::ContainerSide;
use super::host_side::HostSide;
use super::model::{Entry, RelPath, Snapshot};
use super::rewrite::RuleSet;
use super::side::{CachedHash, HashCache, Side, SideError, Stat};

/// A side that can look at one path without scanning its whole root.
pub trait ScanOne: Side {
    /// The entry at `path` (not following a final symlink), hashed in host form as `as_path`
    /// would be, with the record to cache; `None` when nothing is there. `cached` is reused
    /// when it still matches the file.
    fn scan_one(
        &self,
        path: &RelPath,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
    ) -> Result<Option<(Entry, Option<CachedHash>)>, SideError>;
}

impl ScanOne for HostSide {
    fn scan_one(
        &self,
        path: &RelPath,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
    ) -> Result<Option<(Entry, Option<CachedHash>)>, SideError> {
        self.scan_path(path, as_path, to_host, cached)
    }
}

impl ScanOne for ContainerSide {
    fn scan_one(
        &self,
        path: &RelPath,
        as_path: &RelPath,
        to_host: Option<&RuleSet>,
        cached: Option<&CachedHash>,
    ) -> Result<Option<(Entry, Option<CachedHash>)>, SideError> {
        self.scan_path(path, as_path, to_host, cached)
    }
}

/// One file of a side rooted at its parent directory.
pub struct FileSide<S> {
    inner: S,
    shared: RelPath,
    local: RelPath,
    describe: String,
}

impl<S: ScanOne> FileSide<S> {
    /// The file `local` (a bare file name) in `inner`'s root, shown to the engine as `shared`
    /// (also a bare name: the host file's). `describe` names the file for messages.
    pub fn new(inner: S, shared: RelPath, local: RelPath, describe: impl Into<String>) -> Self {
        FileSide {
            inner,
            shared,
            local,
            describe: describe.into(),
        }
    }

    /// The side rooted at the parent directory.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The name both sides show the file under.
    pub fn shared_name(&self) -> &RelPath {
        &self.shared
    }

    /// This side's name for a shared path: the file itself, or a sibling whose name extends
    /// it (a conflict copy). Anything else keeps its name (the engine never asks for one).
    fn local(&self, path: &RelPath) -> RelPath {
        match path.as_str().strip_prefix(self.shared.as_str()) {
            Some(rest) => self.local.with_suffix(rest),
            None => path.clone(),
        }
    }
}

impl FileSide<HostSide> {
    /// The host file at `path`: shown under its own name, in its parent directory. `None`
    /// when the path has no usable file name (`/`, `..`, not UTF-8).
    pub fn host(path: &Path) -> Option<Self> {
        let name = RelPath::new(path.file_name()?.to_str()?).ok()?;
        let parent = path.parent()?;
        let describe = format!("host file {}", path.display());
        Some(FileSide::new(
            HostSide::new(parent),
            name.clone(),
            name,
            describe,
        ))
    }
}

impl<S: ScanOne> Side for FileSide<S> {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn root_exists(&self) -> Result<bool, SideError> {
        self.inner.root_exists()
    }

    fn scan(
        &self,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError> {
        let mut snapshot = Snapshot::new();
        let mut new_cache = HashCache::new();
        let ignored = ignore
            .matched(Path::new(self.shared.as_str()), false)
            .is_ignore();
        if !ignored {
            let found =
                self.inner
                    .scan_one(&self.local, &self.shared, to_host, cache.get(&self.shared))?;
            if let Some((entry, record)) = found {
                if let Some(r) = record {
                    new_cache.insert(self.shared.clone(), r);
                }
                snapshot.insert(self.shared.clone(), entry);
            }
        }
        *cache = new_cache;
        Ok(snapshot)
    }

    fn stat(&self, path: &RelPath) -> Result<Option<Stat>, SideError> {
        self.inner.stat(&self.local(path))
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>, SideError> {
        self.inner.read(&self.local(path))
    }

    fn read_link(&self, path: &RelPath) -> Result<String, SideError> {
        self.inner.read_link(&self.local(path))
    }

    fn write_file(&self, path: &RelPath, bytes: &[u8], mode: u32) -> Result<(), SideError> {
        self.inner.write_file(&self.local(path), bytes, mode)
    }

    fn delete(&self, path: &RelPath) -> Result<(), SideError> {
        self.inner.delete(&self.local(path))
    }

    fn mkdir(&self, path: &RelPath, mode: u32) -> Result<(), SideError> {
        self.inner.mkdir(&self.local(path), mode)
    }

    fn symlink(&self, path: &RelPath, target: &str) -> Result<(), SideError> {
        self.inner.symlink(&self.local(path), target)
    }
}
