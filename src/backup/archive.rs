//! Writing one snapshot archive: a standard `.tar.zst` that plain `tar --zstd -xf` restores.
//!
//! Entries are written in sorted path order (so parents precede children and equal content
//! gives an equal entry list), with mode, uid/gid, mtime and symlink targets. File content is
//! streamed from its source, hashed on the way, and never held in memory whole. Compression
//! is zstd at a configurable level on all cores.
//!
//! Two sources: a host directory, or a tar stream such as Docker's archive API returns. A
//! stream arrives in arbitrary order, so its file contents are first spooled to an anonymous
//! temp file (hashed as they go) and then written out sorted.
//!
//! Archiving is two steps, [`prepare`] then [`Prepared::write`], so that the content id can be
//! known before anything is compressed: a spooled stream is hashed already, and a host
//! directory's files can be answered from a stat cache.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::entry::{check_symlink_target, normalize_path, Entry, EntryKind};
use super::error::{display_name, BackupError};
use super::hashing::{HashingReader, HashingWriter};
use super::manifest::snapshot_id;
use super::skipped::{Skipped, SkippedKind};
use super::stop::{Stop, StopReader};
use crate::fingerprint::statcache::{self, StatCache};
use rayon::prelude::*;

/// Compression settings.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// zstd level (1..=19; 3 is zstd's default).
    pub level: i32,
    /// Compression worker threads; 0 means one per core.
    pub threads: u32,
    /// Where a tar-stream source is spooled; `None` is the system temp dir.
    pub spool_dir: Option<PathBuf>,
    /// A stat cache file for a host-directory source, so that an unchanged tree is
    /// recognised without reading it; `None` reads every file.
    pub stat_cache: Option<PathBuf>,
    /// Checked while the source is read and compressed.
    pub stop: Stop,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        Self {
            level: 3,
            threads: 0,
            spool_dir: None,
            stat_cache: None,
            stop: Stop::never(),
        }
    }
}

/// What to back up.
pub enum Source {
    /// A host directory; its contents (not the directory itself) are archived.
    Dir(PathBuf),
    /// A tar stream; `strip_components` leading path parts are removed from each entry,
    /// as Docker's archive API prefixes entries with the base name of the requested path.
    TarStream {
        reader: Box<dyn Read + Send>,
        strip_components: usize,
    },
}

impl Source {
    /// A host directory.
    pub fn from_dir(path: impl Into<PathBuf>) -> Self {
        Source::Dir(path.into())
    }

    /// A tar stream whose entry paths are used as they are.
    pub fn from_tar_stream(reader: impl Read + Send + 'static) -> Self {
        Source::TarStream {
            reader: Box::new(reader),
            strip_components: 0,
        }
    }

    /// A short description for the manifest.
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(p) => format!("dir:{}", p.display()),
            Source::TarStream { .. } => "tar-stream".to_string(),
        }
    }
}

/// The result of writing an archive.
#[derive(Debug, Clone)]
pub struct ArchiveSummary {
    /// Entries in archive order, with file hashes.
    pub entries: Vec<Entry>,
    /// sha256 of the compressed archive.
    pub sha256: String,
    /// Size of the compressed archive.
    pub size: u64,
    /// Objects that were not archived (sockets, devices, fifos).
    pub skipped: Vec<Skipped>,
    /// Entries that restore will refuse (symlinks pointing out of the root).
    pub warnings: Vec<String>,
}

/// Where an entry's content comes from.
enum Content {
    None,
    /// A host file, with the metadata its entry was made from.
    Path(PathBuf, Box<fs::Metadata>),
    Spool {
        offset: u64,
    },
}

struct Item {
    entry: Entry,
    content: Content,
}

/// A source listed (and, for a tar stream, spooled and hashed) but not yet archived: its
/// content id may already be known, so an unchanged source need not be compressed at all.
pub struct Prepared {
    items: BTreeMap<String, Item>,
    spool: Option<File>,
    skipped: Vec<Skipped>,
    warnings: Vec<String>,
}

