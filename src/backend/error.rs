//! Errors of the backend, in the project's words.
//!
//! Every error says what was being done and to what. A few situations that users and the
//! planner must tell apart get their own variant (the daemon is unreachable, a host port is
//! taken, a health check never passed, an object does not exist); every other daemon failure
//! is a [`BackendError::Failed`] naming the [`Action`] and its target, with the daemon's answer
//! as a [`DaemonError`] so no Docker client type leaks out of the backend.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the backend was doing when something failed. Also names operations for the fake's
/// call log and failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    BuildImage,
    InspectImage,
    PullImage,
    ListImages,
    RemoveImage,
    TagImage,
    EnsureVolume,
    ListVolumes,
    RemoveVolume,
    EnsureNetwork,
    ListNetworks,
    RemoveNetwork,
    CreateContainer,
    ConnectNetwork,
    StartContainer,
    StopContainer,
    RemoveContainer,
    RenameContainer,
    Top,
    InspectContainer,
    ListContainers,
    PauseContainer,
    UnpauseContainer,
    WaitHealthy,
    WaitExit,
    Exec,
    Logs,
    CopyOut,
    CopyIn,
    Events,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Action::BuildImage => "build image",
            Action::InspectImage => "inspect image",
            Action::PullImage => "pull image",
            Action::ListImages => "list images",
            Action::RemoveImage => "remove image",
            Action::TagImage => "tag image",
            Action::EnsureVolume => "ensure volume",
            Action::ListVolumes => "list volumes",
            Action::RemoveVolume => "remove volume",
            Action::EnsureNetwork => "ensure network",
            Action::ListNetworks => "list networks",
            Action::RemoveNetwork => "remove network",
            Action::CreateContainer => "create container",
            Action::ConnectNetwork => "connect container to network",
            Action::StartContainer => "start container",
            Action::StopContainer => "stop container",
            Action::RemoveContainer => "remove container",
            Action::RenameContainer => "rename container",
            Action::Top => "list processes",
            Action::InspectContainer => "inspect container",
            Action::ListContainers => "list containers",
            Action::PauseContainer => "pause container",
            Action::UnpauseContainer => "unpause container",
            Action::WaitHealthy => "wait for health of container",
            Action::WaitExit => "wait for exit of container",
            Action::Exec => "exec in container",
            Action::Logs => "read logs of container",
            Action::CopyOut => "copy out of container",
            Action::CopyIn => "copy into container",
            Action::Events => "watch the events of",
        };
        f.write_str(s)
    }
}

/// The kind of Docker object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Container,
    Image,
    Volume,
    Network,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Container => "container",
            ObjectKind::Image => "image",
            ObjectKind::Volume => "volume",
            ObjectKind::Network => "network",
        })
    }
}

/// The daemon's own answer to a failed request, kept as plain data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DaemonError {
    /// HTTP status of the answer; `None` when no answer came (connection trouble, bad JSON).
    pub status: Option<u16>,
    /// The daemon's message, or the client's description of what went wrong.
    pub message: String,
}

impl DaemonError {
    /// An answer with an HTTP status.
    pub fn api(status: u16, message: impl Into<String>) -> Self {
        DaemonError {
            status: Some(status),
            message: message.into(),
        }
    }

    /// A failure with no answer from the daemon.
    pub fn transport(message: impl Into<String>) -> Self {
        DaemonError {
            status: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.message.trim()),
            None => f.write_str(self.message.trim()),
        }
    }
}

