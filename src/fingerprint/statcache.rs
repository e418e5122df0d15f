//! The stat cache: (path, size, mtime, ctime, inode) → sha256, so an unchanged tree is not
//! re-read.
//!
//! A file whose size, mtime, ctime (ns) and inode match its record is taken at the recorded
//! hash; any other file is re-hashed, in parallel on every core (sha2 uses SHA-NI where the
//! CPU has it). ctime counts because a program can set an mtime back after rewriting a file
//! in place; only the kernel sets ctime. The cache is one compact binary file under the state directory, loaded whole
//! and written atomically only when something changed; an unreadable or foreign file is
//! treated as an empty cache, since everything in it can be recomputed.
//!
//! Racy files: a file modified in the same clock tick in which it was hashed can change
//! again without its mtime moving, so a record is trusted only when the file's mtime lies
//! at least [`RACY_WINDOW_NS`] before the moment it was hashed. Such a file is re-hashed on
//! the next run, which refreshes its record and makes it trusted from then on.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::inputs::InputFile;

/// How close to its hashing time a file's mtime may lie before its record is distrusted.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// File name of the cache under the state directory.
pub const FILE_NAME: &str = "statcache";

const MAGIC: &[u8; 8] = b"SNCSTAT2";
/// size, mtime, ctime, inode, hashed-at, hash: the fixed part of a record after its path.
const FIXED: usize = 8 + 8 + 8 + 8 + 8 + 32;

/// Why hashing or persisting failed.
#[derive(Debug, thiserror::Error)]
pub enum StatCacheError {
    #[error("cannot read {path} to hash it")]
    HashFile { path: PathBuf, source: io::Error },
    #[error("cannot save the stat cache to {path}")]
    Save { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    hashed_at_ns: i64,
    hash: [u8; 32],
    /// Looked up or refreshed by this instance (not persisted): lets a caller that
    /// fingerprinted the whole project drop the records of files no input names any more.
    seen: bool,
}

/// The loaded stat cache; see the module documentation.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    // Keyed by the raw path bytes: hashing a `PathBuf` walks its components, which
    // costs more than the lookup itself.
    records: HashMap<OsString, Record>,
    dirty: bool,
    hashed: usize,
}

impl StatCache {
    /// Loads the cache kept in `state_dir` (empty when absent or unreadable).
    pub fn in_state_dir(state_dir: &Path) -> StatCache {
        StatCache::load(&state_dir.join(FILE_NAME))
    }