/// Lists `source`. A host directory is only stat-ed; a tar stream is read to its end, its
/// file contents spooled to an anonymous temp file and hashed on the way.
pub fn prepare(source: Source, opts: &ArchiveOptions) -> Result<Prepared, BackupError> {
    let mut skipped = Vec::new();
    let (items, spool) = match source {
        Source::Dir(root) => (collect_dir(&root, &mut skipped)?, None),
        Source::TarStream {
            reader,
            strip_components,
        } => {
            let (items, spool) = spool_stream(reader, strip_components, opts, &mut skipped)?;
            (items, Some(spool))
        }
    };
    let warnings = items
        .values()
        .filter(|i| i.entry.kind == EntryKind::Symlink)
        .filter_map(|i| {
            let target = i.entry.target.as_deref().unwrap_or("");
            check_symlink_target(&i.entry.path, target)
                .err()
                .map(|why| {
                    format!(
                        "{}: {why}; restore will refuse it",
                        display_name(&i.entry.path)
                    )
                })
        })
        .collect();
    Ok(Prepared {
        items,
        spool,
        skipped,
        warnings,
    })
}

impl Prepared {
    /// Takes the hash of every host file whose stat-cache record still matches it; returns
    /// how many files are still unhashed.
    pub fn hash_from_cache(&mut self, cache: &mut StatCache) -> usize {
        let mut missing = 0;
        for item in self.items.values_mut() {
            if let Content::Path(path, meta) = &item.content {
                match cache.lookup(path, meta) {
                    Some(hash) => item.entry.sha256 = Some(hex::encode(hash)),
                    None => missing += 1,
                }
            }
        }
        missing
    }

    /// Reads and hashes the host files the cache could not answer, if they hold at most
    /// `max_share` of the tree's bytes: when a few files were touched, hashing just them is
    /// cheaper than compressing the whole tree to learn that nothing changed. Returns whether
    /// it hashed; the cache learns the hashes.
    pub fn hash_missing(
        &mut self,
        cache: &mut StatCache,
        max_share: f64,
        stop: &Stop,
    ) -> Result<bool, BackupError> {
        let (mut missing, mut total) = (0u64, 0u64);
        let mut todo = Vec::new();
        for item in self.items.values_mut() {
            if let Content::Path(path, meta) = &item.content {
                total += item.entry.size;
                if item.entry.sha256.is_none() {
                    missing += item.entry.size;
                    todo.push((path.clone(), meta.clone(), &mut item.entry));
                }
            }
        }
        if todo.is_empty() || missing as f64 > max_share * total as f64 {
            return Ok(false);
        }
        let hashed_at = statcache::now_ns();
        let hashes: Vec<[u8; 32]> = todo
            .par_iter()
            .map(|(path, _, _)| {
                if stop.requested() {
                    return Err(BackupError::Stopped);
                }
                statcache::hash_file(path).map_err(|source| BackupError::ReadSource {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        for ((path, meta, entry), hash) in todo.into_iter().zip(hashes) {
            cache.record(&path, &meta, hash, hashed_at);
            entry.sha256 = Some(hex::encode(hash));
        }
        Ok(true)
    }

    /// The snapshot's content id, if every file's hash is already known.
    pub fn known_id(&self) -> Option<String> {
        let entries: Vec<Entry> = self.items.values().map(|i| i.entry.clone()).collect();
        entries
            .iter()
            .all(|e| e.kind != EntryKind::File || e.sha256.is_some())
            .then(|| snapshot_id(&entries))
    }

    /// Objects that will not be archived (sockets, devices, fifos).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Entries that restore will refuse (symlinks pointing out of the root).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Writes the compressed archive to `out`; `out_path` only names the destination in
    /// errors. Host files are hashed again as they are read, so the manifest describes the
    /// bytes in the archive even if a file changed after [`Prepared::hash_from_cache`]; when
    /// `cache` is given, it learns those hashes.
    pub fn write<W: Write + Send>(
        self,
        out: W,
        out_path: &Path,
        opts: &ArchiveOptions,
        cache: Option<&mut StatCache>,
    ) -> Result<ArchiveSummary, BackupError> {
        let werr = |source| BackupError::WriteArchive {
            path: out_path.to_path_buf(),
            source,
        };
        let skipped = self.skipped.clone();
        let warnings = self.warnings.clone();
        // The compressed output is hashed and written on a thread of its own: the thread
        // that reads, hashes and feeds the sources is the one everything else waits for.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(OUTPUT_QUEUE);
        let (fed, written) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> io::Result<(String, u64)> {
                let mut hashed = HashingWriter::new(out);
                for chunk in rx {
                    hashed.write_all(&chunk)?;
                }
                let (mut out, sha256, size) = hashed.finish();
                out.flush()?;
                Ok((sha256, size))
            });
            let fed = self.feed(QueueWriter::new(tx), out_path, opts, cache);
            // `feed` has dropped the queue by now, so the writer sees its end.
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the archive writer panicked")));
            (fed, written)
        });
        // A failed write stops the queue, which the feeding side then sees as a broken pipe:
        // the writer's own error is the cause worth showing.
        let (sha256, size) = written.map_err(werr)?;
        let entries = fed?;
        Ok(ArchiveSummary {
            entries,
            sha256,
            size,
            skipped,
            warnings,
        })
    }

    /// Tars and compresses every item into `out`; returns the entries with their hashes.
    fn feed(
        self,
        out: QueueWriter,
        out_path: &Path,
        opts: &ArchiveOptions,
        mut cache: Option<&mut StatCache>,
    ) -> Result<Vec<Entry>, BackupError> {
        let werr = |source| BackupError::WriteArchive {
            path: out_path.to_path_buf(),
            source,
        };
        // Taken before reading, so a write racing the read is on the distrusted side.
        let hashed_at = statcache::now_ns();
        let threads = if opts.threads == 0 {
            num_cpus::get() as u32
        } else {
            opts.threads
        };
        let encoder = StoppableZstd::new(opts.level, threads, &opts.stop).map_err(werr)?;
        let encoder = zstd::stream::zio::Writer::new(out, encoder);
        // zstd wants large writes: per-call overhead (and with workers, locking) dominates at
        // tar's 8 KiB steps.
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, encoder));
        let mut entries = Vec::with_capacity(self.items.len());
        let mut spool = self.spool;
        // One read buffer for all files: large reads without an allocation per file.
        let mut chunk = vec![0u8; 1 << 20];
        for (_, mut item) in self.items {
            if opts.stop.requested() {
                return Err(BackupError::Stopped);
            }
            append_item(
                &mut builder,
                &mut item,
                spool.as_mut(),
                &mut chunk,
                out_path,
                &opts.stop,
            )?;
            if let (Some(cache), Content::Path(path, meta), Some(sha)) =
                (cache.as_deref_mut(), &item.content, &item.entry.sha256)
            {
                let mut hash = [0u8; 32];
                if hex::decode_to_slice(sha, &mut hash).is_ok() {
                    cache.record(path, meta, hash, hashed_at);
                }
            }
            entries.push(item.entry);
        }
        let buffered = builder.into_inner().map_err(werr)?;
        let mut encoder = buffered.into_inner().map_err(|e| werr(e.into_error()))?;
        encoder.finish().map_err(werr)?;
        let (queue, _) = encoder.into_inner();
        queue.finish().map_err(werr)?;
        Ok(entries)
    }
}

