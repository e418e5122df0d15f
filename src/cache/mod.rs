//! The content-addressed cache of task and test outputs, under `<state dir>/cache`.
//!
//! Layout: `objects/<fp[0..2]>/<fp>.tar.zst` holds a node's declared outputs as tar + zstd;
//! `objects/<fp[0..2]>/<fp>.json` is its [`Entry`] (key, timings, per-file hashes, the
//! archive's sha256, the captured log). The archive is written first and the metadata last,
//! both atomically, so the metadata file is the commit point: an archive without metadata
//! is invisible, and a temp file is never mistaken for an entry. `nodes/<kind>.<name>.json`
//! records each node's last success ([`NodeRecord`]), so tasks without outputs can be
//! skipped and `why` can diff against the last good key.
//!
//! A lookup verifies the entry before calling it a hit; a corrupt one is removed and
//! reported as [`Lookup::Corrupt`], which the caller treats as a miss after saying so.

mod archive;
mod entry;
mod error;
mod gc;
mod node_record;
mod restore;
mod store;

use std::path::{Path, PathBuf};

pub use entry::{Entry, OutputFile};
pub use error::CacheError;
pub use gc::{GcReport, Removed, Stats};
pub use node_record::NodeRecord;
pub use store::{Lookup, Miss, SaveRequest};

/// Directory name of the cache under the state directory.
pub const DIR_NAME: &str = "cache";

/// A handle on the cache directory; cheap, holds no open files.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache kept under `state_dir` (created lazily on the first save).
    pub fn in_state_dir(state_dir: &Path) -> Cache {
        Cache::at(&state_dir.join(DIR_NAME))
    }

    /// The cache rooted at `dir` itself (e.g. a directory a CI job persists).
    pub fn at(dir: &Path) -> Cache {
        Cache {
            root: dir.to_path_buf(),
        }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn shard(&self, fingerprint: &str) -> PathBuf {
        self.objects().join(&fingerprint[..2])
    }

    fn archive_path(&self, fingerprint: &str) -> PathBuf {
        self.shard(fingerprint)
            .join(format!("{fingerprint}.tar.zst"))
    }

    fn metadata_path(&self, fingerprint: &str) -> PathBuf {
        self.shard(fingerprint).join(format!("{fingerprint}.json"))
    }
}

/// Whether `text` is a fingerprint (64 lowercase hex digits): checked before it becomes a
/// path, so nothing else can address files in the cache.
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests;
