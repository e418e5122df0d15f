//! Stopping a backup or restore early, on request (SIGINT, SIGTERM), at a point where
//! stopping leaves everything consistent.
//!
//! The work checks a [`Stop`] between steps (before each copy is replicated, before each file
//! of a replication, before a restore is swapped in) and inside every long stream: reading a
//! source, compressing, copying an archive, unpacking a restore. A stream that sees the
//! request fails with [`stopped_io`], so the step unwinds the way it does for any I/O error:
//! a temporary file is dropped (and so removed), a staging directory deleted, a half-sent
//! archive removed from its copy. Whatever already committed stays: a snapshot is in a copy
//! whole, with its manifest, or not at all.
//!
//! Steps that must not stop halfway are not checked inside: renames that commit, swapping a
//! staged volume in, bringing quiesced services back.

use std::io::{self, Read};

use tokio_util::sync::CancellationToken;

/// A request to stop, shared with whoever may make it; [`Stop::never`] is never requested.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<CancellationToken>);

impl Stop {
    /// A stop that is never requested.
    pub fn never() -> Self {
        Stop(None)
    }

    /// Requested when `token` is cancelled.
    pub fn on(token: CancellationToken) -> Self {
        Stop(Some(token))
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.0.as_ref().is_some_and(CancellationToken::is_cancelled)
    }

    /// An I/O error when a stop was requested, for checks inside a stream.
    pub fn check_io(&self) -> io::Result<()> {
        if self.requested() {
            Err(stopped_io())
        } else {
            Ok(())
        }
    }

    /// Completes when a stop is requested; never, for [`Stop::never`].
    pub async fn requested_async(&self) {
        match &self.0 {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }
}

/// The error a stream fails with when a stop was requested. Not [`io::ErrorKind::Interrupted`],
/// which readers and writers retry.
pub fn stopped_io() -> io::Error {
    io::Error::other("stopped on request")
}

/// A reader that fails with [`stopped_io`] once a stop is requested, checked on every read.
pub struct StopReader<R> {
    inner: R,
    stop: Stop,
}

impl<R> StopReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, stop: &Stop) -> Self {
        StopReader {
            inner,
            stop: stop.clone(),
        }
    }
}

impl<R: Read> Read for StopReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stop.check_io()?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_fails_once_stopped_and_never_before() {
        let token = CancellationToken::new();
        let stop = Stop::on(token.clone());
        let mut r = StopReader::new(io::repeat(7), &stop);
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        token.cancel();
        let err = r.read(&mut buf).unwrap_err();
        assert_ne!(
            err.kind(),
            io::ErrorKind::Interrupted,
            "must not be retried"
        );
        assert!(stop.requested());
        assert!(!Stop::never().requested());
        assert!(Stop::never().check_io().is_ok());
    }
}