/// zstd's multithreaded encoder, made to end within one step when a stop is requested.
///
/// In multithreaded mode each call into libzstd returns once some input was taken or some
/// output is ready (a 512 KiB chunk of a job), so checking the stop before every call bounds
/// the wait by one chunk, even at level 19. Freeing the context waits for every job under way,
/// which can take seconds at high levels; after a stop nothing needs their output, so the
/// context is freed on a thread of its own and nobody waits.
struct StoppableZstd {
    inner: Option<zstd::stream::raw::Encoder<'static>>,
    stop: Stop,
}

impl StoppableZstd {
    fn new(level: i32, threads: u32, stop: &Stop) -> io::Result<Self> {
        use zstd::stream::raw::CParameter;
        let mut inner = zstd::stream::raw::Encoder::new(level)?;
        inner.set_parameter(CParameter::NbWorkers(threads))?;
        inner.set_parameter(CParameter::ChecksumFlag(true))?;
        Ok(StoppableZstd {
            inner: Some(inner),
            stop: stop.clone(),
        })
    }

    /// The encoder, once the stop was checked.
    fn encoder(&mut self) -> io::Result<&mut zstd::stream::raw::Encoder<'static>> {
        self.stop.check_io()?;
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("the compressor is gone"))
    }
}

impl zstd::stream::raw::Operation for StoppableZstd {
    fn run<C: zstd::stream::raw::WriteBuf + ?Sized>(
        &mut self,
        input: &mut zstd::stream::raw::InBuffer<'_>,
        output: &mut zstd::stream::raw::OutBuffer<'_, C>,
    ) -> io::Result<usize> {
        self.encoder()?.run(input, output)
    }

