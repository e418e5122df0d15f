//! A hand-written in-memory [`Backend`] for tests of the planner and executors.
//!
//! It models what those layers rely on, not Docker's whole API: images, volumes, networks and
//! containers live in maps; a started container is running (healthy at once if it declares a
//! health check); two running containers cannot publish the same host port; removing makes
//! `inspect` answer `None`. Every call is recorded, and a test can make an operation fail on
//! a target, make a container never healthy, make one exit on start, or occupy a host port.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};

use super::error::{Action, BackendError, DaemonError, ObjectKind};
use super::info::{
    ContainerInfo, ContainerListing, ContainerState, Ensured, ExecResult, HealthState, ImageInfo,
    LabelFilter, LogLine, LogStream, ObjectListing, Processes, PublishedPort,
};
use super::spec::{ContainerSpec, ImageBuild};
use super::{remaining, Backend, OutputSink, Result};

/// One recorded call: what was done, to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub action: Action,
    pub target: String,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    id: String,
    spec: ContainerSpec,
    state: ContainerState,
    exit_code: Option<i64>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    logs: Vec<LogLine>,
}

#[derive(Debug, Default)]
struct World {
    images: BTreeMap<String, ImageInfo>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    networks: BTreeMap<String, BTreeMap<String, String>>,
    containers: BTreeMap<String, FakeContainer>,
    /// Files copied in, by container and path.
    archives: HashMap<(String, String), Vec<u8>>,
    calls: Vec<Call>,
    failures: BTreeSet<(Action, String)>,
    never_healthy: BTreeSet<String>,
    exit_on_start: BTreeMap<String, i64>,
    exec_results: BTreeMap<String, ExecResult>,
    host_ports: BTreeSet<u16>,
    next_id: u64,
}

/// The in-memory engine. Cheap to create; share it as `Arc<FakeBackend>`.
#[derive(Debug, Default)]
pub struct FakeBackend {
    world: Mutex<World>,
}

impl FakeBackend {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding the lock has already failed; keep the data usable.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The recorded calls of one kind, as their targets.
    pub fn calls_of(&self, action: Action) -> Vec<String> {
        self.world()
            .calls
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.target.clone())
            .collect()
    }

    /// Makes every `action` on `target` fail with a daemon error.
    pub fn fail(&self, action: Action, target: &str) {
        self.world().failures.insert((action, target.to_string()));
    }

    /// The container's health check never passes.
    pub fn never_healthy(&self, container: &str) {
        self.world().never_healthy.insert(container.to_string());
    }

    /// Starting the container makes it exit at once with `code` (a one-shot job).
    pub fn exit_on_start(&self, container: &str, code: i64) {
        self.world()
            .exit_on_start
            .insert(container.to_string(), code);
    }

    /// What `exec` in `container` answers (exit 0, no output, by default).
    pub fn set_exec_result(&self, container: &str, result: ExecResult) {
        self.world()
            .exec_results
            .insert(container.to_string(), result);
    }

    /// A host process holds `port`: starting a container that publishes it fails.
    pub fn occupy_host_port(&self, port: u16) {
        self.world().host_ports.insert(port);
    }

    /// Adds an image as if built or pulled.
    pub fn add_image(&self, reference: &str, labels: BTreeMap<String, String>) {
        let mut w = self.world();
        let id = w.new_id("sha256:");
        w.images.insert(
            reference.to_string(),
            ImageInfo {
                id,
                tags: vec![reference.to_string()],
                labels,
            },
        );
    }

    /// Appends a line to the container's logs.
    pub fn push_log(&self, container: &str, stream: LogStream, line: &str) {
        if let Some(c) = self.world().containers.get_mut(container) {
            c.logs.push(LogLine {
                stream,
                line: line.to_string(),
            });
        }
    }

    /// The spec a container was created with.
    pub fn container_spec(&self, name: &str) -> Option<ContainerSpec> {
        self.world().containers.get(name).map(|c| c.spec.clone())
    }

    /// Names of all volumes.
    pub fn volume_names(&self) -> Vec<String> {
        self.world().volumes.keys().cloned().collect()
    }

    /// Names of all networks.
    pub fn network_names(&self) -> Vec<String> {
        self.world().networks.keys().cloned().collect()
    }

    /// Records the call and answers an injected failure, if any.
    fn enter(&self, action: Action, target: &str) -> Result<MutexGuard<'_, World>> {
        let mut w = self.world();
        w.calls.push(Call {
            action,
            target: target.to_string(),
        });
        if w.failures.contains(&(action, target.to_string())) {
            return Err(BackendError::Failed {
                action,
                target: target.to_string(),
                source: DaemonError::api(500, "injected failure"),
            });
        }
        Ok(w)
    }
}

