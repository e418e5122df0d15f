//! Looking entries up and saving them.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use super::archive::{self, is_contained};
use super::entry::Entry;
use super::error::CacheError;
use super::{is_fingerprint, Cache};
use crate::fingerprint::inputs::{expand, ExpandOptions, InputError, InputFile};
use crate::fingerprint::Key;

/// The answer of [`Cache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// A verified entry: its archive is present and matches its recorded sha256.
    Hit(Box<Entry>),
    /// No entry; the token is what [`Cache::save`] takes.
    Miss(Miss),
    /// An entry existed but was corrupt; it has been removed. The caller should say so
    /// ("cache entry X corrupt, discarded") and go on as on a miss.
    Corrupt {
        fingerprint: String,
        reason: String,
        miss: Miss,
    },
}

/// Proof that a fingerprint was looked up and missed; consumed by [`Cache::save`], so an
/// entry can only be saved under the fingerprint the caller asked about.
#[derive(Debug)]
#[must_use = "a miss is consumed by Cache::save"]
pub struct Miss {
    fingerprint: String,
}

impl Miss {
    /// The fingerprint that missed.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// What [`Cache::save`] stores after a successful run.
#[derive(Debug, Clone, Copy)]
pub struct SaveRequest<'a> {
    /// The node's key; its declared outputs (`spec.outputs`) are what gets archived.
    pub key: &'a Key,
    /// The project directory the outputs are relative to.
    pub root: &'a Path,
    /// How long the run took.
    pub duration: Duration,
    /// The run's captured output.
    pub log: &'a str,
}

impl Cache {
    /// Looks `fingerprint` up, verifying the entry's metadata and archive.
    pub fn lookup(&self, fingerprint: &str) -> Result<Lookup, CacheError> {
        if !is_fingerprint(fingerprint) {
            return Err(CacheError::InvalidFingerprint {
                fingerprint: fingerprint.to_string(),
            });
        }
        let miss = Miss {
            fingerprint: fingerprint.to_string(),
        };
        let meta_path = self.metadata_path(fingerprint);
        let bytes = match fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Miss(miss)),
            Err(source) => {
                return Err(CacheError::ReadMetadata {
                    path: meta_path,
                    source,
                })
            }
        };
        match self.verify(fingerprint, &bytes)? {
            Ok(entry) => Ok(Lookup::Hit(Box::new(entry))),
            Err(reason) => {
                self.remove_entry(fingerprint)?;
                Ok(Lookup::Corrupt {
                    fingerprint: fingerprint.to_string(),
                    reason,
                    miss,
                })
            }
        }
    }

    /// Checks an entry; the inner `Err` is the reason it is corrupt.
    fn verify(
        &self,
        fingerprint: &str,
        metadata: &[u8],
    ) -> Result<Result<Entry, String>, CacheError> {
        let entry: Entry = match serde_json::from_slice(metadata) {
            Ok(e) => e,
            Err(e) => return Ok(Err(format!("metadata unreadable ({e})"))),
        };
        if entry.fingerprint != fingerprint {
            return Ok(Err("metadata belongs to another fingerprint".into()));
        }
        let archive_path = self.archive_path(fingerprint);
        let (hash, size) = match archive::hash_file(&archive_path) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Err("archive missing".into()))
            }
            Err(source) => {
                return Err(CacheError::ReadArchive {
                    path: archive_path,
                    source,
                })
            }
        };
        if size != entry.archive_size || hash != entry.archive_sha256 {
            return Ok(Err("archive does not match its recorded sha256".into()));
        }
        Ok(Ok(entry))
    }

    /// Archives the declared outputs of `request.key` and commits the entry. A declared
    /// output that is missing after the run is an error naming it.
    pub fn save(&self, miss: Miss, request: SaveRequest<'_>) -> Result<Entry, CacheError> {
        let fingerprint = request.key.fingerprint();
        if fingerprint != miss.fingerprint {
            return Err(CacheError::KeyMismatch {
                expected: miss.fingerprint,
                actual: fingerprint,
            });
        }
        let files = collect_outputs(request.root, &request.key.spec.outputs)?;

        // Another process may have committed this fingerprint since our lookup; its entry
        // is as good as ours, and rewriting the archive under its metadata would make a
        // concurrent reader see a mismatch.
        if let Ok(bytes) = fs::read(self.metadata_path(&fingerprint)) {
            if let Ok(entry) = self.verify(&fingerprint, &bytes)? {
                return Ok(entry);
            }
        }

        let archive_path = self.archive_path(&fingerprint);
        let write_err = |source| CacheError::WriteArchive {
            path: archive_path.clone(),
            source,
        };
        // What a killed save left in this shard goes before another is written beside it.
        if let Some(shard) = archive_path.parent() {
            let _ = crate::debris::sweep(shard, true);
        }
        let mut tmp = crate::fsutil::temp_beside(&archive_path).map_err(write_err)?;
        let (outputs, archive_sha256, archive_size) =
            archive::write_archive(tmp.as_file_mut(), &archive_path, &files)?;
        crate::fsutil::commit_atomic(tmp, &archive_path).map_err(write_err)?;

        let entry = Entry {
            fingerprint: fingerprint.clone(),
            key: request.key.clone(),
            created: Utc::now(),
            duration_ms: u64::try_from(request.duration.as_millis()).unwrap_or(u64::MAX),
            outputs,
            archive_sha256,
            archive_size,
            log: request.log.to_string(),
        };
        let meta_path = self.metadata_path(&fingerprint);
        let json = serde_json::to_vec_pretty(&entry).map_err(|e| CacheError::WriteMetadata {
            path: meta_path.clone(),
            source: io::Error::other(e),
        })?;
        crate::fsutil::write_atomic(&meta_path, &json).map_err(|source| {
            CacheError::WriteMetadata {
                path: meta_path.clone(),
                source,
            }
        })?;
        Ok(entry)
    }

    /// Removes an entry, metadata first so it stops being visible before its archive goes.
    pub(super) fn remove_entry(&self, fingerprint: &str) -> Result<u64, CacheError> {
        let mut freed = 0;
        for path in [
            self.metadata_path(fingerprint),
            self.archive_path(fingerprint),
        ] {
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(&path) {
                Ok(()) => freed += size,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CacheError::Remove { path, source }),
            }
        }
        Ok(freed)
    }
}

/// Expands declared outputs (ignore files notwithstanding) into the files to archive.
fn collect_outputs(root: &Path, outputs: &[String]) -> Result<Vec<InputFile>, CacheError> {
    let mut files = std::collections::BTreeMap::new();
    for output in outputs {
        if !is_contained(Path::new(output)) {
            return Err(CacheError::OutputOutsideRoot {
                output: output.clone(),
            });
        }
        match expand(
            root,
            std::slice::from_ref(output),
            &ExpandOptions::everything(),
        ) {
            Ok(found) => files.extend(found),
            Err(InputError::MissingPath { .. } | InputError::NoMatch { .. }) => {
                return Err(CacheError::MissingOutput {
                    output: output.clone(),
                })
            }
            Err(source) => {
                return Err(CacheError::CollectOutput {
                    output: output.clone(),
                    source,
                })
            }
        }
    }
    Ok(files.into_values().collect())
}
