//! The `Side` trait: everything the engine needs from one end of a sync, so that a host
//! directory and a container (over Docker's archive API, elsewhere) are interchangeable.
//!
//! Implementations never follow a symbolic link out of their root: a scan records symlinks as
//! symlinks, and writes refuse to pass through a symlinked directory.

use std::collections::BTreeMap;
use std::io;

use ignore::gitignore::Gitignore;

use super::model::{EntryKind, RelPath, Snapshot};
use super::rewrite::RuleSet;

/// What a scan remembers about a file, so that an unchanged file is not read and hashed again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedHash {
    /// Size as stored on the side.
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// Inode (or another identity that changes when the file is replaced); 0 if unknown.
    pub ino: u64,
    /// The host-form hash.
    pub hash: String,
    /// The host-form size.
    pub host_size: u64,
}

/// Cached hashes by path, one cache per side.
pub type HashCache = BTreeMap<RelPath, CachedHash>;

/// Files modified less than this long before a scan are not cached: a second edit within the
/// same mtime tick, keeping the size, would otherwise go unseen.
pub const RACY_WINDOW_MS: i64 = 2000;

/// A cheap look at one path, to check that it did not change since the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes as stored on this side.
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
}

/// A side operation that failed, naming the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    /// Listing or hashing the tree.
    #[error("cannot scan {path}")]
    Scan {
        /// What could not be read.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Looking at one path.
    #[error("cannot inspect {path}")]
    Stat {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Reading a file or link.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Writing a file.
    #[error("cannot write {path}")]
    Write {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Removing a file, link or empty directory.
    #[error("cannot delete {path}")]
    Delete {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Creating a directory.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Creating a symlink.
    #[error("cannot create symlink {path}")]
    CreateSymlink {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A write would pass through a symlink and could land outside the root.
    #[error("refusing to write {path}: `{via}` is a symlink, not a directory")]
    ThroughSymlink {
        /// The path being written.
        path: String,
        /// The ancestor that is a symlink.
        via: String,
    },
    /// Something appeared at a path the scan saw empty; [`Side::put_many`] left it alone.
    #[error("{path} appeared since the scan")]
    Appeared {
        /// The path.
        path: String,
    },
}

/// What [`Side::put_many`] creates at one path, in the side's own form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// A file with these bytes and permission bits; replaces a file already there.
    File {
        /// Content.
        bytes: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Modification time to give it (the source's), milliseconds since the Unix epoch.
        mtime_ms: i64,
    },
    /// A new directory (nothing is at the path yet).
    Dir {
        /// Permission bits.
        mode: u32,
    },
}

/// One entry of a [`Side::put_many`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    /// Where.
    pub path: RelPath,
    /// What.
    pub put: Put,
    /// Whether the scan saw something at the path. A side that
    /// [keeps new arrivals](Side::keeps_new_arrivals) leaves alone what appeared at a path
    /// the scan saw empty, and reports it as [`SideError::Appeared`].
    pub replaces: bool,
}

/// One end of a sync. Paths are relative to the side's root; content crosses this interface
/// in the side's own form (the engine does the rewriting).
///
/// The `*_many` methods do the same work as their single forms for a whole batch; a side
/// where each call is a round trip (a container) does each batch in a constant number of
/// them. Their default implementations call the single forms in order.
pub trait Side: Send + Sync {
    /// A short description for messages (`host directory /Users/alice/.claude`).
    fn describe(&self) -> String;

    /// Whether the root exists and is a directory.
    fn root_exists(&self) -> Result<bool, SideError>;

    /// Whether [`Side::put_many`] never replaces what appeared since the scan at a path the
    /// scan saw empty (`replaces: false`). A batch then need not look at such targets before
    /// writing: on a side where every look is a round trip, that is one fewer per batch.
    fn keeps_new_arrivals(&self) -> bool {
        false
    }

    /// Whether reading `path` now returns the very bytes the scan hashed (the side kept
    /// them), so a batch need not look at the source again before copying it: what it
    /// copies is what the base will record, and a change made since is seen by the next pass.
    fn holds_scanned(&self, _path: &RelPath) -> bool {
        false
    }

    /// Makes durable what [`Side::put_many`] wrote without flushing. The engine calls it
    /// once per pass, before it records the base.
    fn flush(&self) -> Result<(), SideError> {
        Ok(())
    }

    /// Every entry under the root except ignored ones. File hashes are of the HOST form: when
    /// `to_host` is given, content is converted with it (container → host) before hashing.
    /// A file whose size, mtime and identity match its `cache` record is not read again; the
    /// cache is replaced with records for the files seen (except recently modified ones, see
    /// [`RACY_WINDOW_MS`]).
    fn scan(
        &self,
        ignore: &Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<Snapshot, SideError>;

    /// What is at `path` now, without following a final symlink.
    fn stat(&self, path: &RelPath) -> Result<Option<Stat>, SideError>;

    /// A file's bytes.
    fn read(&self, path: &RelPath) -> Result<Vec<u8>, SideError>;

    /// A symlink's target.
    fn read_link(&self, path: &RelPath) -> Result<String, SideError>;

    /// Replaces `path` with a file holding `bytes` atomically (temporary name, fsync, rename).
    fn write_file(&self, path: &RelPath, bytes: &[u8], mode: u32) -> Result<(), SideError>;

    /// Removes a file, symlink or empty directory; absent is fine.
    fn delete(&self, path: &RelPath) -> Result<(), SideError>;

    /// Creates a directory (its parent exists); existing is fine.
    fn mkdir(&self, path: &RelPath, mode: u32) -> Result<(), SideError>;

    /// Creates a symlink to `target`.
    fn symlink(&self, path: &RelPath, target: &str) -> Result<(), SideError>;

    /// [`Side::stat`] of every path, in order.
    fn stat_many(&self, paths: &[RelPath]) -> Result<Vec<Option<Stat>>, SideError> {
        paths.iter().map(|p| self.stat(p)).collect()
    }

    /// [`Side::read`] of every path, in order.
    fn read_many(&self, paths: &[RelPath]) -> Vec<Result<Vec<u8>, SideError>> {
        paths.iter().map(|p| self.read(p)).collect()
    }

    /// Creates every item, in order (parents come before their contents): a file as
    /// [`Side::write_file`] does, atomically; a directory as [`Side::mkdir`]. The results are
    /// in the order of `items`.
    fn put_many(&self, items: &[PutItem]) -> Vec<Result<(), SideError>> {
        items
            .iter()
            .map(|item| match &item.put {
                Put::File { bytes, mode, .. } => self.write_file(&item.path, bytes, *mode),
                Put::Dir { mode } => self.mkdir(&item.path, *mode),
            })
            .collect()
    }

    /// What a scan would see of a file [`Side::put_many`] just wrote with `bytes` bytes and
    /// `mtime_ms`: its size, mtime and identity, so the write can seed the hash cache and
    /// the next scan need not read the file back. `None` when not known.
    fn written(&self, path: &RelPath, bytes: u64, mtime_ms: i64) -> Option<(u64, i64, u64)> {
        let _ = (path, bytes, mtime_ms);
        None
    }

    /// [`Side::delete`] of every path, in order (contents before their directory).
    fn delete_many(&self, paths: &[RelPath]) -> Vec<Result<(), SideError>> {
        paths.iter().map(|p| self.delete(p)).collect()
    }
}