impl World {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:064x}", self.next_id)
    }

    fn container(&mut self, name: &str) -> Result<&mut FakeContainer> {
        self.containers
            .get_mut(name)
            .ok_or_else(|| not_found(ObjectKind::Container, name))
    }

    fn info(&self, name: &str) -> Option<ContainerInfo> {
        let c = self.containers.get(name)?;
        let health = match (&c.spec.health, c.state) {
            (None, _) => HealthState::None,
            (Some(_), ContainerState::Running | ContainerState::Paused) => {
                if self.never_healthy.contains(name) {
                    HealthState::Starting
                } else {
                    HealthState::Healthy
                }
            }
            (Some(_), ContainerState::Created) => HealthState::Starting,
            (Some(_), _) => HealthState::Unhealthy,
        };
        let health_output = if self.never_healthy.contains(name) {
            vec!["exit 1: health check failed".to_string()]
        } else {
            Vec::new()
        };
        let running = c.state == ContainerState::Running;
        Some(ContainerInfo {
            id: c.id.clone(),
            name: name.to_string(),
            state: c.state,
            health,
            exit_code: c.exit_code,
            started_at: c.started_at,
            labels: c.spec.labels.clone(),
            image: c.spec.image.clone(),
            image_id: format!("sha256:{}", c.spec.image),
            ports: if running {
                published(&c.spec)
            } else {
                Vec::new()
            },
            health_output,
            env: c.spec.env.clone(),
            ips: if running {
                c.spec
                    .networks
                    .iter()
                    .enumerate()
                    .map(|(k, n)| {
                        (
                            n.network.clone(),
                            format!("10.0.{k}.{}", c.id.len() % 250 + 2),
                        )
                    })
                    .collect()
            } else {
                BTreeMap::new()
            },
        })
    }
}

fn published(spec: &ContainerSpec) -> Vec<PublishedPort> {
    spec.ports
        .iter()
        .map(|p| PublishedPort {
            container_port: p.container_port,
            protocol: p.protocol,
            host_ip: p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".to_string()),
            host_port: p.host_port.unwrap_or(p.container_port),
        })
        .collect()
}

fn not_found(kind: ObjectKind, name: &str) -> BackendError {
    BackendError::NotFound {
        kind,
        name: name.to_string(),
    }
}

fn log_tail(logs: &[LogLine]) -> Vec<String> {
    logs.iter()
        .skip(logs.len().saturating_sub(20))
        .map(|l| l.line.clone())
        .collect()
}

