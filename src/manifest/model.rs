//! The resolved manifest that later stages use: names checked, defaults applied, paths made
//! absolute against the manifest's directory, values parsed into types.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use super::values::*;

/// The kinds of node a manifest declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Secret,
    Image,
    Volume,
    Network,
    Service,
    Task,
    Test,
    Backup,
    Sync,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Secret,
        Kind::Image,
        Kind::Volume,
        Kind::Network,
        Kind::Service,
        Kind::Task,
        Kind::Test,
        Kind::Backup,
        Kind::Sync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Test => "test",
            Kind::Backup => "backup",
            Kind::Sync => "sync",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown node kind `{s}`"))
    }
}

/// A node's identity: its kind and its name, written `kind.name` (`service.omega`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    pub kind: Kind,
    pub name: String,
}

impl NodeId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        NodeId {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)
    }
}

/// A byte range in the manifest text, kept so later stages can point at a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl From<&knuffel::span::Span> for Span {
    fn from(s: &knuffel::span::Span) -> Self {
        Span {
            offset: s.0,
            len: s.1.saturating_sub(s.0),
        }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.offset, s.len).into()
    }
}

/// An edge declared with `depends-on`, with what the dependent waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub node: NodeId,
    pub condition: Condition,
    /// Where the name was written in the `depends-on` entry.
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// The manifest file, absolute.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    #[serde(skip)]
    pub source: String,
    pub project: Project,
    pub secrets: IndexMap<String, Secret>,
    pub images: IndexMap<String, Image>,
    pub volumes: IndexMap<String, Volume>,
    pub networks: IndexMap<String, Network>,
    pub services: IndexMap<String, Service>,
    pub tasks: IndexMap<String, Task>,
    pub tests: IndexMap<String, Test>,
    pub backups: IndexMap<String, Backup>,
    pub syncs: IndexMap<String, Sync>,
    /// Where the supervisor and apply send alerts; not nodes of the graph.
    pub alerts: IndexMap<String, Alert>,
    /// The profiles switched on (`--profile`, `SANCTUARY_PROFILES`).
    pub active_profiles: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub name: String,
    pub description: Option<String>,
    /// Where state, cache and local backups live (default `.sanctuary` beside the manifest).
    pub state_dir: PathBuf,
    /// How many of the latest generations keep their images named (default 5).
    pub keep_generations: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Secret {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub source: SecretSource,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    Keychain {
        service: String,
        account: Option<String>,
    },
    Libsecret(BTreeMap<String, String>),
}

