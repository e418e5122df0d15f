//! [`Backend`] implemented against a real Docker daemon with bollard.
//!
//! `connect` honours `DOCKER_HOST`, pings the daemon so a missing daemon is reported at once
//! as [`BackendError::Unreachable`], and negotiates the API version (bollard defaults to a
//! newer API than Docker 20.10 speaks). 404 answers become `None` from `inspect_*` and
//! [`BackendError::NotFound`] elsewhere; 304 answers ("already started/stopped") are success.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ExecConfig, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::EventsOptions;
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, ListVolumesOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions, StopContainerOptions,
    TagImageOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};

use super::context::tar_context;
use super::docker_convert::{
    container_info, create_body, daemon_error, endpoint, port_in_use, to_btree, to_hash,
};
use super::error::{Action, BackendError, DaemonError, ObjectKind};
use super::info::{
    ContainerInfo, ContainerListing, ContainerState, EngineEvent, Ensured, ExecResult, HealthState,
    ImageInfo, LabelFilter, LogLine, ObjectListing, Processes,
};
use super::log_lines::split_lines;
use super::spec::{ContainerSpec, ImageBuild};
use super::{remaining, Backend, OutputSink, Result, TarChunks};

/// How often waits poll the daemon.
const POLL: Duration = Duration::from_millis(150);
/// How long `connect` waits for the daemon's first answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines attached to health and exit errors.
const LOG_LINES_KEPT: usize = 20;

/// A connection to a Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    docker: Docker,
}