    fn flush<C: zstd::stream::raw::WriteBuf + ?Sized>(
        &mut self,
        output: &mut zstd::stream::raw::OutBuffer<'_, C>,
    ) -> io::Result<usize> {
        self.encoder()?.flush(output)
    }

    fn reinit(&mut self) -> io::Result<()> {
        self.encoder()?.reinit()
    }

    fn finish<C: zstd::stream::raw::WriteBuf + ?Sized>(
        &mut self,
        output: &mut zstd::stream::raw::OutBuffer<'_, C>,
        finished_frame: bool,
    ) -> io::Result<usize> {
        self.encoder()?.finish(output, finished_frame)
    }
}

impl Drop for StoppableZstd {
    fn drop(&mut self) {
        if let (true, Some(inner)) = (self.stop.requested(), self.inner.take()) {
            std::thread::spawn(move || drop(inner));
        }
    }
}

/// Compressed chunks waiting for the archive writer thread.
const OUTPUT_QUEUE: usize = 8;
/// Size of the chunks handed to the writer thread.
const OUTPUT_CHUNK: usize = 1 << 20;

/// Collects writes into large chunks and queues them for the writer thread.
struct QueueWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl QueueWriter {
    fn new(tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(OUTPUT_CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(OUTPUT_CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archive writer stopped"))
    }

    /// Queues what is left; dropping the writer then ends the queue.
    fn finish(mut self) -> io::Result<()> {
        self.send()
    }
}

impl Write for QueueWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUTPUT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Reads `source` and writes the compressed archive to `out`. `out_path` only names the
/// destination in errors.
pub fn write_archive(
    source: Source,
    out: impl Write + Send,
    out_path: &Path,
    opts: &ArchiveOptions,
) -> Result<ArchiveSummary, BackupError> {
    prepare(source, opts)?.write(out, out_path, opts, None)
}

fn append_item<W: Write>(
    builder: &mut tar::Builder<W>,
    item: &mut Item,
    spool: Option<&mut File>,
    chunk: &mut [u8],
    out_path: &Path,
    stop: &Stop,
) -> Result<(), BackupError> {
    let e = &mut item.entry;
    let mut header = tar::Header::new_gnu();
    header.set_mode(e.mode);
    header.set_uid(e.uid);
    header.set_gid(e.gid);
    header.set_mtime(e.mtime);
    let werr = |source| BackupError::WriteArchive {
        path: out_path.to_path_buf(),
        source,
    };
    match e.kind {
        EntryKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, &e.path, io::empty())
                .map_err(werr)
        }
        EntryKind::Symlink | EntryKind::Hardlink => {
            header.set_entry_type(if e.kind == EntryKind::Symlink {
                tar::EntryType::Symlink
            } else {
                tar::EntryType::Link
            });
            header.set_size(0);
            let target = e.target.clone().unwrap_or_default();
            builder
                .append_link(&mut header, &e.path, &target)
                .map_err(werr)
        }
        EntryKind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(e.size);
            let (data, src_path): (Box<dyn Read + '_>, PathBuf) = match &item.content {
                Content::Path(p, _) => {
                    let f = File::open(p).map_err(|source| BackupError::ReadSource {
                        path: p.clone(),
                        source,
                    })?;
                    (Box::new(f), p.clone())
                }
                Content::Spool { offset } => {
                    let spool = spool.ok_or_else(|| BackupError::BadSourceEntry {
                        path: e.path.clone(),
                        reason: "spooled content missing".into(),
                    })?;
                    spool.seek(SeekFrom::Start(*offset)).map_err(|source| {
                        BackupError::ReadSource {
                            path: PathBuf::from("<spool>"),
                            source,
                        }
                    })?;
                    (Box::new(spool.take(e.size)), PathBuf::from(&e.path))
                }
                Content::None => (Box::new(io::empty()), PathBuf::from(&e.path)),
            };
            // Spooled content was hashed on its way into the private spool; a host file is
            // hashed as it is read, since it may have changed since it was listed.
            let rehash = matches!(item.content, Content::Path(..)) || e.sha256.is_none();
            let read_err = |source: io::Error| {
                if source.kind() == io::ErrorKind::UnexpectedEof {
                    BackupError::ReadSource {
                        path: src_path.clone(),
                        source,
                    }
                } else {
                    werr(source)
                }
            };
            let exact = Exact::new(Chunked::new(StopReader::new(data, stop), chunk), e.size);
            if rehash {
                let mut hashed = HashingReader::new(exact);
                builder
                    .append_data(&mut header, &e.path, &mut hashed)
                    .map_err(read_err)?;
                e.sha256 = Some(hashed.finish().0);
            } else {
                builder
                    .append_data(&mut header, &e.path, exact)
                    .map_err(read_err)?;
            }
            Ok(())
        }
    }
}

