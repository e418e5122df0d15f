//! Bytes crossing between synchronous archive code and a transfer that runs on the runtime,
//! in chunks down a bounded channel, so the two overlap and memory holds a few chunks:
//! - uploads: a [`ChunkWriter`] cuts what is written into chunks; the paired stream is the
//!   upload's body;
//! - downloads: a [`ChunkSender`] forwards what the engine sends; the paired [`ChunkReader`]
//!   reads it as one stream.
//!
//! The end of the data is an explicit mark. A channel that closes without it (a sender
//! dropped, a transfer cut) reads as an error, never as data that happened to end there.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::StreamExt;

use super::TarChunks;

/// How many chunks may wait in the channel.
const CHANNEL_CHUNKS: usize = 16;
/// The size of one chunk.
const CHUNK: usize = 1 << 20;

/// A blocking [`Write`] feeding [`channel`]'s stream. Must not be written on a runtime thread.
pub struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// A writer and the stream of what is written to it. The stream ends when the writer is
/// [finished](ChunkWriter::finish); a writer dropped without finishing, or [failed](ChunkWriter::fail),
/// ends it with an error, so a half-built body never reads as a complete one.
pub fn channel() -> (ChunkWriter, TarChunks<'static, io::Error>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let stream = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            // The empty chunk is the writer's end mark.
            Some(Ok(c)) if c.is_empty() => None,
            Some(chunk) => Some((chunk, (rx, false))),
            None => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the data ended before it was complete",
                )),
                (rx, true),
            )),
        }
    })
    .boxed();
    let writer = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    (writer, stream)
}

impl ChunkWriter {
    fn send(&mut self, chunk: io::Result<Bytes>) -> io::Result<()> {
        self.tx.blocking_send(chunk).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the receiving end stopped reading",
            )
        })
    }

    fn send_full(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.send(Ok(Bytes::from(chunk)))
    }

    /// Sends what is left and ends the stream.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send_full()?;
        }
        self.send(Ok(Bytes::new()))
    }

    /// Ends the stream with `e`: the upload fails with it.
    pub fn fail(mut self, e: io::Error) {
        let _ = self.send(Err(e));
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_full()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sending half of [`reader`]: forwards chunks from the runtime.
pub struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
}

/// A blocking [`Read`] over the chunks a [`ChunkSender`] forwards. Must not be read on a
/// runtime thread.
pub struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    ended: bool,
}

/// A sender on the runtime's side and a reader for a thread outside it.
pub fn reader() -> (ChunkSender, ChunkReader) {
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let reader = ChunkReader {
        rx,
        current: Bytes::new(),
        ended: false,
    };
    (ChunkSender { tx }, reader)
}

impl ChunkSender {
    /// Forwards one chunk (or the error that ends the data). False when the reader is gone:
    /// the transfer can stop.
    pub async fn send(&self, chunk: io::Result<Bytes>) -> bool {
        match chunk {
            // An empty chunk is the end mark; one from the source carries nothing.
            Ok(c) if c.is_empty() => true,
            chunk => self.tx.send(chunk).await.is_ok(),
        }
    }

    /// Marks the end of the data.
    pub async fn finish(self) {
        let _ = self.tx.send(Ok(Bytes::new())).await;
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(c)) if c.is_empty() => self.ended = true,
                Some(chunk) => self.current = chunk?,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the transfer was cut before the data ended",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    fn collect(stream: TarChunks<'static, io::Error>) -> io::Result<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let chunks: Vec<Bytes> = stream.try_collect().await?;
            Ok(chunks.concat())
        })
    }

    #[test]
    fn what_is_written_arrives_whole_and_in_order() {
        let (mut w, stream) = channel();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.finish().unwrap();
        });
        assert_eq!(collect(stream).unwrap(), data);
        t.join().unwrap();
    }

    #[test]
    fn a_writer_that_fails_or_vanishes_ends_the_stream_with_an_error() {
        let (mut w, stream) = channel();
        let t = std::thread::spawn(move || {
            w.write_all(b"half").unwrap();
            w.fail(io::Error::other("cannot read the source"));
        });
        let e = collect(stream).unwrap_err();
        assert_eq!(e.to_string(), "cannot read the source");
        t.join().unwrap();

        let (mut w, stream) = channel();
        let t = std::thread::spawn(move || {
            w.write_all(&vec![1u8; CHUNK + 1]).unwrap();
            drop(w);
        });
        let e = collect(stream).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        t.join().unwrap();
    }

    #[test]
    fn a_reader_sees_the_data_to_its_end_mark_and_a_cut_as_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut r) = reader();
        let t = std::thread::spawn(move || {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map(|_| all)
        });
        rt.block_on(async {
            assert!(tx.send(Ok(Bytes::from_static(b"ab"))).await);
            assert!(tx.send(Ok(Bytes::new())).await);
            assert!(tx.send(Ok(Bytes::from_static(b"c"))).await);
            tx.finish().await;
        });
        assert_eq!(t.join().unwrap().unwrap(), b"abc");

        let (tx, mut r) = reader();
        let t = std::thread::spawn(move || {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map(|_| all)
        });
        rt.block_on(async {
            assert!(tx.send(Ok(Bytes::from_static(b"ab"))).await);
            drop(tx);
        });
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