impl DockerBackend {
    /// Connects to the daemon named by `DOCKER_HOST` (the local socket by default).
    pub async fn connect() -> Result<Self> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        Self::connect_to(&host).await
    }

    /// Connects to the daemon at `host` (`unix:///path`, `tcp://host:port`, ...).
    pub async fn connect_to(host: &str) -> Result<Self> {
        let unreachable = |reason: String| BackendError::Unreachable {
            host: host.to_string(),
            reason,
            hint: "start the Docker daemon (e.g. `sudo systemctl start docker` or \
                   scripts/ensure-docker.sh), or point DOCKER_HOST at a running one"
                .to_string(),
        };
        let docker = Docker::connect_with_host(host).map_err(|e| unreachable(e.to_string()))?;
        // Version negotiation is the first round trip and doubles as the reachability check:
        // a separate ping would cost every command another one.
        match tokio::time::timeout(PING_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => Ok(DockerBackend { docker }),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable("no answer within 5s".to_string())),
        }
    }

    /// The underlying client, for the rare caller that needs more than the trait.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn build(&self, build: &ImageBuild, on_output: OutputSink<'_>) -> Result<String> {
        let tar = tar_context(&build.context_dir, &build.dockerfile, &build.exclude)?;
        let options = BuildImageOptions {
            dockerfile: build.dockerfile.to_string_lossy().replace('\\', "/"),
            t: Some(build.tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(to_hash(&build.build_args)),
            labels: Some(to_hash(&build.labels)),
            target: build.target.clone().unwrap_or_default(),
            ..Default::default()
        };
        let failed = |step: &Option<String>, message: String| BackendError::BuildFailed {
            tag: build.tag.clone(),
            step: step.clone(),
            message,
        };
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut step: Option<String> = None;
        let mut image_id: Option<String> = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    failed(&step, message)
                }
                bollard::errors::Error::DockerStreamError { error } => failed(&step, error),
                other => BackendError::Failed {
                    action: Action::BuildImage,
                    target: build.tag.clone(),
                    source: daemon_error(other),
                },
            })?;
            if let Some(text) = &info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("Step ") {
                        step = Some(line.trim().to_string());
                    }
                    on_output(line);
                }
            }
            if let Some(detail) = info.error_detail {
                let message = detail
                    .message
                    .unwrap_or_else(|| "unknown error".to_string());
                return Err(failed(&step, message));
            }
            if let Some(id) = info.aux.and_then(|aux| aux.id) {
                image_id = Some(id);
            }
        }
        match image_id {
            Some(id) => Ok(id),
            // Older daemons do not always send the id; look the tag up instead.
            None => self
                .image(&build.tag)
                .await?
                .map(|i| i.id)
                .ok_or_else(|| failed(&step, "the daemon reported no image".to_string())),
        }
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageInfo {
                id: img.id.unwrap_or_default(),
                tags: img.repo_tags.unwrap_or_default(),
                labels: to_btree(img.config.and_then(|c| c.labels)),
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed(Action::InspectImage, reference, e)),
        }
    }

    async fn pull(&self, reference: &str) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let reason = match item {
                Ok(info) => match info.error_detail.and_then(|d| d.message) {
                    Some(message) => message,
                    None => continue,
                },
                Err(e) => daemon_error(e).message,
            };
            return Err(BackendError::ImageUnavailable {
                reference: reference.to_string(),
                reason,
            });
        }
        Ok(())
    }

    async fn ensure_volume_impl(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(Ensured::AlreadyExisted),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(failed(Action::EnsureVolume, name, e)),
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(to_hash(labels)),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| failed(Action::EnsureVolume, name, e))?;
        Ok(Ensured::Created)
    }

    async fn list_volumes_impl(&self, filter: &LabelFilter) -> Result<Vec<ObjectListing>> {
        let options = ListVolumesOptions {
            filters: Some(label_filters(filter)),
        };
        let resp = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| failed(Action::ListVolumes, "*", e))?;
        let mut out: Vec<ObjectListing> = resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ObjectListing {
                name: v.name,
                labels: v.labels.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn ensure_network_impl(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured> {
        // Inspect also matches id prefixes, and network names need not be unique: compare the
        // name exactly.
        if self.network_exists(name).await? {
            return Ok(Ensured::AlreadyExisted);
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(to_hash(labels)),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|e| failed(Action::EnsureNetwork, name, e))?;
        Ok(Ensured::Created)
    }

    async fn network_exists(&self, name: &str) -> Result<bool> {
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        };
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| failed(Action::EnsureNetwork, name, e))?;
        Ok(networks.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    async fn list_networks_impl(&self, filter: &LabelFilter) -> Result<Vec<ObjectListing>> {
        let options = ListNetworksOptions {
            filters: Some(label_filters(filter)),
        };
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| failed(Action::ListNetworks, "*", e))?;
        let mut out: Vec<ObjectListing> = networks
            .into_iter()
            .map(|n| ObjectListing {
                name: n.name.unwrap_or_default(),
                labels: to_btree(n.labels),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), create_body(spec))
            .await
            .map_err(|e| match status(&e) {
                Some(404) => BackendError::ImageUnavailable {
                    reference: spec.image.clone(),
                    reason: "not present locally (build or pull it first)".to_string(),
                },
                _ => failed(Action::CreateContainer, &spec.name, e),
            })?;
        for extra in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: spec.name.clone(),
                endpoint_config: Some(endpoint(&extra.aliases)),
            };
            self.docker
                .connect_network(&extra.network, request)
                .await
                .map_err(|e| BackendError::Failed {
                    action: Action::ConnectNetwork,
                    target: format!("{} -> {}", spec.name, extra.network),
                    source: daemon_error(e),
                })?;
        }
        Ok(created.id)
    }

    async fn start(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) => match status(&e) {
                Some(304) => Ok(()),
                _ => {
                    let err = daemon_error(e);
                    if let Some(port) = port_in_use(&err.message) {
                        return Err(BackendError::PortInUse {
                            container: name.to_string(),
                            port,
                        });
                    }
                    Err(classify(
                        Action::StartContainer,
                        ObjectKind::Container,
                        name,
                        err,
                    ))
                }
            },
        }
    }

    /// Waits for a removal someone else started to finish.
    async fn await_removal(&self, name: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.inspect(name).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Failed {
                    action: Action::RemoveContainer,
                    target: name.to_string(),
                    source: DaemonError::api(
                        409,
                        "a removal already in progress did not finish within 60s",
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        match self.docker.inspect_container(name, None).await {
            Ok(resp) => Ok(Some(container_info(resp))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed(Action::InspectContainer, name, e)),
        }
    }

    /// Like `inspect`, for callers that need the container to exist.
    async fn inspect_existing(&self, name: &str) -> Result<ContainerInfo> {
        self.inspect(name)
            .await?
            .ok_or_else(|| BackendError::NotFound {
                kind: ObjectKind::Container,
                name: name.to_string(),
            })
    }

    async fn list(&self, filter: &LabelFilter, all: bool) -> Result<Vec<ContainerListing>> {
        let options = ListContainersOptions {
            all,
            filters: Some(label_filters(filter)),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| failed(Action::ListContainers, "*", e))?;
        let mut out: Vec<ContainerListing> = containers
            .into_iter()
            .map(|c| ContainerListing {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                state: ContainerState::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
                labels: to_btree(c.labels),
                image: c.image.unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn last_logs(&self, name: &str) -> Vec<String> {
        let lines: Vec<Result<LogLine>> = self
            .log_lines(name, false, Some(LOG_LINES_KEPT), None)
            .collect()
            .await;
        lines
            .into_iter()
            .filter_map(|l| l.ok())
            .map(|l| l.line)
            .collect()
    }

    async fn healthy(&self, name: &str, deadline: Instant) -> Result<()> {
        let started = Instant::now();
        loop {
            let info = self.inspect_existing(name).await?;
            match (info.state, info.health) {
                (_, HealthState::Healthy) => return Ok(()),
                (ContainerState::Exited | ContainerState::Dead, _) => {
                    return Err(BackendError::ExitedEarly {
                        container: name.to_string(),
                        exit_code: info.exit_code.unwrap_or(-1),
                        logs: self.last_logs(name).await,
                    })
                }
                // Not started yet: no health to read, but it may be started while we wait.
                (ContainerState::Created, _) => {}
                (_, HealthState::None) => {
                    return Err(BackendError::NoHealthCheck {
                        container: name.to_string(),
                    })
                }
                (_, HealthState::Unhealthy) => {
                    return Err(BackendError::Unhealthy {
                        container: name.to_string(),
                        checks: info.health_output,
                        logs: self.last_logs(name).await,
                    })
                }
                _ => {}
            }
            if remaining(deadline).is_zero() {
                return Err(BackendError::HealthTimeout {
                    container: name.to_string(),
                    waited: started.elapsed(),
                    checks: info.health_output,
                    logs: self.last_logs(name).await,
                });
            }
            tokio::time::sleep(POLL.min(remaining(deadline))).await;
        }
    }

    async fn exited(&self, name: &str, deadline: Instant) -> Result<i64> {
        let started = Instant::now();
        loop {
            let info = self.inspect_existing(name).await?;
            if matches!(info.state, ContainerState::Exited | ContainerState::Dead) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            if remaining(deadline).is_zero() {
                return Err(BackendError::ExitTimeout {
                    container: name.to_string(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(POLL.min(remaining(deadline))).await;
        }
    }

    async fn exec_impl(
        &self,
        container: &str,
        cmd: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<ExecResult> {
        let fail = |e| failed_in(Action::Exec, ObjectKind::Container, container, e);
        let config = ExecConfig {
            cmd: Some(cmd.to_vec()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(fail)?;
        let mut output = String::new();
        let started = self
            .docker
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await
            .map_err(fail)?;
        if let StartExecResults::Attached {
            output: mut out, ..
        } = started
        {
            while let Some(chunk) = out.next().await {
                let chunk = chunk.map_err(fail)?;
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspected = self.docker.inspect_exec(&created.id).await.map_err(fail)?;
        Ok(ExecResult {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output,
        })
    }

    fn log_lines<'a>(
        &'a self,
        name: &'a str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> BoxStream<'a, Result<LogLine>> {
        let options = LogsOptions {
            follow,
            since: since.map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            stdout: true,
            stderr: true,
            tail: tail
                .map(|t| t.to_string())
                .unwrap_or_else(|| "all".to_string()),
            ..Default::default()
        };
        let frames = self.docker.logs(name, Some(options));
        let name = name.to_string();
        split_lines(
            frames.map_err(move |e| failed_in(Action::Logs, ObjectKind::Container, &name, e)),
        )
    }

    fn events_impl(
        &self,
        since_nano: Option<i64>,
        until: Option<i64>,
    ) -> BoxStream<'_, Result<EngineEvent>> {
        let options = EventsOptions {
            since: since_nano.map(|n| {
                format!(
                    "{}.{:09}",
                    n.div_euclid(1_000_000_000),
                    n.rem_euclid(1_000_000_000)
                )
            }),
            until: until.map(|u| u.to_string()),
            // What a project is made of; image and daemon events are not the stack's.
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["container".into(), "network".into(), "volume".into()],
            )])),
        };
        self.docker
            .events(Some(options))
            .map(|m| {
                let m = m.map_err(|e| BackendError::Failed {
                    action: Action::Events,
                    target: "the engine".into(),
                    source: daemon_error(e),
                })?;
                let kind = m
                    .typ
                    .and_then(|t| serde_json::to_value(t).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let actor = m.actor.unwrap_or_default();
                Ok(EngineEvent {
                    kind,
                    action: m.action.unwrap_or_default(),
                    id: actor.id.unwrap_or_default(),
                    attributes: to_btree(actor.attributes),
                    time_nano: m
                        .time_nano
                        .or(m.time.map(|t| t.saturating_mul(1_000_000_000)))
                        .unwrap_or(0),
                })
            })
            .boxed()
    }

    async fn copy_out_impl(&self, container: &str, path: &str) -> Result<Vec<u8>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self
            .docker
            .download_from_container(container, Some(options));
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BackendError::Failed {
                action: Action::CopyOut,
                target: format!("{container}:{path}"),
                source: daemon_error(e),
            })?;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn copy_out_stream_impl<'a>(&'a self, container: &'a str, path: &'a str) -> TarChunks<'a> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        self.docker
            .download_from_container(container, Some(options))
            .map_err(move |e| BackendError::Failed {
                action: Action::CopyOut,
                target: format!("{container}:{path}"),
                source: daemon_error(e),
            })
            .boxed()
    }

    async fn copy_in_stream_impl(
        &self,
        container: &str,
        path: &str,
        tar: TarChunks<'static, std::io::Error>,
    ) -> Result<()> {
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        // A failing chunk ends the body early; the daemon then reports a broken archive,
        // but the cause worth showing is the local one, so it is kept aside.
        let failure = std::sync::Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
        let seen = failure.clone();
        let body = tar.map(move |chunk| {
            if let Err(e) = &chunk {
                if let Ok(mut slot) = seen.lock() {
                    *slot = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
            }
            chunk
        });
        let result = self
            .docker
            .upload_to_container(container, Some(options), bollard::body_try_stream(body))
            .await;
        let local = failure.lock().ok().and_then(|mut slot| slot.take());
        match (result, local) {
            (_, Some(source)) => Err(BackendError::SendData {
                action: Action::CopyIn,
                target: format!("{container}:{path}"),
                source,
            }),
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(BackendError::Failed {
                action: Action::CopyIn,
                target: format!("{container}:{path}"),
                source: daemon_error(e),
            }),
        }
    }

    async fn copy_in_impl(&self, container: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| BackendError::Failed {
                action: Action::CopyIn,
                target: format!("{container}:{path}"),
                source: daemon_error(e),
            })
    }
}

fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn label_filters(filter: &LabelFilter) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), filter.to_docker_filters())])
}

fn failed(action: Action, target: &str, e: bollard::errors::Error) -> BackendError {
    BackendError::Failed {
        action,
        target: target.to_string(),
        source: daemon_error(e),
    }
}

/// Like [`failed`], but a 404 means the named object is missing.
fn failed_in(
    action: Action,
    kind: ObjectKind,
    name: &str,
    e: bollard::errors::Error,
) -> BackendError {
    classify(action, kind, name, daemon_error(e))
}

fn classify(action: Action, kind: ObjectKind, name: &str, err: DaemonError) -> BackendError {
    if err.status == Some(404) {
        BackendError::NotFound {
            kind,
            name: name.to_string(),
        }
    } else {
        BackendError::Failed {
            action,
            target: name.to_string(),
            source: err,
        }
    }
}

/// Maps the answer of a simple request, treating 304 ("nothing to do") as success.
fn unit(
    result: std::result::Result<(), bollard::errors::Error>,
    action: Action,
    kind: ObjectKind,
    name: &str,
) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if status(&e) == Some(304) => Ok(()),
        Err(e) => Err(failed_in(action, kind, name, e)),
    }
}

