//! Where snapshot files live: the small [`Store`] trait over a flat namespace of files, with
//! a local-directory implementation. The `rclone` implementation is in `rclone.rs`. Listing,
//! verification, prune and restore work through this trait only, so they treat every copy alike.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::BackupError;
use crate::fsutil;

/// One file in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// File name (no directories).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, when the store knows it.
    pub modified: Option<SystemTime>,
}

/// A flat directory of snapshot files, local or remote.
pub trait Store: Send + Sync {
    /// How to name this store in messages (a path or remote).
    fn describe(&self) -> String;
    /// All plain files (a store that does not exist yet lists as empty).
    fn list(&self) -> Result<Vec<StoredFile>, BackupError>;
    /// Streams one file.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, BackupError>;
    /// Stores a local file under `name`, replacing any old one as atomically as the store allows.
    fn put_file(&self, name: &str, local: &Path) -> Result<(), BackupError>;
    /// Stores small contents under `name`.
    fn put_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError>;
    /// Deletes one file.
    fn remove(&self, name: &str) -> Result<(), BackupError>;

    /// Whether the processes that write here run on this machine, so that the pid in a
    /// temporary name ([`crate::debris`]) says whether its writer is gone. Elsewhere (a
    /// remote) a temporary is taken for debris only once it is older than
    /// [`TEMP_GRACE`](super::catalog::TEMP_GRACE).
    fn writers_are_local(&self) -> bool {
        false
    }

    /// Reads a whole (small) file.
    fn read_all(&self, name: &str) -> Result<Vec<u8>, BackupError> {
        let mut buf = Vec::new();
        self.open(name)?
            .read_to_end(&mut buf)
            .map_err(|source| BackupError::ReadCopy {
                copy: self.describe(),
                name: name.to_string(),
                source,
            })?;
        Ok(buf)
    }
}

/// A local directory (the primary backup directory, a second disk, a mounted share).
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Full path of a file in the store.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

impl Store for DirStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Vec<StoredFile>, BackupError> {
        let err = |source| BackupError::ListCopy {
            copy: self.describe(),
            source,
        };
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut files = Vec::new();
        for de in rd {
            let de = de.map_err(err)?;
            let Ok(name) = de.file_name().into_string() else {
                continue;
            };
            let m = de.metadata().map_err(err)?;
            if m.is_file() {
                files.push(StoredFile {
                    name,
                    size: m.len(),
                    modified: m.modified().ok(),
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, BackupError> {
        let f = File::open(self.path_of(name)).map_err(|source| BackupError::ReadCopy {
            copy: self.describe(),
            name: name.to_string(),
            source,
        })?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }

    fn put_file(&self, name: &str, local: &Path) -> Result<(), BackupError> {
        let dest = self.path_of(name);
        let werr = |source| BackupError::WriteFile {
            path: dest.clone(),
            source,
        };
        let mut src = File::open(local).map_err(|source| BackupError::ReadCopy {
            copy: local.display().to_string(),
            name: name.to_string(),
            source,
        })?;
        let mut tmp = fsutil::temp_beside(&dest).map_err(werr)?;
        io::copy(&mut src, tmp.as_file_mut()).map_err(werr)?;
        tmp.as_file_mut().flush().map_err(werr)?;
        fsutil::commit_atomic(tmp, &dest).map_err(werr)
    }

    fn put_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let dest = self.path_of(name);
        fsutil::write_atomic(&dest, bytes).map_err(|source| BackupError::WriteFile {
            path: dest.clone(),
            source,
        })
    }

    fn writers_are_local(&self) -> bool {
        true
    }

    fn remove(&self, name: &str) -> Result<(), BackupError> {
        match fs::remove_file(self.path_of(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BackupError::DeleteFromCopy {
                copy: self.describe(),
                name: name.to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_store_puts_lists_reads_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("copy"));
        assert!(store.list().unwrap().is_empty(), "missing dir lists empty");
        let local = dir.path().join("local");
        fs::write(&local, b"archive bytes").unwrap();
        store.put_file("a.tar.zst", &local).unwrap();
        store.put_bytes("a.json", b"{}").unwrap();
        let names: Vec<_> = store.list().unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(names, vec!["a.json", "a.tar.zst"]);
        assert_eq!(store.read_all("a.tar.zst").unwrap(), b"archive bytes");
        store.remove("a.json").unwrap();
        store.remove("a.json").unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
