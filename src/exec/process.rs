//! Running a host command for a task or a hook: `sh -c CMD` in a working directory with
//! extra environment, stdout and stderr streamed line by line to a callback (and captured,
//! for the cache log), the child in its own process group.
//!
//! On cancellation the whole group gets SIGINT, as a terminal's Ctrl-C would deliver it;
//! SIGTERM follows after a grace period and SIGKILL after another, so a command that ignores
//! politeness still stops. If the returned future is dropped early, the group is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A shell command to run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    /// The command line, handed to `sh -c`.
    pub script: String,
    /// Working directory.
    pub dir: PathBuf,
    /// Variables added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    /// Time between SIGINT and SIGTERM, and again between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Most bytes of output kept in [`Finished::log`]; older lines are dropped first,
    /// because the end of a log is where a failure explains itself. Streaming to the
    /// callback is not limited.
    pub log_limit: usize,
}

/// Default for [`HostCommand::log_limit`]: 8 MiB.
pub const DEFAULT_LOG_LIMIT: usize = 8 << 20;

impl HostCommand {
    /// `script` in `dir` with no extra environment and the default 5 s grace period.
    pub fn new(script: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        HostCommand {
            script: script.into(),
            dir: dir.into(),
            env: Vec::new(),
            grace: Duration::from_secs(5),
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code 0.
    Success,
    /// A non-zero exit code.
    Code(i32),
    /// Killed by a signal nobody here sent.
    Signal(i32),
    /// Stopped because the run was cancelled.
    Interrupted,
}

impl Exit {
    /// True only for a zero exit code.
    pub fn success(self) -> bool {
        self == Exit::Success
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Success => f.write_str("exit status 0"),
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub exit: Exit,
    /// Every output line, stdout and stderr interleaved in arrival order, each ending in
    /// `\n`. Invalid UTF-8 is replaced, since this is a log for people. Holds only the
    /// last [`HostCommand::log_limit`] bytes when the output was longer.
    pub log: String,
    /// True when older output was dropped to respect the limit.
    pub log_truncated: bool,
}

impl Finished {
    /// The scheduler outcome this ending amounts to: success is `Ran`, anything else a
    /// failure whose message says how the command ended.
    pub fn outcome(&self) -> crate::exec::Outcome {
        match self.exit {
            Exit::Success => crate::exec::Outcome::ran(),
            Exit::Interrupted => crate::exec::Outcome::Failed(crate::exec::Failure::interrupted()),
            other => crate::exec::Outcome::Failed(crate::exec::Failure::work(other.to_string())),
        }
    }
}

/// Why a command could not be run at all (a failing command is a [`Finished`], not this).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `sh` could not be started, or the directory does not exist.
    #[error("cannot start `{command}` in {}", dir.display())]
    Spawn {
        command: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("lost track of `{command}` while waiting for it")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// Kills the process group if the run is abandoned before the child was reaped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Runs `cmd`, calling `on_line` for each output line as it arrives, until it exits or
/// `cancel` fires and the escalation stops it.
pub async fn run_host(
    cmd: &HostCommand,
    mut on_line: impl FnMut(Stream, &str) + Send,
    cancel: &CancellationToken,
) -> Result<Finished, ProcessError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd.script)
        .current_dir(&cmd.dir)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            command: cmd.script.clone(),
            dir: cmd.dir.clone(),
            source,
        })?;
    // With `process_group(0)` the group id is the child's pid.
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut guard = GroupGuard(pgid);

    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, Stream::Stdout, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, Stream::Stderr, tx.clone()));
    }
    drop(tx);

    let mut log = TailLog::new(cmd.log_limit);
    let mut status = None;
    let mut lines_open = true;
    let mut interrupted = false;
    // The next escalation step: when to send which signal.
    let mut next_signal: Option<(Instant, Signal)> = None;

    while status.is_none() || lines_open {
        let deadline = next_signal.map(|(at, _)| at);
        tokio::select! {
            line = rx.recv(), if lines_open => match line {
                Some((stream, text)) => {
                    on_line(stream, &text);
                    log.push(text);
                }
                None => lines_open = false,
            },
            st = child.wait(), if status.is_none() => {
                let st = st.map_err(|source| ProcessError::Wait {
                    command: cmd.script.clone(),
                    source,
                })?;
                status = Some(st);
            },
            _ = cancel.cancelled(), if !interrupted => {
                interrupted = true;
                signal_group(pgid, Signal::SIGINT);
                next_signal = Some((Instant::now() + cmd.grace, Signal::SIGTERM));
            },
            _ = sleep_until_opt(deadline), if deadline.is_some() => {
                if let Some((_, sig)) = next_signal {
                    signal_group(pgid, sig);
                    next_signal = (sig == Signal::SIGTERM)
                        .then(|| (Instant::now() + cmd.grace, Signal::SIGKILL));
                }
            },
        }
    }
    // Reaped, and its pipes are closed: nothing left to kill (and the pid may be reused).
    guard.0 = None;

    let exit = match status {
        _ if interrupted => Exit::Interrupted,
        Some(st) if st.success() => Exit::Success,
        Some(st) => match (
            st.code(),
            std::os::unix::process::ExitStatusExt::signal(&st),
        ) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        },
        None => Exit::Code(-1),
    };
    let (log, log_truncated) = log.finish();
    Ok(Finished {
        exit,
        log,
        log_truncated,
    })
}

