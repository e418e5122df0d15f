//! What the backend reports back: observed objects, exec results, log lines, and the label
//! filter used to find the project's own objects.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::spec::Protocol;

/// An image present on the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Content id (`sha256:...`).
    pub id: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A state this version does not know.
    Unknown,
}

impl ContainerState {
    /// Docker's spelling of a state, as in `docker ps`.
    pub fn parse(s: &str) -> ContainerState {
        match s {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }

    /// True when the container's process is not running and will not run by itself.
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            ContainerState::Created | ContainerState::Exited | ContainerState::Dead
        )
    }
}

/// Health as the daemon reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// The container has no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// A container as inspected.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub health: HealthState,
    /// Exit code of the last run; meaningful once the container has exited.
    pub exit_code: Option<i64>,
    /// When the container last started; `None` if it never did.
    pub started_at: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    /// Image reference the container was created from.
    pub image: String,
    /// Id (`sha256:…`) of the image the container runs, whatever its reference now names.
    pub image_id: String,
    pub ports: Vec<PublishedPort>,
    /// Output of the most recent health-check runs, oldest first.
    pub health_output: Vec<String>,
    /// The environment the container runs with (the image's own variables included).
    pub env: BTreeMap<String, String>,
    /// Network name → the container's address on it, while it runs.
    pub ips: BTreeMap<String, String>,
}

/// The processes of a container, as `ps` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processes {
    pub titles: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A port the daemon has published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: String,
    pub host_port: u16,
}

/// A container as listed: enough to recognise the project's own and their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerListing {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub image: String,
}

/// A volume or network as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectListing {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What an `ensure_*` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    AlreadyExisted,
}

/// Result of a command run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i64,
    /// stdout and stderr interleaved as they arrived.
    pub output: String,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a container's output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    pub line: String,
}

/// Something that happened to an object of the engine, as its event stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// `container`, `network`, `volume`, `image`, …
    pub kind: String,
    /// `start`, `die`, `health_status: unhealthy`, `create`, `destroy`, …
    pub action: String,
    /// The object's id.
    pub id: String,
    /// What the engine says about it: for a container its labels, `name`, `image`,
    /// `exitCode`…; for a network or volume its `name` (or the id is the name).
    pub attributes: BTreeMap<String, String>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

/// Labels an object must carry to be selected: every `key=value` pair, and every bare key
/// with any value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter {
    required: BTreeMap<String, Option<String>>,
}

impl LabelFilter {
    /// A filter that selects everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also require `key=value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.required.insert(key.into(), Some(value.into()));
        self
    }

    /// Also require `key`, with any value.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.required.insert(key.into(), None);
        self
    }

    /// True when `labels` satisfy the filter.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.required.iter().all(|(key, want)| match want {
            Some(want) => labels.get(key) == Some(want),
            None => labels.contains_key(key),
        })
    }

    /// The filter in Docker's `label=` query syntax.
    pub fn to_docker_filters(&self) -> Vec<String> {
        self.required
            .iter()
            .map(|(key, value)| match value {
                Some(value) => format!("{key}={value}"),
                None => key.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_filter_requires_every_pair_and_key() {
        let filter = LabelFilter::new()
            .with("sanctuary.project", "demo")
            .with_key("sanctuary.node");
        assert!(filter.matches(&labels(&[
            ("sanctuary.project", "demo"),
            ("sanctuary.node", "web"),
            ("other", "x"),
        ])));
        assert!(!filter.matches(&labels(&[("sanctuary.project", "demo")])));
        assert!(!filter.matches(&labels(&[
            ("sanctuary.project", "other"),
            ("sanctuary.node", "web"),
        ])));
        assert!(LabelFilter::new().matches(&BTreeMap::new()));
    }

    #[test]
    fn label_filter_speaks_docker_syntax() {
        let filter = LabelFilter::new().with("a", "1").with_key("b");
        assert_eq!(filter.to_docker_filters(), vec!["a=1", "b"]);
    }

    #[test]
    fn container_states_parse_from_docker_spelling() {
        assert_eq!(ContainerState::parse("running"), ContainerState::Running);
        assert_eq!(ContainerState::parse("exited"), ContainerState::Exited);
        assert_eq!(ContainerState::parse("weird"), ContainerState::Unknown);
        assert!(ContainerState::Exited.is_stopped());
        assert!(!ContainerState::Paused.is_stopped());
    }
}
