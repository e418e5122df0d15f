//! Writing checked entries into a new tar stream, for a restore into a place we cannot write
//! directly (a Docker volume, unpacked by the engine). Only [`scan`](super::scan) feeds this
//! sink, after its safety checks, so the stream holds exactly the entries a restore into a
//! directory would write, with the modes it would give them: nothing the scan skipped (fifos,
//! devices) or refused reaches the engine, whose unpacking would create them.
//!
//! Entries are written with GNU headers (long names as GNU long-name entries), numeric
//! owners, and whole-second mtimes, as our own archives are.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::entry::{Entry, EntryKind};
use super::error::BackupError;
use super::scan::EntrySink;

/// Re-tars entries into `out`; [`Retar::finish`] writes the end marker.
pub(crate) struct Retar<W: Write> {
    builder: tar::Builder<W>,
    /// The directory of the spool file, for errors.
    dest: PathBuf,
}

impl<W: Write> Retar<W> {
    pub(crate) fn new(out: W, dest: &Path) -> Self {
        Self {
            builder: tar::Builder::new(out),
            dest: dest.to_path_buf(),
        }
    }

    fn err(&self, e: &Entry, source: io::Error) -> BackupError {
        BackupError::WriteSpool {
            dir: self.dest.clone(),
            entry: e.path.clone(),
            source,
        }
    }

    fn header(e: &Entry, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(size);
        h
    }

    fn link(&mut self, e: &Entry, kind: tar::EntryType) -> Result<(), BackupError> {
        let mut h = Self::header(e, kind, 0);
        let target = e.target.as_deref().unwrap_or_default();
        self.builder
            .append_link(&mut h, &e.path, target)
            .map_err(|s| self.err(e, s))
    }

    /// Ends the stream and returns the writer.
    pub(crate) fn finish(self) -> Result<W, BackupError> {
        let dest = self.dest;
        self.builder
            .into_inner()
            .map_err(|source| BackupError::WriteSpool {
                dir: dest,
                entry: "the end of the tar stream".into(),
                source,
            })
    }
}

impl<W: Write> EntrySink for Retar<W> {
    fn dir(&mut self, e: &Entry) -> Result<(), BackupError> {
        let mut h = Self::header(e, tar::EntryType::Directory, 0);
        self.builder
            .append_data(&mut h, &e.path, io::empty())
            .map_err(|s| self.err(e, s))
    }

    fn file(&mut self, e: &Entry, data: &mut dyn Read) -> Result<(), BackupError> {
        debug_assert_eq!(e.kind, EntryKind::File);
        // The header must state the size before the content: the scan gives the size the
        // archive's header declared, and reports the archive damaged when the content turns
        // out shorter, in which case this stream is thrown away.
        let mut h = Self::header(e, tar::EntryType::Regular, e.size);
        self.builder
            .append_data(&mut h, &e.path, data.take(e.size))
            .map_err(|s| self.err(e, s))
    }

    fn symlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        self.link(e, tar::EntryType::Symlink)
    }

    fn hardlink(&mut self, e: &Entry) -> Result<(), BackupError> {
        self.link(e, tar::EntryType::Link)
    }
}
