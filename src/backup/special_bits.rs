//! What a restore does with the setuid and setgid bits of files.
//!
//! A snapshot's manifest was written by our own backup, and the archive is checked against
//! it entry by entry, so its bits are restored as recorded. An archive made by another tool
//! has nothing that vouches for it: a setuid-root file in it would become a way to root on
//! the machine or in the container that mounts the restored volume. So those bits are
//! cleared unless the user asks to keep them. Only files are touched: the setgid bit on a
//! directory (new files inherit its group) and the sticky bit (`/tmp`-like directories) stay.

use std::io::Read;

use super::entry::Entry;
use super::error::BackupError;
use super::scan::EntrySink;

/// The setuid and setgid bits.
pub const SETID_BITS: u32 = 0o6000;

/// Whether setuid and setgid bits on files of an unverified archive survive the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialBits {
    /// Clear them (the default for archives without a manifest).
    Clear,
    /// Restore them as the archive has them.
    Keep,
}

/// A sink that passes every entry on to `inner`, with the setuid and setgid bits taken off
/// files, and notes which files had them.
pub(crate) struct ClearSetid<'s> {
    inner: &'s mut dyn EntrySink,
    /// Paths of the files whose bits were cleared, in archive order.
    pub cleared: Vec<String>,
}

impl<'s> ClearSetid<'s> {
    pub(crate) fn new(inner: &'s mut dyn EntrySink) -> Self {
        Self {
            inner,
            cleared: Vec::new(),
        }
    }
}

impl EntrySink for ClearSetid<'_> {
    fn dir(&mut self, e: &Entry) -> Result<(), BackupError> {
        self.inner.dir(e)
    }

    fn file(&mut self, e: &Entry, data: &mut dyn Read) -> Result<(), BackupError> {
        if e.mode & SETID_BITS == 0 {
            return self.inner.file(e, data);
        }
        let mut plain = e.clone();
        plain.mode &= !SETID_BITS;
        self.cleared.push(e.path.clone());
        self.inner.file(&plain, data)
    }

    fn symlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        self.inner.symlink(e)
    }

    // A hard link shares its file's inode, so the file's bits, already cleared, are its bits.
    fn hardlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        self.inner.hardlink(e)
    }
}
