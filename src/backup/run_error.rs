//! Errors of running backups against the project: Docker steps (reading or writing a volume,
//! quiescing services) and the library's own errors, each naming the backup and the step.

use crate::backend::BackendError;

use super::error::BackupError;

/// What can stop `sanctuary backup`, `backups …` or `restore`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The quiesce journal could not be written, so nothing was quiesced.
    #[error("backup {backup}: cannot record the services it quiesces in {}", .path.display())]
    Journal {
        backup: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The step needs the container engine and none was connected.
    #[error("backup {backup}: this needs the Docker engine, which is not connected")]
    NoEngine { backup: String },
    /// A Docker step failed.
    #[error("backup {backup}: {step}")]
    Docker {
        backup: String,
        step: String,
        source: Box<BackendError>,
    },
    /// The library failed (archive, copy, verify, restore).
    #[error("backup {backup}: {step}")]
    Library {
        backup: String,
        step: String,
        source: Box<BackupError>,
    },
    /// The first copy is a remote: snapshots are made in a local directory first.
    #[error("backup {backup}: the first copy must be a directory (`path=`), not an rclone remote")]
    RemotePrimary { backup: String },
    /// The helper image cannot be built without a static busybox on the host.
    #[error("building the helper image {image}: {reason}")]
    HelperImage { image: String, reason: String },
    /// A helper command ran and failed.
    #[error("backup {backup}: {step} exited with {code}: {output}")]
    HelperFailed {
        backup: String,
        step: String,
        code: i64,
        output: String,
    },
    /// The backup ran (or failed), and services could not be brought back afterwards.
    #[error("backup {backup}: services not resumed after quiescing: {}", failures.join("; "))]
    Resume {
        backup: String,
        failures: Vec<String>,
        /// The backup's own error, when it also failed.
        first: Option<Box<RunError>>,
    },
    /// A stop was requested (SIGINT, SIGTERM) and the work ended at a safe point: every copy
    /// holds the snapshot whole or not at all, a restore target is as it was or fully
    /// restored, and temporaries are removed.
    #[error("backup {backup}: stopped on request")]
    Interrupted { backup: String },
    /// A snapshot verified after it was taken shows problems.
    #[error("backup {backup}: snapshot {snapshot} failed verification in {copy}: {}", problems.join("; "))]
    VerifyFailed {
        backup: String,
        snapshot: String,
        copy: String,
        problems: Vec<String>,
    },
}

impl RunError {
    /// Whether the cause is the container engine (exit code 3) rather than the data.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, RunError::Docker { .. } | RunError::HelperImage { .. })
    }

    /// The message with every cause, one per line, for a terminal.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(&format!("\n  caused by: {e}"));
            cur = e.source();
        }
        if let RunError::Resume {
            first: Some(first), ..
        } = self
        {
            out.push_str(&format!(
                "\n  the backup itself also failed: {}",
                first.chain()
            ));
        }
        out
    }
}
