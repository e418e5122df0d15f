//! Writing and reading the `.tar.zst` archives, hashing as the bytes pass.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::entry::OutputFile;
use super::error::CacheError;
use crate::fingerprint::inputs::InputFile;

/// zstd level: level 3 compresses at hundreds of MB/s per core, far faster than tasks run.
const ZSTD_LEVEL: i32 = 3;

/// A writer that hashes and counts what goes through it.
pub(super) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Returns the inner writer, the sha256 hex and the byte count.
    pub(super) fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what comes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// sha256 hex and size of a file's content.
pub(super) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut File::open(path)?, &mut sink)?;
    let (_, hash, size) = sink.finish();
    Ok((hash, size))
}

/// Whether `path` stays inside the directory it is joined to: relative, no `..`.
pub(super) fn is_contained(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().next().is_some()
}

/// Streams `files` into `out` (the temporary file for `target`) as tar + zstd (multithreaded); returns the per-file records
/// and the archive's sha256 hex and size.
pub(super) fn write_archive(
    out: &mut File,
    target: &Path,
    files: &[InputFile],
) -> Result<(Vec<OutputFile>, String, u64), CacheError> {
    let write_err = |source| CacheError::WriteArchive {
        path: target.to_path_buf(),
        source,
    };
    let mut encoder = zstd::Encoder::new(HashingWriter::new(BufWriter::new(out)), ZSTD_LEVEL)
        .map_err(write_err)?;
    let workers = u32::try_from(num_cpus::get()).unwrap_or(1);
    if workers > 1 {
        // Best effort: a zstd built without threads still compresses, on one core.
        let _ = encoder.multithread(workers);
    }
    let mut builder = tar::Builder::new(encoder);
    let mut records = Vec::with_capacity(files.len());
    for file in files {
        let archive_err = |source| CacheError::ArchiveOutput {
            path: file.path.clone(),
            source,
        };
        let size = file.metadata.len();
        let mode = file.metadata.mode() & 0o7777;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(u64::try_from(file.metadata.mtime()).unwrap_or(0));
        let mut reader = HashingReader {
            inner: File::open(&file.path).map_err(archive_err)?.take(size),
            hasher: Sha256::new(),
            bytes: 0,
        };
        builder
            .append_data(&mut header, &file.name, &mut reader)
            .map_err(archive_err)?;
        // tar pads by what it read, not by the header: a file that shrank or grew since it
        // was stat-ed would leave an archive that lies about it.
        let grew = File::open(&file.path)
            .and_then(|f| f.metadata())
            .map(|m| m.len() != size)
            .unwrap_or(true);
        if reader.bytes != size || grew {
            return Err(CacheError::OutputChanged {
                path: file.path.clone(),
            });
        }
        records.push(OutputFile {
            path: file.name.clone(),
            sha256: hex::encode(reader.hasher.finalize()),
            size,
            mode,
        });
    }
    let encoder = builder.into_inner().map_err(write_err)?;
    let hashing = encoder.finish().map_err(write_err)?;
    let (mut buffered, hash, bytes) = hashing.finish();
    buffered.flush().map_err(write_err)?;
    Ok((records, hash, bytes))
}
