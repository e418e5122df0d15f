//! Turns Docker's multiplexed output frames into [`LogLine`]s.
//!
//! A frame boundary need not fall on a newline: a partial line is held, per stream, until
//! its end arrives, and flushed when the output ends. An error ends the lines after what
//! came before it.

use std::collections::VecDeque;

use bollard::container::LogOutput;
use futures_util::stream::{self, BoxStream, StreamExt};

use super::info::{LogLine, LogStream};
use super::Result;

/// Splits output frames into lines, per stream, holding a partial line until its
/// end arrives (a frame boundary need not fall on a newline).
pub(crate) fn split_lines<'a>(
    frames: impl futures_util::Stream<Item = Result<LogOutput>> + Send + 'a,
) -> BoxStream<'a, Result<LogLine>> {
    struct State<S> {
        frames: S,
        partial: [String; 2],
        ready: VecDeque<Result<LogLine>>,
        done: bool,
    }
    let state = State {
        frames: Box::pin(frames),
        partial: [String::new(), String::new()],
        ready: VecDeque::new(),
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.frames.next().await {
                Some(Ok(frame)) => {
                    let (stream, index, bytes) = match frame {
                        LogOutput::StdErr { message } => (LogStream::Stderr, 1, message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            (LogStream::Stdout, 0, message)
                        }
                        LogOutput::StdIn { .. } => continue,
                    };
                    let buf = &mut st.partial[index];
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(pos) = buf.find('\n') {
                        let line: String = buf.drain(..=pos).collect();
                        st.ready.push_back(Ok(LogLine {
                            stream,
                            line: line.trim_end_matches(['\n', '\r']).to_string(),
                        }));
                    }
                }
                Some(Err(e)) => {
                    st.ready.push_back(Err(e));
                    st.done = true;
                }
                None => {
                    for (index, stream) in [(0, LogStream::Stdout), (1, LogStream::Stderr)] {
                        let rest = std::mem::take(&mut st.partial[index]);
                        if !rest.is_empty() {
                            st.ready.push_back(Ok(LogLine { stream, line: rest }));
                        }
                    }
                    st.done = true;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::error::{BackendError, ObjectKind};

    #[tokio::test]
    async fn frames_are_split_into_lines_per_stream_even_across_frame_boundaries() {
        let frames = vec![
            Ok(LogOutput::StdOut {
                message: "one\ntw".into(),
            }),
            Ok(LogOutput::StdErr {
                message: "err\n".into(),
            }),
            Ok(LogOutput::StdOut {
                message: "o\r\nunterminated".into(),
            }),
        ];
        let lines: Vec<LogLine> = split_lines(stream::iter(frames))
            .map(|l| l.unwrap())
            .collect()
            .await;
        let seen: Vec<(LogStream, &str)> =
            lines.iter().map(|l| (l.stream, l.line.as_str())).collect();
        assert_eq!(
            seen,
            vec![
                (LogStream::Stdout, "one"),
                (LogStream::Stderr, "err"),
                (LogStream::Stdout, "two"),
                (LogStream::Stdout, "unterminated"),
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_error_ends_the_lines_after_what_came_before() {
        let frames = vec![
            Ok(LogOutput::StdOut {
                message: "a\n".into(),
            }),
            Err(BackendError::NotFound {
                kind: ObjectKind::Container,
                name: "web".into(),
            }),
        ];
        let items: Vec<Result<LogLine>> = split_lines(stream::iter(frames)).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].as_ref().unwrap_err().is_not_found());
    }
}
