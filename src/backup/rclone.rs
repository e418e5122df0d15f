//! A [`Store`] on any `rclone` remote, driven through the `rclone` command
//! (`lsjson`, `cat`, `copyto`, `rcat`, `deletefile`), so every backend rclone knows is a copy
//! target without linking any of them.
//!
//! rclone inherits the whole environment, so a remote named in the manifest
//! (`rclone="offsite:backups/db"`) may be defined in `rclone.conf` or entirely by
//! `RCLONE_CONFIG_OFFSITE_*` variables. A failing rclone command becomes
//! [`BackupError::Rclone`] carrying rclone's own last error line (unreachable host, refused
//! key, missing file), with rclone's timestamp removed.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use serde::Deserialize;

use super::error::BackupError;
use super::stop::Stop;
use super::store::{Store, StoredFile};

/// A directory on an rclone remote, e.g. `offsite:voidcat` or `:local:/mnt/x`.
#[derive(Debug, Clone)]
pub struct RcloneStore {
    remote: String,
    program: String,
    /// Ends an upload early: the rclone process is killed.
    stop: Stop,
}

/// How often a running upload looks at its stop.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Exit code rclone uses for "directory not found".
const RCLONE_DIR_NOT_FOUND: i32 = 3;

impl RcloneStore {
    /// A store at `remote` (as rclone spells it), using `rclone` from `PATH`.
    pub fn new(remote: impl Into<String>) -> Self {
        Self {
            remote: remote.into(),
            program: "rclone".into(),
            stop: Stop::never(),
        }
    }

    /// The same store, with uploads (`copyto`, `rcat`) ended when `stop` is requested. Other
    /// commands are short and always run to the end: removing what an ended upload left must
    /// still work after the stop.
    pub fn with_stop(mut self, stop: &Stop) -> Self {
        self.stop = stop.clone();
        self
    }

    /// Whether an `rclone` binary can be run.
    pub fn available() -> bool {
        Command::new("rclone")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn path_of(&self, name: &str) -> String {
        if self.remote.ends_with(':') || self.remote.ends_with('/') {
            format!("{}{name}", self.remote)
        } else {
            format!("{}/{name}", self.remote)
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("-q");
        c
    }

    fn fail(&self, action: &str, target: &str, detail: impl Into<String>) -> BackupError {
        BackupError::Rclone {
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        }
    }

    fn run(
        &self,
        action: &str,
        target: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, BackupError> {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| self.fail(action, target, format!("cannot run rclone: {e}")))?;
        if let (Some(bytes), Some(mut sin)) = (stdin, child.stdin.take()) {
            sin.write_all(bytes)
                .map_err(|e| self.fail(action, target, format!("writing to rclone: {e}")))?;
        }
        let out = if matches!(action, "copyto" | "rcat") {
            self.wait_or_stop(child)
        } else {
            child.wait_with_output().map(Some)
        }
        .map_err(|e| self.fail(action, target, e.to_string()))?
        .ok_or(BackupError::Stopped)?;
        if out.status.success() {
            Ok(out.stdout)
        } else if action == "lsjson" && out.status.code() == Some(RCLONE_DIR_NOT_FOUND) {
            Ok(b"[]".to_vec())
        } else {
            Err(self.fail(action, target, failure_detail(out.status, &out.stderr)))
        }
    }
}

impl RcloneStore {
    /// Waits for `child` like [`Child::wait_with_output`], killing it when the stop is
    /// requested first (`None`).
    fn wait_or_stop(&self, mut child: Child) -> io::Result<Option<std::process::Output>> {
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            pipe.map(|mut p| {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = p.read_to_end(&mut buf);
                    buf
                })
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if self.stop.requested() {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(STOP_POLL);
        };
        let collect =
            |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Some(std::process::Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        }))
    }
}

/// What to say about a failed rclone run: its exit status and the last line it logged.
/// rclone often logs the same cause several times (once per retry); the last line is the
/// summary (`Failed to …: <cause>`).
fn failure_detail(status: std::process::ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        Some(line) => format!("{status}: {}", strip_timestamp(line)),
        None => status.to_string(),
    }
}

/// `2024/01/02 03:04:05 ERROR : x` → `ERROR : x`; other lines unchanged.
fn strip_timestamp(line: &str) -> &str {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(date), Some(time), Some(rest))
            if date.len() == 10
                && date.as_bytes()[4] == b'/'
                && time.len() >= 8
                && time.as_bytes()[2] == b':' =>
        {
            rest
        }
        _ => line,
    }
}