impl Backend for DockerBackend {
    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild,
        on_output: OutputSink<'a>,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.build(build, on_output))
    }

    fn inspect_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>>> {
        Box::pin(self.image(reference))
    }

    fn pull_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.pull(reference))
    }

    fn list_images<'a>(&'a self, filter: &'a LabelFilter) -> BoxFuture<'a, Result<Vec<ImageInfo>>> {
        Box::pin(async move {
            let filters = HashMap::from([("label".to_string(), filter.to_docker_filters())]);
            let options = ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            };
            let images = self
                .docker
                .list_images(Some(options))
                .await
                .map_err(|e| failed(Action::ListImages, "", e))?;
            Ok(images
                .into_iter()
                .map(|i| ImageInfo {
                    id: i.id,
                    tags: i.repo_tags,
                    labels: i.labels.into_iter().collect(),
                })
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
            let options = TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            };
            let result = self.docker.tag_image(id, Some(options)).await;
            unit(result, Action::TagImage, ObjectKind::Image, id)
        })
    }

    fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let options = RemoveImageOptions {
                force: true,
                noprune: true,
                ..Default::default()
            };
            match self.docker.remove_image(id, Some(options), None).await {
                Ok(_) => Ok(()),
                Err(e) if status(&e) == Some(404) => Err(BackendError::NotFound {
                    kind: ObjectKind::Image,
                    name: id.to_string(),
                }),
                Err(e) => Err(failed(Action::RemoveImage, id, e)),
            }
        })
    }

    fn ensure_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>> {
        Box::pin(self.ensure_volume_impl(name, labels))
    }

    fn list_volumes<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>> {
        Box::pin(self.list_volumes_impl(filter))
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let options = RemoveVolumeOptions { force: false };
            let result = self.docker.remove_volume(name, Some(options)).await;
            unit(result, Action::RemoveVolume, ObjectKind::Volume, name)
        })
    }

    fn ensure_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>> {
        Box::pin(self.ensure_network_impl(name, labels))
    }

    fn list_networks<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>> {
        Box::pin(self.list_networks_impl(filter))
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let result = self.docker.remove_network(name).await;
            unit(result, Action::RemoveNetwork, ObjectKind::Network, name)
        })
    }

    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.create(spec))
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start(name))
    }

    fn stop_container<'a>(&'a self, name: &'a str, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let options = StopContainerOptions {
                t: Some(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX)),
                ..Default::default()
            };
            let result = self.docker.stop_container(name, Some(options)).await;
            unit(result, Action::StopContainer, ObjectKind::Container, name)
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str, force: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let options = RemoveContainerOptions {
                force,
                ..Default::default()
            };
            match self.docker.remove_container(name, Some(options)).await {
                // A removal started by a process that was killed mid-request goes on in the
                // daemon; the container is as good as gone once that removal finishes.
                Err(e)
                    if status(&e) == Some(409) && e.to_string().contains("already in progress") =>
                {
                    self.await_removal(name).await
                }
                result => unit(result, Action::RemoveContainer, ObjectKind::Container, name),
            }
        })
    }

    fn top<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Processes>> {
        Box::pin(async move {
            match self.docker.top_processes(name, None).await {
                Ok(r) => Ok(Processes {
                    titles: r.titles.unwrap_or_default(),
                    rows: r.processes.unwrap_or_default(),
                }),
                Err(e) => Err(failed_in(Action::Top, ObjectKind::Container, name, e)),
            }
        })
    }

    fn rename_container<'a>(&'a self, name: &'a str, to: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let options = bollard::query_parameters::RenameContainerOptionsBuilder::new()
                .name(to)
                .build();
            let result = self.docker.rename_container(name, options).await;
            unit(result, Action::RenameContainer, ObjectKind::Container, name)
        })
    }

    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInfo>>> {
        Box::pin(self.inspect(name))
    }

    fn list_containers<'a>(
        &'a self,
        filter: &'a LabelFilter,
        all: bool,
    ) -> BoxFuture<'a, Result<Vec<ContainerListing>>> {
        Box::pin(self.list(filter, all))
    }

    fn pause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let result = self.docker.pause_container(name).await;
            unit(result, Action::PauseContainer, ObjectKind::Container, name)
        })
    }

    fn unpause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let result = self.docker.unpause_container(name).await;
            unit(
                result,
                Action::UnpauseContainer,
                ObjectKind::Container,
                name,
            )
        })
    }

    fn wait_healthy<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.healthy(name, deadline))
    }

    fn wait_exit<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<i64>> {
        Box::pin(self.exited(name, deadline))
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        cmd: &'a [String],
        env: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<ExecResult>> {
        Box::pin(self.exec_impl(container, cmd, env))
    }

    fn logs_since<'a>(
        &'a self,
        name: &'a str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> BoxStream<'a, Result<LogLine>> {
        self.log_lines(name, follow, tail, since)
    }

    fn copy_out<'a>(&'a self, container: &'a str, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(self.copy_out_impl(container, path))
    }

    fn events<'a>(
        &'a self,
        since_nano: Option<i64>,
        until: Option<i64>,
    ) -> BoxStream<'a, Result<EngineEvent>> {
        self.events_impl(since_nano, until)
    }

    fn copy_in<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        tar: Vec<u8>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.copy_in_impl(container, path, tar))
    }

    fn copy_out_stream<'a>(&'a self, container: &'a str, path: &'a str) -> TarChunks<'a> {
        self.copy_out_stream_impl(container, path)
    }

    fn copy_in_stream<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        tar: TarChunks<'static, std::io::Error>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.copy_in_stream_impl(container, path, tar))
    }
}