/// Serves small reads (tar copies in 8 KiB steps) from large reads into a borrowed buffer.
struct Chunked<'b, R> {
    inner: R,
    buf: &'b mut [u8],
    pos: usize,
    len: usize,
}

impl<'b, R: Read> Chunked<'b, R> {
    fn new(inner: R, buf: &'b mut [u8]) -> Self {
        Self {
            inner,
            buf,
            pos: 0,
            len: 0,
        }
    }
}

impl<R: Read> Read for Chunked<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            self.len = self.inner.read(self.buf)?;
            self.pos = 0;
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Yields exactly `len` bytes of `inner`: a file that shrank while being read is an error
/// (the tar header already promised `len` bytes); one that grew is cut at `len`.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, len: u64) -> Self {
        Self { inner, left: len }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived; quiesce the source and retry",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn collect_dir(
    root: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<BTreeMap<String, Item>, BackupError> {
    let mut items = BTreeMap::new();
    let meta = fs::metadata(root).map_err(|source| BackupError::ReadSource {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(BackupError::ReadSource {
            path: root.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotADirectory,
                "backup source is not a directory",
            ),
        });
    }
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|source| BackupError::ReadSource {
            path: dir.clone(),
            source,
        })?;
        for de in rd {
            let de = de.map_err(|source| BackupError::ReadSource {
                path: dir.clone(),
                source,
            })?;
            let path = de.path();
            let name = de
                .file_name()
                .into_string()
                .map_err(|n| BackupError::BadSourceEntry {
                    path: format!("{rel}/{}", n.to_string_lossy()),
                    reason: "file name is not UTF-8".into(),
                })?;
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let m = fs::symlink_metadata(&path).map_err(|source| BackupError::ReadSource {
                path: path.clone(),
                source,
            })?;
            let ft = m.file_type();
            let mut entry = Entry {
                path: rel_path.clone(),
                kind: EntryKind::File,
                mode: m.permissions().mode() & 0o7777,
                uid: u64::from(m.uid()),
                gid: u64::from(m.gid()),
                mtime: m.mtime().max(0) as u64,
                size: 0,
                sha256: None,
                target: None,
            };
            let content = if ft.is_dir() {
                entry.kind = EntryKind::Dir;
                stack.push((path, rel_path.clone()));
                Content::None
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| BackupError::ReadSource {
                    path: path.clone(),
                    source,
                })?;
                let target = target.into_os_string().into_string().map_err(|_| {
                    BackupError::BadSourceEntry {
                        path: rel_path.clone(),
                        reason: "symlink target is not UTF-8".into(),
                    }
                })?;
                entry.kind = EntryKind::Symlink;
                entry.target = Some(target);
                Content::None
            } else if ft.is_file() {
                entry.size = m.len();
                Content::Path(path, Box::new(m))
            } else {
                skipped.push(Skipped {
                    path: rel_path,
                    kind: SkippedKind::of_special_file(ft),
                });
                continue;
            };
            items.insert(rel_path, Item { entry, content });
        }
    }
    Ok(items)
}

