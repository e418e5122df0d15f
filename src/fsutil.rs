//! Small file-system helpers shared by every side store: atomic writes.
//!
//! Every file sanctuary keeps (state, cache entries, backup manifests, sync bases) is written
//! to a temporary name in the same directory, fsynced, and renamed over the target, so a
//! crash leaves either the old file or the new one, never half of either.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Creates a temporary file beside `path` for a caller that streams into it, then calls
/// [`commit_atomic`]. The file is removed if dropped before commit.
pub fn temp_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    tempfile::NamedTempFile::new_in(dir)
}

/// Fsyncs a streamed temporary file and renames it over `path`.
pub fn commit_atomic(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent_dir(path));
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the rename itself durable. Best effort: some file systems refuse to fsync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "only the target remains");
    }

    #[test]
    fn streamed_commit_lands_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut tmp = temp_beside(&path).unwrap();
        tmp.write_all(b"streamed").unwrap();
        assert!(!path.exists(), "nothing visible before commit");
        commit_atomic(tmp, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"streamed");
    }
}
