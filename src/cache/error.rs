//! Errors of the cache store.

use std::io;
use std::path::PathBuf;

use crate::fingerprint::InputError;

/// Why a cache operation failed; each says what was being done and to what.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("'{fingerprint}' is not a fingerprint")]
    InvalidFingerprint { fingerprint: String },
    #[error("the key hashes to {actual}, but the lookup was for {expected}")]
    KeyMismatch { expected: String, actual: String },
    #[error("declared output '{output}' was not produced")]
    MissingOutput { output: String },
    #[error("declared output '{output}' is outside the project directory")]
    OutputOutsideRoot { output: String },
    #[error("cannot collect declared output '{output}'")]
    CollectOutput { output: String, source: InputError },
    #[error("cannot archive output {path}")]
    ArchiveOutput { path: PathBuf, source: io::Error },
    #[error("output {path} changed while it was being archived")]
    OutputChanged { path: PathBuf },
    #[error("cannot write cache archive {path}")]
    WriteArchive { path: PathBuf, source: io::Error },
    #[error("cannot write cache metadata {path}")]
    WriteMetadata { path: PathBuf, source: io::Error },
    #[error("cannot read cache metadata {path}")]
    ReadMetadata { path: PathBuf, source: io::Error },
    #[error("cannot read cache archive {path}")]
    ReadArchive { path: PathBuf, source: io::Error },
    #[error("cache entry {fingerprint} is corrupt: {reason}")]
    Corrupt { fingerprint: String, reason: String },
    #[error("cannot restore output {path}")]
    RestoreOutput { path: PathBuf, source: io::Error },
    #[error("cannot list cache directory {path}")]
    List { path: PathBuf, source: io::Error },
    #[error("cannot remove cache file {path}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot write the last-success record {path}")]
    WriteRecord { path: PathBuf, source: io::Error },
    #[error("cannot read the last-success record {path}")]
    ReadRecord { path: PathBuf, source: io::Error },
}