impl Backend for FakeBackend {
    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild,
        on_output: OutputSink<'a>,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let mut w = self.enter(Action::BuildImage, &build.tag)?;
            let id = w.new_id("sha256:");
            w.images.insert(
                build.tag.clone(),
                ImageInfo {
                    id: id.clone(),
                    tags: vec![build.tag.clone()],
                    labels: build.labels.clone(),
                },
            );
            drop(w);
            on_output(&format!("Successfully built {id}"));
            Ok(id)
        })
    }

    fn inspect_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>>> {
        Box::pin(async move {
            let w = self.enter(Action::InspectImage, reference)?;
            Ok(w.images.get(reference).cloned())
        })
    }

    fn pull_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let w = self.enter(Action::PullImage, reference)?;
            if w.images.contains_key(reference) {
                return Ok(());
            }
            // Like the machines this runs on: there is no registry.
            Err(BackendError::ImageUnavailable {
                reference: reference.to_string(),
                reason: "the fake engine has no registry".to_string(),
            })
        })
    }

    fn list_images<'a>(&'a self, filter: &'a LabelFilter) -> BoxFuture<'a, Result<Vec<ImageInfo>>> {
        Box::pin(async move {
            let w = self.enter(Action::ListImages, "")?;
            let mut seen = BTreeSet::new();
            Ok(w.images
                .values()
                .filter(|i| filter.matches(&i.labels) && seen.insert(i.id.clone()))
                .cloned()
                .collect())
        })
    }

    fn tag_image<'a>(
        &'a self,
        id: &'a str,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::TagImage, id)?;
            let Some(image) = w.images.values().find(|i| i.id == id).cloned() else {
                return Err(not_found(ObjectKind::Image, id));
            };
            w.images.insert(format!("{repo}:{tag}"), image);
            Ok(())
        })
    }

    fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::RemoveImage, id)?;
            let before = w.images.len();
            w.images.retain(|tag, i| i.id != id && tag != id);
            if w.images.len() == before {
                return Err(not_found(ObjectKind::Image, id));
            }
            Ok(())
        })
    }

    fn ensure_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>> {
        Box::pin(async move {
            let mut w = self.enter(Action::EnsureVolume, name)?;
            if w.volumes.contains_key(name) {
                return Ok(Ensured::AlreadyExisted);
            }
            w.volumes.insert(name.to_string(), labels.clone());
            Ok(Ensured::Created)
        })
    }

    fn list_volumes<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>> {
        Box::pin(async move {
            let w = self.enter(Action::ListVolumes, "*")?;
            Ok(listing(&w.volumes, filter))
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::RemoveVolume, name)?;
            let in_use = w.containers.values().any(|c| {
                c.spec
                    .mounts
                    .iter()
                    .any(|m| m.source == super::MountSource::Volume(name.to_string()))
            });
            if in_use {
                return Err(BackendError::Failed {
                    action: Action::RemoveVolume,
                    target: name.to_string(),
                    source: DaemonError::api(409, "volume is in use"),
                });
            }
            w.volumes
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| not_found(ObjectKind::Volume, name))
        })
    }

    fn ensure_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>> {
        Box::pin(async move {
            let mut w = self.enter(Action::EnsureNetwork, name)?;
            if w.networks.contains_key(name) {
                return Ok(Ensured::AlreadyExisted);
            }
            w.networks.insert(name.to_string(), labels.clone());
            Ok(Ensured::Created)
        })
    }

    fn list_networks<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>> {
        Box::pin(async move {
            let w = self.enter(Action::ListNetworks, "*")?;
            Ok(listing(&w.networks, filter))
        })
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::RemoveNetwork, name)?;
            w.networks
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| not_found(ObjectKind::Network, name))
        })
    }

    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let mut w = self.enter(Action::CreateContainer, &spec.name)?;
            if w.containers.contains_key(&spec.name) {
                return Err(BackendError::Failed {
                    action: Action::CreateContainer,
                    target: spec.name.clone(),
                    source: DaemonError::api(409, "the container name is already in use"),
                });
            }
            if !w.images.contains_key(&spec.image) {
                return Err(BackendError::ImageUnavailable {
                    reference: spec.image.clone(),
                    reason: "not present locally (build or pull it first)".to_string(),
                });
            }
            for net in &spec.networks {
                if !w.networks.contains_key(&net.network) {
                    return Err(not_found(ObjectKind::Network, &net.network));
                }
            }
            for mount in &spec.mounts {
                if let super::MountSource::Volume(v) = &mount.source {
                    // Docker creates missing named volumes silently; the fake does too.
                    w.volumes.entry(v.clone()).or_default();
                }
            }
            let id = w.new_id("");
            w.containers.insert(
                spec.name.clone(),
                FakeContainer {
                    id: id.clone(),
                    spec: spec.clone(),
                    state: ContainerState::Created,
                    exit_code: None,
                    started_at: None,
                    logs: Vec::new(),
                },
            );
            Ok(id)
        })
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::StartContainer, name)?;
            let spec = w.container(name)?.spec.clone();
            if w.container(name)?.state == ContainerState::Running {
                return Ok(());
            }
            for port in spec.ports.iter().filter_map(|p| p.host_port) {
                let taken_by_container = w.containers.iter().any(|(other, c)| {
                    other != name
                        && c.state == ContainerState::Running
                        && c.spec.ports.iter().any(|p| p.host_port == Some(port))
                });
                if taken_by_container || w.host_ports.contains(&port) {
                    return Err(BackendError::PortInUse {
                        container: name.to_string(),
                        port: format!("0.0.0.0:{port}"),
                    });
                }
            }
            let exit = w.exit_on_start.get(name).copied();
            let c = w.container(name)?;
            c.started_at = Some(chrono::Utc::now());
            match exit {
                Some(code) => {
                    c.state = ContainerState::Exited;
                    c.exit_code = Some(code);
                }
                None => {
                    c.state = ContainerState::Running;
                    c.exit_code = None;
                }
            }
            Ok(())
        })
    }

    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::StopContainer, name)?;
            let c = w.container(name)?;
            if matches!(c.state, ContainerState::Running | ContainerState::Paused) {
                c.state = ContainerState::Exited;
                // What a process killed by SIGTERM reports.
                c.exit_code = Some(143);
            }
            Ok(())
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str, force: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::RemoveContainer, name)?;
            let c = w.container(name)?;
            if !force && matches!(c.state, ContainerState::Running | ContainerState::Paused) {
                return Err(BackendError::Failed {
                    action: Action::RemoveContainer,
                    target: name.to_string(),
                    source: DaemonError::api(409, "cannot remove a running container"),
                });
            }
            w.containers.remove(name);
            w.archives.retain(|(c, _), _| c != name);
            Ok(())
        })
    }

    fn top<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Processes>> {
        Box::pin(async move {
            let mut w = self.enter(Action::Top, name)?;
            let c = w.container(name)?;
            let cmd = c.spec.command.clone().unwrap_or_default().join(" ");
            Ok(Processes {
                titles: vec!["PID".to_string(), "CMD".to_string()],
                rows: vec![vec!["1".to_string(), cmd]],
            })
        })
    }

    fn rename_container<'a>(&'a self, name: &'a str, to: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::RenameContainer, name)?;
            w.container(name)?;
            if w.containers.contains_key(to) {
                return Err(BackendError::Failed {
                    action: Action::RenameContainer,
                    target: name.to_string(),
                    source: DaemonError::api(409, "the name is already in use"),
                });
            }
            let mut c = w.containers.remove(name).expect("checked above");
            c.spec.name = to.to_string();
            w.containers.insert(to.to_string(), c);
            Ok(())
        })
    }

    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInfo>>> {
        Box::pin(async move {
            let w = self.enter(Action::InspectContainer, name)?;
            Ok(w.info(name))
        })
    }

    fn list_containers<'a>(
        &'a self,
        filter: &'a LabelFilter,
        all: bool,
    ) -> BoxFuture<'a, Result<Vec<ContainerListing>>> {
        Box::pin(async move {
            let w = self.enter(Action::ListContainers, "*")?;
            Ok(w.containers
                .iter()
                .filter(|(_, c)| filter.matches(&c.spec.labels))
                .filter(|(_, c)| all || c.state == ContainerState::Running)
                .map(|(name, c)| ContainerListing {
                    id: c.id.clone(),
                    name: name.clone(),
                    state: c.state,
                    labels: c.spec.labels.clone(),
                    image: c.spec.image.clone(),
                })
                .collect())
        })
    }

    fn pause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::PauseContainer, name)?;
            let c = w.container(name)?;
            if c.state != ContainerState::Running {
                return Err(BackendError::Failed {
                    action: Action::PauseContainer,
                    target: name.to_string(),
                    source: DaemonError::api(409, "container is not running"),
                });
            }
            c.state = ContainerState::Paused;
            Ok(())
        })
    }

    fn unpause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::UnpauseContainer, name)?;
            let c = w.container(name)?;
            if c.state != ContainerState::Paused {
                return Err(BackendError::Failed {
                    action: Action::UnpauseContainer,
                    target: name.to_string(),
                    source: DaemonError::api(409, "container is not paused"),
                });
            }
            c.state = ContainerState::Running;
            Ok(())
        })
    }

    fn wait_healthy<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let started = Instant::now();
            let (info, logs) = {
                let mut w = self.enter(Action::WaitHealthy, name)?;
                let logs = log_tail(&w.container(name)?.logs);
                (w.info(name), logs)
            };
            let info = info.ok_or_else(|| not_found(ObjectKind::Container, name))?;
            match (info.state, info.health) {
                (_, HealthState::Healthy) => Ok(()),
                (ContainerState::Exited | ContainerState::Dead, _) => {
                    Err(BackendError::ExitedEarly {
                        container: name.to_string(),
                        exit_code: info.exit_code.unwrap_or(-1),
                        logs,
                    })
                }
                (_, HealthState::None) => Err(BackendError::NoHealthCheck {
                    container: name.to_string(),
                }),
                _ => {
                    // Never healthy: honour the caller's deadline like the real engine would.
                    tokio::time::sleep(remaining(deadline)).await;
                    Err(BackendError::HealthTimeout {
                        container: name.to_string(),
                        waited: started.elapsed(),
                        checks: info.health_output,
                        logs,
                    })
                }
            }
        })
    }

    fn wait_exit<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let started = Instant::now();
            let info = {
                let w = self.enter(Action::WaitExit, name)?;
                w.info(name)
            };
            let info = info.ok_or_else(|| not_found(ObjectKind::Container, name))?;
            if matches!(info.state, ContainerState::Exited | ContainerState::Dead) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(remaining(deadline)).await;
            Err(BackendError::ExitTimeout {
                container: name.to_string(),
                waited: started.elapsed(),
            })
        })
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        _cmd: &'a [String],
        _env: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<ExecResult>> {
        Box::pin(async move {
            let mut w = self.enter(Action::Exec, container)?;
            if w.container(container)?.state != ContainerState::Running {
                return Err(BackendError::Failed {
                    action: Action::Exec,
                    target: container.to_string(),
                    source: DaemonError::api(409, "container is not running"),
                });
            }
            Ok(w.exec_results
                .get(container)
                .cloned()
                .unwrap_or(ExecResult {
                    exit_code: 0,
                    output: String::new(),
                }))
        })
    }

    fn logs_since<'a>(
        &'a self,
        name: &'a str,
        _follow: bool,
        tail: Option<usize>,
        _since: Option<i64>,
    ) -> BoxStream<'a, Result<LogLine>> {
        let lines: Vec<Result<LogLine>> = match self.enter(Action::Logs, name) {
            Err(e) => vec![Err(e)],
            Ok(mut w) => match w.container(name) {
                Err(e) => vec![Err(e)],
                Ok(c) => {
                    let skip = tail.map_or(0, |t| c.logs.len().saturating_sub(t));
                    c.logs.iter().skip(skip).cloned().map(Ok).collect()
                }
            },
        };
        // Following ends at once: the fake's containers produce no new output by themselves.
        stream::iter(lines).boxed()
    }

    fn copy_out<'a>(&'a self, container: &'a str, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let mut w = self.enter(Action::CopyOut, container)?;
            w.container(container)?;
            w.archives
                .get(&(container.to_string(), path.to_string()))
                .cloned()
                .ok_or_else(|| BackendError::Failed {
                    action: Action::CopyOut,
                    target: format!("{container}:{path}"),
                    source: DaemonError::api(404, "no such file or directory"),
                })
        })
    }

    fn copy_in<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        tar: Vec<u8>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.enter(Action::CopyIn, container)?;
            w.container(container)?;
            w.archives
                .insert((container.to_string(), path.to_string()), tar);
            Ok(())
        })
    }
}

