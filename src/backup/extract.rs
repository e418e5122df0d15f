//! Writing checked entries into a staging directory. Only [`scan`](super::scan) calls this
//! sink, after its safety checks, and files are created with `O_EXCL`, so nothing is ever
//! written outside the staging root or through a link. Directory modes and times are applied
//! last, deepest first, so a read-only directory does not block its own contents.

use std::fs::{self, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::entry::Entry;
use super::error::BackupError;
use super::scan::EntrySink;

/// Extracts into `root`, which must be a fresh, empty directory.
pub(crate) struct Extractor {
    root: PathBuf,
    dirs: Vec<Entry>,
    /// One large copy buffer for all files.
    buf: Vec<u8>,
    /// Set once chown is refused (not running as root): ownership is then left as is.
    pub ownership_skipped: bool,
}

impl Extractor {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dirs: Vec::new(),
            buf: vec![0; 1 << 20],
            ownership_skipped: false,
        }
    }

    fn err(&self, e: &Entry, source: io::Error) -> BackupError {
        BackupError::Extract {
            staging: self.root.clone(),
            entry: e.path.clone(),
            source,
        }
    }

    fn ensure_parent(&self, e: &Entry, path: &Path) -> Result<(), BackupError> {
        match path.parent() {
            Some(p) => fs::create_dir_all(p).map_err(|s| self.err(e, s)),
            None => Ok(()),
        }
    }

    fn chown(&mut self, e: &Entry, path: &Path) -> Result<(), BackupError> {
        if self.ownership_skipped {
            return Ok(());
        }
        let (Ok(uid), Ok(gid)) = (u32::try_from(e.uid), u32::try_from(e.gid)) else {
            self.ownership_skipped = true;
            return Ok(());
        };
        match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                self.ownership_skipped = true;
                Ok(())
            }
            Err(err) => Err(self.err(e, err)),
        }
    }

    fn set_mtime_nofollow(&self, e: &Entry, path: &Path) -> Result<(), BackupError> {
        let t = TimeSpec::new(e.mtime.min(i64::MAX as u64) as i64, 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| self.err(e, io::Error::from(errno)))
    }

    /// Applies directory ownership, modes and times, deepest first.
    pub(crate) fn finish(mut self) -> Result<bool, BackupError> {
        let dirs = std::mem::take(&mut self.dirs);
        for e in dirs.iter().rev() {
            let path = self.root.join(&e.path);
            self.chown(e, &path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(e.mode))
                .map_err(|s| self.err(e, s))?;
            self.set_mtime_nofollow(e, &path)?;
        }
        Ok(!self.ownership_skipped)
    }
}

impl EntrySink for Extractor {
    fn dir(&mut self, e: &Entry) -> Result<(), BackupError> {
        let path = self.root.join(&e.path);
        fs::create_dir_all(&path).map_err(|s| self.err(e, s))?;
        self.dirs.push(e.clone());
        Ok(())
    }

    fn file(&mut self, e: &Entry, data: &mut dyn Read) -> Result<(), BackupError> {
        let path = self.root.join(&e.path);
        self.ensure_parent(e, &path)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|s| self.err(e, s))?;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.err(e, err)),
            };
            f.write_all(&self.buf[..n]).map_err(|s| self.err(e, s))?;
        }
        self.chown(e, &path)?;
        // chmod after chown: chown clears setuid/setgid bits.
        f.set_permissions(fs::Permissions::from_mode(e.mode))
            .map_err(|s| self.err(e, s))?;
        let mtime = UNIX_EPOCH + Duration::from_secs(e.mtime);
        f.set_times(FileTimes::new().set_modified(mtime).set_accessed(mtime))
            .map_err(|s| self.err(e, s))?;
        Ok(())
    }

    fn symlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        let path = self.root.join(&e.path);
        self.ensure_parent(e, &path)?;
        std::os::unix::fs::symlink(e.target.as_deref().unwrap_or(""), &path)
            .map_err(|s| self.err(e, s))?;
        self.chown(e, &path)?;
        self.set_mtime_nofollow(e, &path)
    }

    fn hardlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        let path = self.root.join(&e.path);
        self.ensure_parent(e, &path)?;
        let target = self.root.join(e.target.as_deref().unwrap_or(""));
        fs::hard_link(&target, &path).map_err(|s| self.err(e, s))
    }
}
