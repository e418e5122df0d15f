//! Restoring an entry's outputs into the project directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::archive::{self, is_contained, HashingWriter};
use super::entry::{Entry, OutputFile};
use super::error::CacheError;
use super::Cache;

impl Cache {
    /// Restores the outputs of `entry` under `root` that are missing or differ (content or
    /// mode), each file written atomically with its recorded mode; returns the restored
    /// paths, sorted. The archive is verified before any file is touched, and an archive
    /// path that would escape `root` is refused.
    /// A corrupt archive is removed from the cache and reported as [`CacheError::Corrupt`].
    pub fn restore(&self, entry: &Entry, root: &Path) -> Result<Vec<String>, CacheError> {
        let result = self.restore_outputs(entry, root);
        if let Err(CacheError::Corrupt { fingerprint, .. }) = &result {
            self.remove_entry(fingerprint)?;
        }
        result
    }

    fn restore_outputs(&self, entry: &Entry, root: &Path) -> Result<Vec<String>, CacheError> {
        let corrupt = |reason: String| CacheError::Corrupt {
            fingerprint: entry.fingerprint.clone(),
            reason,
        };
        let mut needed: BTreeMap<&str, &OutputFile> = BTreeMap::new();
        for output in &entry.outputs {
            if !is_contained(Path::new(&output.path)) {
                return Err(corrupt(format!(
                    "output path '{}' escapes the project",
                    output.path
                )));
            }
            if !is_current(&root.join(&output.path), output) {
                needed.insert(&output.path, output);
            }
        }
        if needed.is_empty() {
            return Ok(Vec::new());
        }

        let archive_path = self.archive_path(&entry.fingerprint);
        let read_err = |source| CacheError::ReadArchive {
            path: archive_path.clone(),
            source,
        };
        let (hash, _) = archive::hash_file(&archive_path).map_err(read_err)?;
        if hash != entry.archive_sha256 {
            return Err(corrupt("archive does not match its recorded sha256".into()));
        }
        let file = fs::File::open(&archive_path).map_err(read_err)?;
        let decoder = zstd::Decoder::new(file).map_err(read_err)?;
        let mut tar = tar::Archive::new(decoder);
        let entries = tar
            .entries()
            .map_err(|e| corrupt(format!("unreadable archive ({e})")))?;
        let mut restored = Vec::new();
        for item in entries {
            let mut item = item.map_err(|e| corrupt(format!("unreadable archive ({e})")))?;
            let name = item
                .path()
                .map_err(|e| corrupt(format!("unreadable archive ({e})")))?
                .to_string_lossy()
                .into_owned();
            let Some(output) = needed.remove(name.as_str()) else {
                continue;
            };
            let target = root.join(&output.path);
            let write_err = |source| CacheError::RestoreOutput {
                path: target.clone(),
                source,
            };
            let mut tmp = crate::fsutil::temp_beside(&target).map_err(write_err)?;
            let mut sink = HashingWriter::new(tmp.as_file_mut());
            io::copy(&mut item, &mut sink)
                .map_err(|e| corrupt(format!("unreadable archive ({e})")))?;
            let (_, hash, size) = sink.finish();
            if hash != output.sha256 || size != output.size {
                return Err(corrupt(format!(
                    "{} does not match its recorded sha256",
                    output.path
                )));
            }
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(output.mode))
                .map_err(write_err)?;
            crate::fsutil::commit_atomic(tmp, &target).map_err(write_err)?;
            restored.push(output.path.clone());
        }
        if let Some(path) = needed.keys().next() {
            return Err(corrupt(format!("archive lacks {path}")));
        }
        restored.sort();
        Ok(restored)
    }
}

/// Whether the file at `path` already holds `output` (same size, mode and sha256).
fn is_current(path: &Path, output: &OutputFile) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != output.size || meta.mode() & 0o7777 != output.mode {
        return false;
    }
    matches!(archive::hash_file(path), Ok((hash, _)) if hash == output.sha256)
}