fn spool_stream(
    reader: Box<dyn Read + Send>,
    strip: usize,
    opts: &ArchiveOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<(BTreeMap<String, Item>, File), BackupError> {
    let dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool = crate::fsutil::unnamed_temp_in(&dir).map_err(|source| BackupError::Spool {
        dir: dir.clone(),
        source,
    })?;
    let stream_err = |source| BackupError::ReadSource {
        path: PathBuf::from("<tar stream>"),
        source,
    };
    let spool_err = |source| BackupError::Spool {
        dir: dir.clone(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 20, spool);
    let mut offset = 0u64;
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let mut archive = tar::Archive::new(StopReader::new(reader, &opts.stop));
    for entry in archive.entries().map_err(stream_err)? {
        let mut entry = entry.map_err(stream_err)?;
        let raw = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            BackupError::BadSourceEntry {
                path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "path is not UTF-8".into(),
            }
        })?;
        let stripped: Vec<&str> = raw
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .skip(strip)
            .collect();
        let Some(path) =
            normalize_path(&stripped.join("/")).map_err(|reason| BackupError::BadSourceEntry {
                path: raw.clone(),
                reason,
            })?
        else {
            continue;
        };
        let h = entry.header();
        if let Some(kind) = SkippedKind::of_tar(h.entry_type()) {
            skipped.push(Skipped { path, kind });
            continue;
        }
        let mut e = Entry {
            path: path.clone(),
            kind: EntryKind::File,
            mode: h.mode().map_err(stream_err)? & 0o7777,
            uid: h.uid().map_err(stream_err)?,
            gid: h.gid().map_err(stream_err)?,
            mtime: h.mtime().map_err(stream_err)?,
            size: 0,
            sha256: None,
            target: None,
        };
        let content = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let start = offset;
                let mut hashed = HashingReader::new(&mut entry);
                io::copy(&mut hashed, &mut out).map_err(stream_err)?;
                let (sha, n) = hashed.finish();
                offset += n;
                e.size = n;
                e.sha256 = Some(sha);
                Content::Spool { offset: start }
            }
            tar::EntryType::Directory => {
                e.kind = EntryKind::Dir;
                Content::None
            }
            tar::EntryType::Symlink => {
                e.kind = EntryKind::Symlink;
                e.target = Some(link_target(&entry, &path)?);
                Content::None
            }
            tar::EntryType::Link => {
                // Store hard links as full files: the archive stays restorable entry by entry.
                let target = link_target(&entry, &path)?;
                let target: Vec<&str> = target
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .skip(strip)
                    .collect();
                let target = target.join("/");
                match items.get(&target) {
                    Some(Item {
                        entry: t,
                        content: Content::Spool { offset },
                    }) => {
                        e.size = t.size;
                        e.sha256.clone_from(&t.sha256);
                        Content::Spool { offset: *offset }
                    }
                    // A second name of a skipped fifo or device node is skipped with it.
                    _ => match skipped.iter().rev().find(|s| s.path == target) {
                        Some(s) => {
                            let kind = s.kind;
                            skipped.push(Skipped { path, kind });
                            continue;
                        }
                        None => {
                            return Err(BackupError::BadSourceEntry {
                                path,
                                reason: format!(
                                    "hard link to {}, which is not an earlier file",
                                    display_name(&target)
                                ),
                            })
                        }
                    },
                }
            }
            // Extension headers the tar reader has already applied to the next entry.
            _ => continue,
        };
        items.insert(path, Item { entry: e, content });
    }
    let spool = out.into_inner().map_err(|e| spool_err(e.into_error()))?;
    Ok((items, spool))
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> Result<String, BackupError> {
    let bytes = entry
        .link_name_bytes()
        .ok_or_else(|| BackupError::BadSourceEntry {
            path: path.to_string(),
            reason: "link without a target".into(),
        })?;
    String::from_utf8(bytes.into_owned()).map_err(|_| BackupError::BadSourceEntry {
        path: path.to_string(),
        reason: "link target is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_refuses_a_shrunk_file_and_cuts_a_grown_one() {
        let mut out = Vec::new();
        let err = Exact::new(&b"abc"[..], 5)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut out = Vec::new();
        Exact::new(&b"abcdef"[..], 4).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
    }

    /// Accepts `room` bytes, then fails like a full disk.
    struct FullDisk {
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("no space left on the backup disk"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_destination_is_reported_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible, so the output outgrows the room at once.
        let mut noise = vec![0u8; 4 << 20];
        let mut x = 0x2545_f491_u32;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        fs::write(dir.path().join("noise"), &noise).unwrap();
        let err = write_archive(
            Source::from_dir(dir.path()),
            FullDisk { room: 64 << 10 },
            Path::new("/backups/x.tar.zst"),
            &ArchiveOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::WriteArchive { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("no space left"), "{cause}");
    }

    #[test]
    fn chunked_reader_yields_everything_in_order() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
        let mut buf = vec![0u8; 64];
        let mut out = Vec::new();
        Chunked::new(&data[..], &mut buf)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