    /// Loads the cache file at `path` (empty when absent or unreadable).
    pub fn load(path: &Path) -> StatCache {
        let records = match fs::read(path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::warn!(
                    "stat cache {} is unreadable; starting afresh",
                    path.display()
                );
                HashMap::new()
            }),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cannot read stat cache {}: {e}", path.display());
                }
                HashMap::new()
            }
        };
        StatCache {
            path: path.to_path_buf(),
            records,
            dirty: false,
            hashed: 0,
        }
    }

    /// Number of files with a record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the cache holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many files this instance has read and hashed so far (the others were answered
    /// from their records): lets callers and tests see that an unchanged tree is not read.
    pub fn files_hashed(&self) -> usize {
        self.hashed
    }

    /// Returns name → sha256 hex for `files`, reading only those whose record is missing,
    /// stale or racy.
    pub fn hash_files(
        &mut self,
        files: &[InputFile],
    ) -> Result<BTreeMap<String, String>, StatCacheError> {
        let mut out = BTreeMap::new();
        let mut todo = Vec::new();
        for file in files {
            match self.lookup(&file.path, &file.metadata) {
                Some(hash) => {
                    out.insert(file.name.clone(), hex::encode(hash));
                }
                None => todo.push(file),
            }
        }
        if todo.is_empty() {
            return Ok(out);
        }
        // Taken before reading, so a write racing the read is on the distrusted side.
        let hashed_at_ns = now_ns();
        let hashed: Vec<(&InputFile, [u8; 32])> = todo
            .par_iter()
            .map(|file| {
                hash_file(&file.path).map(|h| (*file, h)).map_err(|source| {
                    StatCacheError::HashFile {
                        path: file.path.clone(),
                        source,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        for (file, hash) in hashed {
            self.record(&file.path, &file.metadata, hash, hashed_at_ns);
            out.insert(file.name.clone(), hex::encode(hash));
        }
        Ok(out)
    }

    /// The recorded hash of the file at `path`, if its record matches `metadata` and is not
    /// racy. A hit marks the record as seen.
    pub fn lookup(&mut self, path: &Path, metadata: &fs::Metadata) -> Option<[u8; 32]> {
        let (size, mtime_ns, ctime_ns, inode) = stat_of(metadata);
        let r = self.records.get_mut(path.as_os_str())?;
        let trusted = r.size == size
            && r.mtime_ns == mtime_ns
            && r.ctime_ns == ctime_ns
            && r.inode == inode
            && mtime_ns.saturating_add(RACY_WINDOW_NS) < r.hashed_at_ns;
        if !trusted {
            return None;
        }
        r.seen = true;
        Some(r.hash)
    }

    /// Records that the file at `path`, as described by `metadata`, hashed to `hash` when
    /// read at or after `hashed_at_ns` (take it with [`now_ns`] before reading).
    pub fn record(
        &mut self,
        path: &Path,
        metadata: &fs::Metadata,
        hash: [u8; 32],
        hashed_at_ns: i64,
    ) {
        let (size, mtime_ns, ctime_ns, inode) = stat_of(metadata);
        self.hashed += 1;
        self.records.insert(
            path.as_os_str().to_owned(),
            Record {
                size,
                mtime_ns,
                ctime_ns,
                inode,
                hashed_at_ns,
                hash,
                seen: true,
            },
        );
        self.dirty = true;
    }

    /// Drops the records of files this instance has not been asked about; returns how
    /// many. Meant for a caller that has just fingerprinted every node of the project, so
    /// that files no longer named by any input stop taking space.
    pub fn prune_unseen(&mut self) -> usize {
        let before = self.records.len();
        self.records.retain(|_, r| r.seen);
        let dropped = before - self.records.len();
        if dropped > 0 {
            self.dirty = true;
        }
        dropped
    }

    /// Writes the cache atomically if anything changed since it was loaded or last saved;
    /// returns whether it wrote.
    pub fn save(&mut self) -> Result<bool, StatCacheError> {
        if !self.dirty {
            return Ok(false);
        }
        crate::fsutil::write_atomic(&self.path, &encode(&self.records)).map_err(|source| {
            StatCacheError::Save {
                path: self.path.clone(),
                source,
            }
        })?;
        self.dirty = false;
        Ok(true)
    }
}

/// Hashes a file's content with sha256.
pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn stat_of(metadata: &fs::Metadata) -> (u64, i64, i64, u64) {
    let ns = |secs: i64, nsecs: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsecs);
    (
        metadata.size(),
        ns(metadata.mtime(), metadata.mtime_nsec()),
        ns(metadata.ctime(), metadata.ctime_nsec()),
        metadata.ino(),
    )
}

/// Nanoseconds since the Unix epoch: the clock records are stamped with.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Layout: magic, then per record: path length (u32 LE), path bytes, size, mtime, inode,
/// hashed-at (8 bytes LE each), sha256 (32 bytes). No framing beyond that: the file is
/// written atomically, and any inconsistency makes the whole file be ignored.
fn encode(records: &HashMap<OsString, Record>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + records.len() * (FIXED + 64));
    out.extend_from_slice(MAGIC);
    for (path, r) in records {
        let bytes = path.as_bytes();
        let Ok(len) = u32::try_from(bytes.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.mtime_ns.to_le_bytes());
        out.extend_from_slice(&r.ctime_ns.to_le_bytes());
        out.extend_from_slice(&r.inode.to_le_bytes());
        out.extend_from_slice(&r.hashed_at_ns.to_le_bytes());
        out.extend_from_slice(&r.hash);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<HashMap<OsString, Record>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut records = HashMap::with_capacity(rest.len() / (FIXED + 48));
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        if tail.len() < len + FIXED {
            return None;
        }
        let (path, tail) = tail.split_at(len);
        let (fixed, tail) = tail.split_at(FIXED);
        let word = |i: usize| -> [u8; 8] {
            let mut w = [0u8; 8];
            w.copy_from_slice(&fixed[i * 8..i * 8 + 8]);
            w
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&fixed[40..]);
        records.insert(
            OsString::from_vec(path.to_vec()),
            Record {
                size: u64::from_le_bytes(word(0)),
                mtime_ns: i64::from_le_bytes(word(1)),
                ctime_ns: i64::from_le_bytes(word(2)),
                inode: u64::from_le_bytes(word(3)),
                hashed_at_ns: i64::from_le_bytes(word(4)),
                hash,
                seen: false,
            },
        );
        rest = tail;
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::inputs::{expand, ExpandOptions};
    use std::time::Duration;

    fn files(root: &Path) -> Vec<InputFile> {
        expand(root, &["src"], &ExpandOptions::git_like())
            .unwrap()
            .into_values()
            .collect()
    }

    /// Moves a file's mtime into the past, out of the racy window.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    fn project() -> (tempfile::TempDir, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("src")).unwrap();
        for name in ["a", "b", "c"] {
            let p = root.path().join("src").join(name);
            fs::write(&p, name).unwrap();
            age(&p);
        }
        (root, tempfile::tempdir().unwrap())
    }

    #[test]
    fn hashes_match_sha256_of_content() {
        let (root, state) = project();
        let mut cache = StatCache::in_state_dir(state.path());
        let hashes = cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(
            hashes["src/a"],
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
        assert_eq!(hashes.len(), 3);
    }

    #[test]
    fn unchanged_tree_is_not_reread_after_reload_and_is_not_rewritten() {
        let (root, state) = project();
        let mut cache = StatCache::in_state_dir(state.path());
        let first = cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(cache.files_hashed(), 3);
        assert!(cache.save().unwrap());

        let mut cache = StatCache::in_state_dir(state.path());
        assert_eq!(cache.len(), 3);
        let second = cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(first, second);
        assert_eq!(cache.files_hashed(), 0, "nothing re-read");
        assert!(!cache.save().unwrap(), "nothing changed, nothing written");
    }

    #[test]
    fn changed_file_is_rehashed() {
        let (root, state) = project();
        let mut cache = StatCache::in_state_dir(state.path());
        let first = cache.hash_files(&files(root.path())).unwrap();
        cache.save().unwrap();
        let b = root.path().join("src/b");
        fs::write(&b, "bee").unwrap();
        age(&b);
        let mut cache = StatCache::in_state_dir(state.path());
        let second = cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(cache.files_hashed(), 1);
        assert_ne!(first["src/b"], second["src/b"]);
        assert_eq!(first["src/a"], second["src/a"]);
    }

    #[test]
    fn file_rewritten_in_place_with_its_mtime_put_back_is_rehashed() {
        let (root, state) = project();
        let mut cache = StatCache::in_state_dir(state.path());
        let first = cache.hash_files(&files(root.path())).unwrap();
        cache.save().unwrap();
        let b = root.path().join("src/b");
        let before = fs::metadata(&b).unwrap();
        // Same size, same inode, mtime restored: only ctime tells.
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&b, "B").unwrap();
        File::options()
            .write(true)
            .open(&b)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        let after = fs::metadata(&b).unwrap();
        assert_eq!(
            (before.len(), before.ino(), before.mtime_nsec()),
            (after.len(), after.ino(), after.mtime_nsec())
        );
        let mut cache = StatCache::in_state_dir(state.path());
        let second = cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(cache.files_hashed(), 1);
        assert_ne!(first["src/b"], second["src/b"]);
    }

    #[test]
    fn racy_file_is_rehashed_once_then_trusted() {
        let (root, state) = project();
        // Freshly written: its mtime lies inside the racy window of the hashing moment.
        fs::write(root.path().join("src/a"), "fresh").unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        cache.hash_files(&files(root.path())).unwrap();
        cache.save().unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(cache.files_hashed(), 1, "the racy file is distrusted");
        // Ageing it stands in for the clock moving on: the refreshed record is trusted.
        age(&root.path().join("src/a"));
        let mut cache = StatCache::in_state_dir(state.path());
        cache.hash_files(&files(root.path())).unwrap();
        cache.save().unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        cache.hash_files(&files(root.path())).unwrap();
        assert_eq!(cache.files_hashed(), 0);
    }

    #[test]
    fn records_of_files_no_longer_asked_about_can_be_pruned() {
        let (root, state) = project();
        let mut cache = StatCache::in_state_dir(state.path());
        cache.hash_files(&files(root.path())).unwrap();
        cache.save().unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        let only_a: Vec<InputFile> = files(root.path())
            .into_iter()
            .filter(|f| f.name == "src/a")
            .collect();
        cache.hash_files(&only_a).unwrap();
        assert_eq!(cache.prune_unseen(), 2);
        assert!(cache.save().unwrap());
        assert_eq!(StatCache::in_state_dir(state.path()).len(), 1);
    }

    #[test]
    fn corrupt_cache_file_is_treated_as_empty() {
        let state = tempfile::tempdir().unwrap();
        fs::write(state.path().join(FILE_NAME), b"SNCSTAT1\x05\x00\x00\x00ab").unwrap();
        assert!(StatCache::in_state_dir(state.path()).is_empty());
        fs::write(state.path().join(FILE_NAME), b"something else").unwrap();
        assert!(StatCache::in_state_dir(state.path()).is_empty());
    }

    #[test]
    fn encoding_round_trips() {
        let mut records = HashMap::new();
        records.insert(
            OsString::from("/p/ü"),
            Record {
                size: 7,
                mtime_ns: -3,
                ctime_ns: 5,
                inode: 9,
                hashed_at_ns: 11,
                hash: [4; 32],
                seen: false,
            },
        );
        assert_eq!(decode(&encode(&records)), Some(records));
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let (root, state) = project();
        let list = files(root.path());
        fs::remove_file(root.path().join("src/c")).unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        let err = cache.hash_files(&list).unwrap_err();
        assert!(err.to_string().contains("src/c"), "{err}");
    }
}
