//! A [`Store`] on any `rclone` remote, driven through the `rclone` command
//! (`lsjson`, `cat`, `copyto`, `rcat`, `deletefile`), so every backend rclone knows is a copy
//! target without linking any of them.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde::Deserialize;

use super::error::BackupError;
use super::store::{Store, StoredFile};

/// A directory on an rclone remote, e.g. `offsite:voidcat` or `:local:/mnt/x`.
#[derive(Debug, Clone)]
pub struct RcloneStore {
    remote: String,
    program: String,
}

/// Exit code rclone uses for "directory not found".
const RCLONE_DIR_NOT_FOUND: i32 = 3;

impl RcloneStore {
    /// A store at `remote` (as rclone spells it), using `rclone` from `PATH`.
    pub fn new(remote: impl Into<String>) -> Self {
        Self {
            remote: remote.into(),
            program: "rclone".into(),
        }
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
        let out = child
            .wait_with_output()
            .map_err(|e| self.fail(action, target, e.to_string()))?;
        if out.status.success() {
            Ok(out.stdout)
        } else if action == "lsjson" && out.status.code() == Some(RCLONE_DIR_NOT_FOUND) {
            Ok(b"[]".to_vec())
        } else {
            Err(self.fail(
                action,
                target,
                format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ))
        }
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
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| self.fail("cat", &target, format!("cannot run rclone: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| self.fail("cat", &target, "no stdout"))?;
        Ok(Box::new(ChildReader {
            child,
            stdout,
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
    target: String,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "rclone cat {} exited with {status}",
                    self.target
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