/// Everything that can go wrong in the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The Docker daemon did not answer at all.
    #[error("cannot reach the Docker daemon at {host}: {reason}\n  hint: {hint}")]
    Unreachable {
        host: String,
        reason: String,
        hint: String,
    },

    /// Starting a container failed because a host port it publishes is already taken.
    #[error("cannot start container `{container}`: host port {port} is already in use")]
    PortInUse { container: String, port: String },

    /// The container's health check did not pass before the caller's deadline.
    #[error(
        "container `{container}` did not become healthy within {}{}",
        humantime::format_duration(*.waited),
        health_details(.checks, .logs)
    )]
    HealthTimeout {
        container: String,
        waited: Duration,
        /// Output of the last health-check runs, oldest first.
        checks: Vec<String>,
        /// The container's last log lines.
        logs: Vec<String>,
    },

    /// The daemon declared the container unhealthy (its retries are used up).
    #[error("container `{container}` is unhealthy{}", health_details(.checks, .logs))]
    Unhealthy {
        container: String,
        checks: Vec<String>,
        logs: Vec<String>,
    },

    /// Waiting for health only makes sense when the container declares a health check.
    #[error("container `{container}` has no health check to wait for")]
    NoHealthCheck { container: String },

    /// The container stopped while the caller waited for it to become healthy.
    #[error("container `{container}` exited with code {exit_code} before it became healthy{}", health_details(&[], .logs))]
    ExitedEarly {
        container: String,
        exit_code: i64,
        logs: Vec<String>,
    },

    /// The container was still running at the caller's deadline.
    #[error("container `{container}` did not exit within {}", humantime::format_duration(*.waited))]
    ExitTimeout { container: String, waited: Duration },

    /// The named object does not exist.
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: ObjectKind, name: String },

    /// An image is neither present locally nor pullable.
    #[error("image `{reference}` is not present locally and could not be pulled: {reason}")]
    ImageUnavailable { reference: String, reason: String },

    /// A step of an image build failed.
    #[error("building image `{tag}` failed{}: {message}", step_suffix(.step))]
    BuildFailed {
        tag: String,
        /// The Dockerfile step that failed, e.g. `Step 3/4 : RUN make`, when known.
        step: Option<String>,
        message: String,
    },

    /// The build context could not be read.
    #[error("cannot read the build context {}: {source}", .path.display())]
    BuildContext {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The local data being streamed to the daemon could not be read.
    #[error("cannot {action} `{target}`: reading the data to send failed: {source}")]
    SendData {
        action: Action,
        target: String,
        #[source]
        source: std::io::Error,
    },

    /// Any other failure of the daemon.
    #[error("cannot {action} `{target}`: {source}")]
    Failed {
        action: Action,
        target: String,
        #[source]
        source: DaemonError,
    },
}

impl BackendError {
    /// True when the failure lies with the Docker installation rather than with what the
    /// project asked for: no daemon, or no usable answer from it. Callers stop the whole run
    /// on these instead of marking one node failed.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            BackendError::Unreachable { .. } => true,
            BackendError::Failed { source, .. } => source.status.is_none(),
            _ => false,
        }
    }

    /// True when the error says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }
}

fn step_suffix(step: &Option<String>) -> String {
    match step {
        Some(step) => format!(" at `{step}`"),
        None => String::new(),
    }
}

fn health_details(checks: &[String], logs: &[String]) -> String {
    let mut out = String::new();
    if !checks.is_empty() {
        out.push_str("\n  last health-check output:");
        for check in checks {
            out.push_str("\n    ");
            out.push_str(check.trim_end());
        }
    }
    if !logs.is_empty() {
        out.push_str("\n  last log lines:");
        for line in logs {
            out.push_str("\n    ");
            out.push_str(line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_timeout_message_carries_check_output_and_logs() {
        let err = BackendError::HealthTimeout {
            container: "web".into(),
            waited: Duration::from_secs(3),
            checks: vec!["wget: can't connect".into()],
            logs: vec!["listening on 3000".into()],
        };
        let text = err.to_string();
        assert!(
            text.contains("`web` did not become healthy within 3s"),
            "{text}"
        );
        assert!(text.contains("wget: can't connect"), "{text}");
        assert!(text.contains("listening on 3000"), "{text}");
    }

    #[test]
    fn infrastructure_errors_are_told_apart_from_project_errors() {
        let unreachable = BackendError::Unreachable {
            host: "unix:///nope".into(),
            reason: "no such file".into(),
            hint: "start Docker".into(),
        };
        let no_answer = BackendError::Failed {
            action: Action::StartContainer,
            target: "web".into(),
            source: DaemonError::transport("connection reset"),
        };
        let refused = BackendError::Failed {
            action: Action::StartContainer,
            target: "web".into(),
            source: DaemonError::api(500, "bad mount"),
        };
        assert!(unreachable.is_infrastructure());
        assert!(no_answer.is_infrastructure());
        assert!(!refused.is_infrastructure());
        assert!(!BackendError::PortInUse {
            container: "web".into(),
            port: "3000".into()
        }
        .is_infrastructure());
    }

    #[test]
    fn failed_names_action_and_target() {
        let err = BackendError::Failed {
            action: Action::CreateContainer,
            target: "omega".into(),
            source: DaemonError::api(409, "name in use"),
        };
        assert_eq!(
            err.to_string(),
            "cannot create container `omega`: name in use (HTTP 409)"
        );
    }
}