/// Runs `cmd` in `dir` and returns its log, for callers that need neither streaming nor
/// cancellation (hooks, probes).
pub async fn run_simple(script: &str, dir: &Path) -> Result<Finished, ProcessError> {
    run_host(
        &HostCommand::new(script, dir),
        |_, _| {},
        &CancellationToken::new(),
    )
    .await
}

/// The last `limit` bytes of output, kept as whole lines.
struct TailLog {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
    limit: usize,
    truncated: bool,
}

impl TailLog {
    fn new(limit: usize) -> Self {
        TailLog {
            lines: std::collections::VecDeque::new(),
            bytes: 0,
            limit,
            truncated: false,
        }
    }

    fn push(&mut self, mut line: String) {
        line.push('\n');
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > self.limit {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
            self.truncated = true;
        }
    }

    fn finish(self) -> (String, bool) {
        (self.lines.into_iter().collect(), self.truncated)
    }
}

fn signal_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(pgid) = pgid {
        // ESRCH means the group is already gone, which is what we wanted.
        let _ = killpg(pgid, sig);
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Forwards each line of `r` (without its newline) until end of file.
async fn pump(
    r: impl AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::UnboundedSender<(Stream, String)>,
) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                if tx.send((stream, line)).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;

    async fn collect(cmd: &HostCommand) -> (Finished, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        let f = run_host(
            cmd,
            |s, l| lines.push((s, l.to_string())),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        (f, lines)
    }

    #[tokio::test]
    async fn streams_and_captures_both_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = HostCommand::new("echo one; echo two >&2; printf 'no newline'", dir.path());
        let (f, lines) = collect(&cmd).await;
        assert_eq!(f.exit, Exit::Success);
        assert_eq!(f.outcome(), crate::exec::Outcome::ran());
        assert!(lines.contains(&(Stream::Stdout, "one".into())));
        assert!(lines.contains(&(Stream::Stderr, "two".into())));
        assert!(lines.contains(&(Stream::Stdout, "no newline".into())));
        assert_eq!(f.log.lines().count(), 3);
        assert!(f.log.contains("two\n"));
        assert!(!f.log_truncated);
    }

    #[tokio::test]
    async fn the_log_keeps_the_last_lines_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = HostCommand::new("for i in 1 2 3 4 5; do echo line$i; done", dir.path());
        cmd.log_limit = 12;
        let mut streamed = 0;
        let f = run_host(&cmd, |_, _| streamed += 1, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(streamed, 5, "the callback sees everything");
        assert_eq!(f.log, "line4\nline5\n");
        assert!(f.log_truncated);
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (f, _) = collect(&HostCommand::new("echo failing; exit 3", dir.path())).await;
        assert_eq!(f.exit, Exit::Code(3));
        assert!(!f.exit.success());
        assert_eq!(f.exit.to_string(), "exit status 3");
        assert_eq!(
            f.outcome(),
            crate::exec::Outcome::Failed(crate::exec::Failure::work("exit status 3"))
        );
    }

    #[tokio::test]
    async fn env_and_working_directory_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker"), "here\n").unwrap();
        let mut cmd = HostCommand::new("cat marker; echo \"$GREETING\"", dir.path());
        cmd.env.push(("GREETING".into(), "hello there".into()));
        let (f, _) = collect(&cmd).await;
        assert_eq!(f.log, "here\nhello there\n");
    }

    #[tokio::test]
    async fn a_missing_directory_is_a_spawn_error_naming_command_and_dir() {
        let cmd = HostCommand::new("true", "/nonexistent/sanctuary-dir");
        let err = run_host(&cmd, |_, _| {}, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }));
        assert_eq!(
            err.to_string(),
            "cannot start `true` in /nonexistent/sanctuary-dir"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_a_long_sleep_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = HostCommand::new("sleep 30", dir.path());
        let token = CancellationToken::new();
        let canceller = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            canceller.cancel();
        });
        let begun = StdInstant::now();
        let f = run_host(&cmd, |_, _| {}, &token).await.unwrap();
        assert_eq!(f.exit, Exit::Interrupted);
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
    }

    #[tokio::test]
    async fn a_command_ignoring_sigint_and_sigterm_is_killed_after_the_grace_periods() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = HostCommand::new(
            "trap '' INT TERM; echo ready; while :; do sleep 0.05; done",
            dir.path(),
        );
        cmd.grace = Duration::from_millis(200);
        let token = CancellationToken::new();
        let canceller = token.clone();
        let begun = StdInstant::now();
        let f = run_host(
            &cmd,
            move |_, line| {
                if line == "ready" {
                    canceller.cancel();
                }
            },
            &token,
        )
        .await
        .unwrap();
        assert_eq!(f.exit, Exit::Interrupted);
        let took = begun.elapsed();
        assert!(
            took >= Duration::from_millis(400),
            "waited both graces: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