#[derive(Deserialize)]
struct LsEntry {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "IsDir")]
    is_dir: bool,
    #[serde(rename = "ModTime", default)]
    mod_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store for RcloneStore {
    fn describe(&self) -> String {
        format!("rclone:{}", self.remote)
    }

    fn list(&self) -> Result<Vec<StoredFile>, BackupError> {
        let out = self.run("lsjson", &self.remote, &["lsjson", &self.remote], None)?;
        let entries: Vec<LsEntry> = serde_json::from_slice(&out)
            .map_err(|e| self.fail("lsjson", &self.remote, format!("unexpected output: {e}")))?;
        let mut files: Vec<StoredFile> = entries
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| StoredFile {
                name: e.name,
                size: e.size.max(0) as u64,
                modified: e.mod_time.map(std::time::SystemTime::from),
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, BackupError> {
        let target = self.path_of(name);
        let mut child = self
            .command()
            .args(["cat", &target])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail("cat", &target, format!("cannot run rclone: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| self.fail("cat", &target, "no stdout"))?;
        // Drained on a thread: a chatty rclone must not block on a full stderr pipe while
        // the caller is still reading stdout.
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf);
                buf
            })
        });
        Ok(Box::new(ChildReader {
            child,
            stdout,
            stderr,
            target,
        }))
    }

    fn put_file(&self, name: &str, local: &Path) -> Result<(), BackupError> {
        let target = self.path_of(name);
        let local = local.to_string_lossy();
        self.run("copyto", &target, &["copyto", &local, &target], None)
            .map(drop)
    }

    fn put_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let target = self.path_of(name);
        self.run("rcat", &target, &["rcat", &target], Some(bytes))
            .map(drop)
    }

    fn remove(&self, name: &str) -> Result<(), BackupError> {
        let target = self.path_of(name);
        self.run("deletefile", &target, &["deletefile", &target], None)
            .map(drop)
    }
}

/// `rclone cat`'s output; a failing exit status surfaces as a read error at the end, so a
/// missing or truncated remote file never reads as a short but valid one.
struct ChildReader {
    child: Child,
    stdout: ChildStdout,
    /// What rclone logs, collected for the error message.
    stderr: Option<JoinHandle<Vec<u8>>>,
    target: String,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                let stderr = self
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                return Err(io::Error::other(format!(
                    "rclone cat {} failed: {}",
                    self.target,
                    failure_detail(status, &stderr)
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        // A reader dropped early must not leave rclone running or a zombie behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit(code: i32) -> std::process::ExitStatus {
        std::process::ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn failure_detail_is_the_last_logged_line_without_its_timestamp() {
        let stderr = b"2026/11/21 13:08:47 ERROR : : error listing: directory not found\n\
2026/11/21 13:08:58 Failed to create file system for \"offsite:x\": NewFs: couldn't connect SSH: connection refused\n\n";
        assert_eq!(
            failure_detail(exit(1), stderr),
            "exit status: 1: Failed to create file system for \"offsite:x\": NewFs: \
couldn't connect SSH: connection refused"
        );
        assert_eq!(failure_detail(exit(2), b"  \n"), "exit status: 2");
    }

    #[test]
    fn only_a_leading_rclone_timestamp_is_stripped() {
        assert_eq!(
            strip_timestamp("2026/11/21 13:08:47 ERROR : x"),
            "ERROR : x"
        );
        assert_eq!(
            strip_timestamp("Failed to copy: a b"),
            "Failed to copy: a b"
        );
        assert_eq!(
            strip_timestamp("2026-11-21 13:08:47 x"),
            "2026-11-21 13:08:47 x"
        );
    }

    #[test]
    fn remote_paths_join_with_one_separator() {
        assert_eq!(RcloneStore::new("offsite:").path_of("a"), "offsite:a");
        assert_eq!(
            RcloneStore::new("offsite:b/db").path_of("a"),
            "offsite:b/db/a"
        );
        assert_eq!(
            RcloneStore::new("offsite:b/db/").path_of("a"),
            "offsite:b/db/a"
        );
    }

    #[test]
    fn a_failed_cat_reports_rclones_reason() {
        if !RcloneStore::available() {
            assert_ne!(
                std::env::var("SANCTUARY_REQUIRE_SFTP").as_deref(),
                Ok("1"),
                "rclone is required (SANCTUARY_REQUIRE_SFTP=1) but cannot be run"
            );
            let _ = io::stderr().write_all(b"SKIPPED: rclone is not installed\n");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = RcloneStore::new(format!(":local:{}", tmp.path().display()));
        let mut reader = store.open("missing.tar.zst").unwrap();
        let err = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("missing.tar.zst"), "{text}");
        assert!(text.contains("not found"), "{text}");
        assert!(!text.starts_with("20"), "{text}");
    }
}
