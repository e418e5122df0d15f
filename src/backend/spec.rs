//! What the backend is asked to create: a container as a service declares it, and an image
//! build. Plain data, serialisable so the state store can keep what was applied.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a service declares about its container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Container name, unique on the daemon.
    pub name: String,
    /// Image reference (tag or id).
    pub image: String,
    /// Replaces the image's `CMD` when set.
    pub command: Option<Vec<String>>,
    /// Replaces the image's `ENTRYPOINT` when set.
    pub entrypoint: Option<Vec<String>>,
    /// Environment, sorted so the same spec always produces the same container.
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    pub mounts: Vec<MountSpec>,
    /// Networks to join; the first at creation, the others before start.
    pub networks: Vec<NetworkAttachment>,
    pub restart: RestartPolicy,
    /// CPU limit in CPUs (1.5 = one and a half cores).
    pub cpus: Option<f64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    pub health: Option<HealthCheck>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address to bind; all addresses when `None`.
    pub host_ip: Option<String>,
    /// Host port; the daemon picks a free one when `None`.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    /// The protocol as Docker spells it in `3000/tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: MountSource,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountSource {
    /// A named Docker volume.
    Volume(String),
    /// A host path; it must exist (a missing path is an error, not a silently created dir).
    Bind(PathBuf),
}

/// Membership of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    /// Extra DNS names of the container on this network.
    pub aliases: Vec<String>,
}

/// When the daemon restarts the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    /// Restart after a non-zero exit, at most `max_retries` times when set.
    OnFailure {
        max_retries: Option<u32>,
    },
    UnlessStopped,
}

/// A restart policy string that is none of `no`, `always`, `on-failure[:N]`, `unless-stopped`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown restart policy `{0}`: expected no, always, on-failure, on-failure:N or unless-stopped"
)]
pub struct ParseRestartPolicyError(pub String);

impl FromStr for RestartPolicy {
    type Err = ParseRestartPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse().ok())
                .map(|n| RestartPolicy::OnFailure {
                    max_retries: Some(n),
                })
                .ok_or_else(|| ParseRestartPolicyError(other.to_string())),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
        }
    }
}

/// A health check, run by the daemon as `CMD` (no shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Default for HealthCheck {
    /// Docker's own defaults, except a shorter interval: local stacks want fast feedback.
    fn default() -> Self {
        HealthCheck {
            cmd: Vec::new(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }
}

/// An image to build from a context directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageBuild {
    /// Tag given to the built image.
    pub tag: String,
    pub context_dir: PathBuf,
    /// Dockerfile path relative to `context_dir`.
    pub dockerfile: PathBuf,
    pub build_args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build.
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Directories inside the context never sent: where sanctuary writes.
    pub exclude: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_and_print_back() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:5",
        ] {
            let policy: RestartPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
    }

    #[test]
    fn bad_restart_policies_are_refused_with_the_text() {
        for text in ["sometimes", "on-failure:", "on-failure:x", "on-failure:-1"] {
            let err = text.parse::<RestartPolicy>().unwrap_err();
            assert!(err.to_string().contains(text), "{err}");
        }
    }
}
