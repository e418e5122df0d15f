//! Small file-system helpers shared by every side store: atomic writes.
//!
//! Every file sanctuary keeps (state, cache entries, backup manifests, sync bases) is written
//! to a temporary name in the same directory, fsynced, and renamed over the target, so a
//! crash leaves either the old file or the new one, never half of either.
//!
//! Temporary names carry the writer's pid ([`crate::debris`]), so what a killed process
//! left is recognised and swept by the next command.
//!
//! Records that are cheap to lose but written once per node — a task's last success — use
//! [`write_atomic_deferred`]: the same temporary file and rename, so a killed process never
//! leaves half of one, with the fsyncs made once for all of them by [`flush_deferred`] at the
//! end of the command. Only a power cut before that can lose such a record, and a lost
//! record only makes its node run again.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files renamed into place whose fsync is still owed.
static DEFERRED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    let mut tmp = new_temp_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Writes `bytes` to `path` atomically as [`write_atomic`] does, leaving the fsyncs to
/// [`flush_deferred`].
pub fn write_atomic_deferred(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    let mut tmp = new_temp_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    DEFERRED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_path_buf());
    Ok(())
}

/// Makes every [`write_atomic_deferred`] so far durable: each file, then each directory.
pub fn flush_deferred() {
    let paths = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(|e| e.into_inner()));
    let mut dirs = BTreeSet::new();
    for p in &paths {
        if let Ok(f) = File::open(p) {
            let _ = f.sync_all();
        }
        dirs.insert(parent_dir(p).to_path_buf());
    }
    for d in dirs {
        sync_dir(&d);
    }
}

/// Creates a temporary file beside `path` for a caller that streams into it, then calls
/// [`commit_atomic`]. The file is removed if dropped before commit.
pub fn temp_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    new_temp_in(dir)
}

/// A temporary file in `dir` named for this process (see [`crate::debris`]).
pub fn new_temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&crate::debris::own_prefix())
        .tempfile_in(dir)
}

/// A temporary directory in `dir` named for this process (see [`crate::debris`]).
pub fn new_temp_dir_in(dir: &Path) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&crate::debris::own_prefix())
        .tempdir_in(dir)
}

/// A temporary file in `dir` that has no name, for scratch data read back by this process
/// only (a spool): nothing is left behind however the process ends. Made with `O_TMPFILE`
/// where the file system has it; elsewhere it is created under a name carrying this process's
/// mark ([`new_temp_in`]) and unlinked at once, so a kill between the two leaves a name the
/// next command sweeps.
pub fn unnamed_temp_in(dir: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{open, OFlag};
        use nix::sys::stat::Mode;
        match open(
            dir,
            OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok(File::from(fd)),
            // The file system cannot do it (or the kernel is too old): fall back to a name.
            Err(
                nix::errno::Errno::EOPNOTSUPP
                | nix::errno::Errno::EISDIR
                | nix::errno::Errno::ENOENT
                | nix::errno::Errno::EINVAL,
            ) if dir.is_dir() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(new_temp_in(dir)?.into_file())
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
pub fn sync_dir(dir: &Path) {
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
    fn an_unnamed_temp_file_leaves_no_name_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = unnamed_temp_in(dir.path()).unwrap();
        f.write_all(b"spooled").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(unnamed_temp_in(&dir.path().join("missing")).is_err());
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