#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub source: ImageSource,
    pub depends_on: Vec<Dependency>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    Build {
        context: PathBuf,
        /// Absolute; always inside `context`.
        dockerfile: PathBuf,
        args: BTreeMap<String, String>,
        target: Option<String>,
    },
    /// An image used as is, e.g. `node:18-slim`.
    Reference(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Volume {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub driver: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Network {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub driver: Option<String>,
    pub internal: bool,
}

/// Which image a service or task runs: one the manifest builds, or an external reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageRef {
    Declared(String),
    External(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Service {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub image: ImageRef,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub secret_env: Vec<SecretEnv>,
    pub secret_files: Vec<SecretFile>,
    pub ports: Vec<PortSpec>,
    pub mounts: Vec<Mount>,
    /// Empty means the project's default network.
    pub networks: Vec<NetworkAttachment>,
    pub restart: RestartPolicy,
    pub resources: Resources,
    pub health: Option<HealthCheck>,
    pub depends_on: Vec<Dependency>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    /// How long dependents wait for this service's condition.
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub labels: BTreeMap<String, String>,
    /// How apply replaces the container.
    pub update: Update,
    /// The profiles it belongs to: when any, it is part of the stack only while one of them
    /// is active (or when it is named).
    pub profiles: Vec<String>,
    /// How often `supervise` may restart it while unhealthy.
    pub restart_limit: RestartLimit,
}

/// At most `count` restarts by the supervisor within any `within` (default 5 in 10 minutes).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RestartLimit {
    pub count: u32,
    pub within: Duration,
}

impl Default for RestartLimit {
    fn default() -> Self {
        RestartLimit {
            count: 5,
            within: Duration(std::time::Duration::from_secs(600)),
        }
    }
}

/// How apply replaces a service's container.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Update {
    /// Stop the old container, then start the new one.
    #[default]
    Recreate,
    /// Start the new container beside the old one, switch traffic to it once it is ready,
    /// drain the old one and remove it (see docs/deploys.md).
    BlueGreen {
        /// How long open connections to the old container may take to finish.
        drain_timeout: Duration,
        /// Keep the drained container, stopped, for an instant `sanctuary switch` back.
        keep_previous: bool,
    },
}

impl Update {
    pub fn is_blue_green(&self) -> bool {
        matches!(self, Update::BlueGreen { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretEnv {
    pub var: String,
    pub secret: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretFile {
    pub secret: String,
    /// Absolute path in the container (default `/run/secrets/<name>`).
    pub path: String,
    /// The file's mode (default 0400).
    pub mode: u32,
    /// Numeric `uid:gid` owning the file; by default the service's numeric `user`, else root.
    pub owner: Option<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountSource {
    Volume(String),
    Bind(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resources {
    pub cpus: Option<Cpus>,
    pub memory: Option<Size>,
    pub pids: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthCheck {
    /// Docker's form: `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    /// Shell lines run in order with `sh -c`; the first failure stops the task.
    pub run: Vec<String>,
    /// Globs (or paths) relative to `dir`'s manifest directory; absolute paths allowed.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub secret_env: Vec<SecretEnv>,
    /// Files mounted into the task's container; only with `image`.
    pub secret_files: Vec<SecretFile>,
    pub depends_on: Vec<Dependency>,
    /// Working directory, absolute.
    pub dir: PathBuf,
    /// Run inside this image instead of on the host.
    pub image: Option<ImageRef>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Test {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Services brought up before the test runs.
    pub needs: Vec<String>,
    pub depends_on: Vec<Dependency>,
    pub check: TestCheck,
    pub inputs: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files mounted into the test's container; only for a `run` check with `image`.
    pub secret_files: Vec<SecretFile>,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestCheck {
    /// Shell lines on the host, or inside `image` when set.
    Command {
        run: Vec<String>,
        image: Option<ImageRef>,
    },
    /// A command inside a running service.
    Exec {
        service: String,
        command: Vec<String>,
    },
    Http(HttpProbe),
    Tcp {
        address: String,
        retries: u32,
        delay: Duration,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpProbe {
    pub url: String,
    pub method: HttpMethod,
    pub status: u16,
    pub contains: Option<String>,
    pub json_path: Option<String>,
    pub equals: Option<String>,
    pub body: Option<String>,
    pub retries: u32,
    pub delay: Duration,
    /// For `https://`: a PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// For `https://`: accept any certificate (a self-signed test host).
    pub insecure: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Backup {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub source: BackupSource,
    pub quiesce: Option<Quiesce>,
    pub level: i32,
    pub copies: Vec<BackupCopy>,
    pub keep: Keep,
    /// When `supervise` takes it.
    pub schedule: Option<Schedule>,
    /// Older than this, the newest snapshot is stale and alerted on.
    pub max_age: Option<Duration>,
    pub depends_on: Vec<Dependency>,
}

/// When scheduled work is due: `every "6h"` (an interval since the last success) or a
/// five-field cron expression (`every "0 3 * * *"`, in local time; `@daily` and the like).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Every(Duration),
    Cron(String),
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().starts_with(|c: char| c.is_ascii_digit()) && !s.trim().contains(' ') {
            return s.parse::<Duration>().map(Schedule::Every);
        }
        croner::Cron::from_str(s)
            .map(|_| Schedule::Cron(s.trim().to_string()))
            .map_err(|e| {
                format!(
                    "invalid schedule `{s}`: {}; expected an interval like \"6h\" or a cron expression like \"0 3 * * *\"",
                    e.to_string().trim_end_matches('.')
                )
            })
    }
}

impl Schedule {
    /// When the work is next due, given its last success (`None`: never) and when watching
    /// began. An interval counts from the last success, so a restart does not reset it;
    /// work never done is due at once. A cron time missed while nothing watched is caught
    /// up once.
    pub fn next_due(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        match self {
            Schedule::Every(d) => match last {
                None => since,
                Some(l) => l + chrono::Duration::from_std(d.0).unwrap_or(chrono::Duration::MAX),
            },
            Schedule::Cron(expr) => {
                let from = last.unwrap_or(since).with_timezone(&chrono::Local);
                croner::Cron::from_str(expr)
                    .ok()
                    .and_then(|c| c.find_next_occurrence(&from, false).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {d}"),
            Schedule::Cron(e) => write!(f, "at `{e}`"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupSource {
    Volume(String),
    Path(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quiesce {
    pub mode: QuiesceMode,
    pub services: Vec<String>,
    pub pre: Option<String>,
    pub post: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupCopy {
    pub name: String,
    pub target: CopyTarget,
    pub media: Media,
    pub offsite: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyTarget {
    Dir(PathBuf),
    Rclone(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Keep {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sync {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub host: PathBuf,
    pub target: SyncTarget,
    pub mode: SyncMode,
    pub ignore: Vec<String>,
    pub rewrites: Vec<(String, String)>,
    pub conflict: ConflictPolicy,
    pub owner: Option<String>,
    pub file_mode: Option<u32>,
    pub quiet_period: Duration,
    pub on_apply: bool,
    /// Kept in sync by `supervise` (as `sync --watch` does).
    pub watch: bool,
    pub depends_on: Vec<Dependency>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncTarget {
    Volume { name: String, path: String },
    Service { name: String, path: String },
}

/// Where alerts go, and which.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    pub sink: AlertSink,
    /// The events it takes (every event when `on` is not written).
    pub events: std::collections::BTreeSet<AlertEvent>,
    /// How long one delivery may take before it counts as failed.
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSink {
    /// A JSON body POSTed to `url`.
    Webhook {
        url: String,
        headers: Vec<AlertHeader>,
    },
    /// A command run with the JSON body on stdin.
    Command(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertHeader {
    pub name: String,
    pub value: HeaderSource,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderSource {
    Literal(String),
    /// A secret's value after `prefix` (`Bearer `).
    Secret {
        secret: String,
        prefix: String,
    },
}

impl Manifest {
    /// Whether service `name` is part of the whole stack: it has no profile, or one of its
    /// profiles is active.
    pub fn service_active(&self, name: &str) -> bool {
        self.services.get(name).is_some_and(|s| {
            s.profiles.is_empty() || s.profiles.iter().any(|p| self.active_profiles.contains(p))
        })
    }

    /// Every profile a service declares.
    pub fn declared_profiles(&self) -> std::collections::BTreeSet<&str> {
        self.services
            .values()
            .flat_map(|s| s.profiles.iter().map(String::as_str))
            .collect()
    }

    /// Every declared node, in kind order then declaration order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut ids = Vec::new();
        let mut push = |kind, names: Vec<&String>| {
            ids.extend(names.into_iter().map(|n| NodeId::new(kind, n.clone())));
        };
        push(Kind::Secret, self.secrets.keys().collect());
        push(Kind::Image, self.images.keys().collect());
        push(Kind::Volume, self.volumes.keys().collect());
        push(Kind::Network, self.networks.keys().collect());
        push(Kind::Service, self.services.keys().collect());
        push(Kind::Task, self.tasks.keys().collect());
        push(Kind::Test, self.tests.keys().collect());
        push(Kind::Backup, self.backups.keys().collect());
        push(Kind::Sync, self.syncs.keys().collect());
        ids
    }

    /// Directories sanctuary itself writes into: its state directory (state, cache, sync
    /// bases, default backup copies) and every directory copy of a backup. Nothing in them
    /// is ever an input of a task or part of an image's build context.
    pub fn written_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.project.state_dir.clone()];
        for b in self.backups.values() {
            for c in &b.copies {
                if let CopyTarget::Dir(d) = &c.target {
                    if !dirs.iter().any(|known| d.starts_with(known)) {
                        dirs.push(d.clone());
                    }
                }
            }
        }
        dirs
    }

    /// Whether a node of this identity is declared.
    pub fn contains(&self, id: &NodeId) -> bool {
        let n = id.name.as_str();
        match id.kind {
            Kind::Secret => self.secrets.contains_key(n),
            Kind::Image => self.images.contains_key(n),
            Kind::Volume => self.volumes.contains_key(n),
            Kind::Network => self.networks.contains_key(n),
            Kind::Service => self.services.contains_key(n),
            Kind::Task => self.tasks.contains_key(n),
            Kind::Test => self.tests.contains_key(n),
            Kind::Backup => self.backups.contains_key(n),
            Kind::Sync => self.syncs.contains_key(n),
        }
    }

    /// The description a node was given, if any.
    pub fn description(&self, id: &NodeId) -> Option<&str> {
        let n = id.name.as_str();
        match id.kind {
            Kind::Secret => self.secrets.get(n)?.description.as_deref(),
            Kind::Image => self.images.get(n)?.description.as_deref(),
            Kind::Volume => self.volumes.get(n)?.description.as_deref(),
            Kind::Network => self.networks.get(n)?.description.as_deref(),
            Kind::Service => self.services.get(n)?.description.as_deref(),
            Kind::Task => self.tasks.get(n)?.description.as_deref(),
            Kind::Test => self.tests.get(n)?.description.as_deref(),
            Kind::Backup => self.backups.get(n)?.description.as_deref(),
            Kind::Sync => self.syncs.get(n)?.description.as_deref(),
        }
    }

    /// Finds a node by a name the user typed: `kind.name`, or a bare name that only one kind
    /// declares. An ambiguous bare name returns every match so the caller can ask to qualify it.
    pub fn lookup(&self, name: &str) -> Vec<NodeId> {
        if let Some((kind, rest)) = name.split_once('.') {
            if let Ok(kind) = kind.parse::<Kind>() {
                let id = NodeId::new(kind, rest);
                return if self.contains(&id) { vec![id] } else { vec![] };
            }
        }
        Kind::ALL
            .into_iter()
            .map(|k| NodeId::new(k, name))
            .filter(|id| self.contains(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn an_interval_counts_from_the_last_success_and_work_never_done_is_due_at_once() {
        let s: Schedule = "6h".parse().unwrap();
        assert_eq!(
            s,
            Schedule::Every(Duration(std::time::Duration::from_secs(6 * 3600)))
        );
        let start = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        assert_eq!(s.next_due(None, start), start);
        let last = Utc.with_ymd_and_hms(2026, 12, 3, 9, 30, 0).unwrap();
        assert_eq!(
            s.next_due(Some(last), start),
            Utc.with_ymd_and_hms(2026, 12, 3, 15, 30, 0).unwrap()
        );
    }

    #[test]
    fn a_cron_schedule_is_due_at_its_next_time_after_the_last_success() {
        let s: Schedule = "*/15 * * * *".parse().unwrap();
        assert!(matches!(s, Schedule::Cron(_)));
        let last = Utc.with_ymd_and_hms(2026, 12, 3, 9, 31, 0).unwrap();
        // Every quarter hour is a quarter hour in any zone with whole-quarter offsets.
        assert_eq!(
            s.next_due(Some(last), last),
            Utc.with_ymd_and_hms(2026, 12, 3, 9, 45, 0).unwrap()
        );
        assert!("@daily".parse::<Schedule>().is_ok());
        for bad in ["0 3 * *", "6", "soon"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