fn listing(
    objects: &BTreeMap<String, BTreeMap<String, String>>,
    filter: &LabelFilter,
) -> Vec<ObjectListing> {
    objects
        .iter()
        .filter(|(_, labels)| filter.matches(labels))
        .map(|(name, labels)| ObjectListing {
            name: name.clone(),
            labels: labels.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::spec::{HealthCheck, PortSpec, Protocol};
    use std::sync::Arc;

    fn backend() -> Arc<dyn Backend> {
        let fake = FakeBackend::new();
        fake.add_image("img", BTreeMap::new());
        Arc::new(fake)
    }

    fn spec(name: &str, host_port: Option<u16>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "img".into(),
            labels: BTreeMap::from([("sanctuary.project".into(), "p".into())]),
            ports: host_port
                .map(|p| PortSpec {
                    host_ip: None,
                    host_port: Some(p),
                    container_port: 80,
                    protocol: Protocol::Tcp,
                })
                .into_iter()
                .collect(),
            health: Some(HealthCheck {
                cmd: vec!["true".into()],
                ..HealthCheck::default()
            }),
            ..ContainerSpec::default()
        }
    }

    #[tokio::test]
    async fn create_then_inspect_shows_a_created_container() {
        let b = backend();
        b.create_container(&spec("web", None)).await.unwrap();
        let info = b.inspect_container("web").await.unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Created);
        assert_eq!(info.labels["sanctuary.project"], "p");
        assert!(b.inspect_container("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn start_and_stop_change_state() {
        let b = backend();
        b.create_container(&spec("web", Some(8080))).await.unwrap();
        b.start_container("web").await.unwrap();
        let info = b.inspect_container("web").await.unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Running);
        assert_eq!(info.health, HealthState::Healthy);
        assert_eq!(info.ports[0].host_port, 8080);
        b.stop_container("web", Duration::from_secs(1))
            .await
            .unwrap();
        let info = b.inspect_container("web").await.unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Exited);
    }

    #[tokio::test]
    async fn removed_containers_inspect_as_none() {
        let b = backend();
        b.create_container(&spec("web", None)).await.unwrap();
        b.start_container("web").await.unwrap();
        let err = b.remove_container("web", false).await.unwrap_err();
        assert!(matches!(err, BackendError::Failed { .. }), "{err}");
        b.remove_container("web", true).await.unwrap();
        assert!(b.inspect_container("web").await.unwrap().is_none());
        let err = b.start_container("web").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn a_host_port_clash_fails_the_second_start() {
        let b = backend();
        b.create_container(&spec("a", Some(3000))).await.unwrap();
        b.create_container(&spec("b", Some(3000))).await.unwrap();
        b.start_container("a").await.unwrap();
        let err = b.start_container("b").await.unwrap_err();
        assert!(
            matches!(&err, BackendError::PortInUse { container, port } if container == "b" && port.ends_with(":3000")),
            "{err}"
        );
        // Once the holder stops, the port is free again.
        b.stop_container("a", Duration::ZERO).await.unwrap();
        b.start_container("b").await.unwrap();
    }

    #[tokio::test]
    async fn an_occupied_host_port_fails_the_start() {
        let fake = FakeBackend::new();
        fake.add_image("img", BTreeMap::new());
        fake.occupy_host_port(9000);
        fake.create_container(&spec("a", Some(9000))).await.unwrap();
        let err = fake.start_container("a").await.unwrap_err();
        assert!(matches!(err, BackendError::PortInUse { .. }), "{err}");
    }

    #[tokio::test]
    async fn never_healthy_times_out_at_the_deadline_with_output() {
        let fake = FakeBackend::new();
        fake.add_image("img", BTreeMap::new());
        fake.never_healthy("web");
        fake.create_container(&spec("web", None)).await.unwrap();
        fake.start_container("web").await.unwrap();
        fake.push_log("web", LogStream::Stderr, "boom");
        let deadline = Instant::now() + Duration::from_millis(50);
        let err = fake.wait_healthy("web", deadline).await.unwrap_err();
        assert!(Instant::now() >= deadline);
        match err {
            BackendError::HealthTimeout { checks, logs, .. } => {
                assert!(!checks.is_empty());
                assert_eq!(logs, vec!["boom"]);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[tokio::test]
    async fn a_container_never_started_is_not_healthy_by_the_deadline() {
        let b = backend();
        b.create_container(&spec("web", None)).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(20);
        let err = b.wait_healthy("web", deadline).await.unwrap_err();
        assert!(matches!(err, BackendError::HealthTimeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn wait_healthy_reports_an_early_exit_and_wait_exit_its_code() {
        let fake = FakeBackend::new();
        fake.add_image("img", BTreeMap::new());
        fake.exit_on_start("job", 3);
        fake.create_container(&spec("job", None)).await.unwrap();
        fake.start_container("job").await.unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let err = fake.wait_healthy("job", far).await.unwrap_err();
        assert!(
            matches!(err, BackendError::ExitedEarly { exit_code: 3, .. }),
            "{err}"
        );
        assert_eq!(fake.wait_exit("job", far).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn injected_failures_name_the_action_and_calls_are_recorded() {
        let fake = FakeBackend::new();
        fake.add_image("img", BTreeMap::new());
        fake.fail(Action::StartContainer, "web");
        fake.create_container(&spec("web", None)).await.unwrap();
        let err = fake.start_container("web").await.unwrap_err();
        assert!(
            matches!(
                err,
                BackendError::Failed {
                    action: Action::StartContainer,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            fake.calls(),
            vec![
                Call {
                    action: Action::CreateContainer,
                    target: "web".into()
                },
                Call {
                    action: Action::StartContainer,
                    target: "web".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn ensure_volume_and_network_are_idempotent_and_listed_by_label() {
        let b = backend();
        let labels = BTreeMap::from([("sanctuary.project".to_string(), "p".to_string())]);
        assert_eq!(
            b.ensure_volume("data", &labels).await.unwrap(),
            Ensured::Created
        );
        assert_eq!(
            b.ensure_volume("data", &labels).await.unwrap(),
            Ensured::AlreadyExisted
        );
        b.ensure_volume("foreign", &BTreeMap::new()).await.unwrap();
        assert_eq!(
            b.ensure_network("net", &labels).await.unwrap(),
            Ensured::Created
        );
        assert_eq!(
            b.ensure_network("net", &labels).await.unwrap(),
            Ensured::AlreadyExisted
        );
        let filter = LabelFilter::new().with("sanctuary.project", "p");
        let vols = b.list_volumes(&filter).await.unwrap();
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].name, "data");
        assert_eq!(b.list_networks(&filter).await.unwrap().len(), 1);
        b.remove_volume("data").await.unwrap();
        assert!(b.remove_volume("data").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn create_needs_the_image_and_a_free_name() {
        let b = backend();
        let mut s = spec("web", None);
        s.image = "missing".into();
        let err = b.create_container(&s).await.unwrap_err();
        assert!(
            matches!(err, BackendError::ImageUnavailable { .. }),
            "{err}"
        );
        b.create_container(&spec("web", None)).await.unwrap();
        let err = b.create_container(&spec("web", None)).await.unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }

    #[tokio::test]
    async fn copy_in_then_out_round_trips_and_pause_toggles() {
        let b = backend();
        b.create_container(&spec("web", None)).await.unwrap();
        b.start_container("web").await.unwrap();
        b.copy_in("web", "/data", vec![1, 2, 3]).await.unwrap();
        assert_eq!(b.copy_out("web", "/data").await.unwrap(), vec![1, 2, 3]);
        b.pause_container("web").await.unwrap();
        let info = b.inspect_container("web").await.unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Paused);
        b.unpause_container("web").await.unwrap();
        let listed = b
            .list_containers(&LabelFilter::new().with("sanctuary.project", "p"), false)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }
}
