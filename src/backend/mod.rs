//! The backend: the only place that talks to a container engine.
//!
//! [`Backend`] is a narrow trait in the project's words — ensure a volume, inspect a container
//! (`None` when absent), create/start/stop/remove, wait until healthy under a deadline the
//! caller sets, exec, copy tar archives in and out. It is object safe, so executors hold an
//! `Arc<dyn Backend>`. [`docker::DockerBackend`] implements it against a real Docker daemon;
//! [`fake::FakeBackend`] is a hand-written in-memory engine for tests of the layers above.
//!
//! The project's own objects are found by label ([`LabelFilter`]), never by name patterns.

pub mod chunks;
pub mod context;
pub mod docker;
mod docker_convert;
pub mod error;
pub mod fake;
pub mod helper;
pub mod info;
mod log_lines;
pub mod names;
pub mod spec;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

pub use error::{Action, BackendError, DaemonError, ObjectKind};
pub use info::{
    ContainerInfo, ContainerListing, ContainerState, EngineEvent, Ensured, ExecResult, HealthState,
    ImageInfo, LabelFilter, LogLine, LogStream, ObjectListing, Processes, PublishedPort,
};
pub use spec::{
    ContainerSpec, HealthCheck, ImageBuild, MountSource, MountSpec, NetworkAttachment, PortSpec,
    Protocol, RestartPolicy,
};

/// Result of a backend operation.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A tar archive in chunks, as it flows out of or into the engine, so that a large tree is
/// never held in memory whole.
pub type TarChunks<'a, E = BackendError> = BoxStream<'a, std::result::Result<Bytes, E>>;

/// Receives build output, one line at a time, as it arrives.
pub type OutputSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A container engine, as sanctuary needs it.
///
/// Names are container, volume and network names. Methods that act on a missing object fail
/// with [`BackendError::NotFound`], except the `inspect_*` methods, which answer `None`.
pub trait Backend: Send + Sync {
    /// Builds an image from `build`'s context, streaming output lines to `on_output`.
    /// Returns the new image's id.
    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild,
        on_output: OutputSink<'a>,
    ) -> BoxFuture<'a, Result<String>>;

    /// The image named by `reference`, if present locally.
    fn inspect_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>>>;

    /// Pulls `reference` from its registry; [`BackendError::ImageUnavailable`] when it cannot.
    fn pull_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Local images whose labels match `filter`.
    fn list_images<'a>(&'a self, filter: &'a LabelFilter) -> BoxFuture<'a, Result<Vec<ImageInfo>>>;

    /// Gives image `id` the extra name `repo:tag` (moving that name if it named another).
    fn tag_image<'a>(
        &'a self,
        id: &'a str,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<()>>;

    /// Removes an image by id or tag, keeping its parent layers: another build on the same
    /// engine may be using them as its cache at this moment.
    fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Creates the volume unless it exists. Existing volumes are left as they are.
    fn ensure_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>>;

    /// Volumes whose labels match `filter`.
    fn list_volumes<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>>;

    /// Removes a volume and its data.
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Creates the (bridge) network unless it exists.
    fn ensure_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Ensured>>;

    /// Networks whose labels match `filter`.
    fn list_networks<'a>(
        &'a self,
        filter: &'a LabelFilter,
    ) -> BoxFuture<'a, Result<Vec<ObjectListing>>>;

    /// Removes a network.
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Creates a container (not started) and joins all its networks. Returns its id.
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, Result<String>>;

    /// Starts a container; starting a running one is not an error.
    /// [`BackendError::PortInUse`] when a published host port is taken.
    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Stops a container, killing it after `timeout`; stopping a stopped one is not an error.
    fn stop_container<'a>(&'a self, name: &'a str, timeout: Duration) -> BoxFuture<'a, Result<()>>;

    /// Removes a container; `force` also removes a running one.
    fn remove_container<'a>(&'a self, name: &'a str, force: bool) -> BoxFuture<'a, Result<()>>;

    /// The processes running in container `name`, as `ps` shows them: column titles, rows.
    fn top<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Processes>>;

    /// Gives container `name` the name `to`, running or not.
    fn rename_container<'a>(&'a self, name: &'a str, to: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The container, or `None` when it does not exist.
    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ContainerInfo>>>;

    /// Containers whose labels match `filter`; stopped ones too when `all`.
    fn list_containers<'a>(
        &'a self,
        filter: &'a LabelFilter,
        all: bool,
    ) -> BoxFuture<'a, Result<Vec<ContainerListing>>>;

    /// Freezes a running container's processes.
    fn pause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Thaws a paused container.
    fn unpause_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Waits until the container's health check passes, polling until `deadline`.
    ///
    /// Fails early when the container exits ([`BackendError::ExitedEarly`]) or the daemon
    /// declares it unhealthy ([`BackendError::Unhealthy`]); at the deadline fails with
    /// [`BackendError::HealthTimeout`]. Errors carry the last health-check outputs and logs.
    /// A container without a health check fails with [`BackendError::NoHealthCheck`]: the
    /// caller asked for a condition that can never hold.
    fn wait_healthy<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<()>>;

    /// Waits until the container exits and returns its exit code.
    fn wait_exit<'a>(&'a self, name: &'a str, deadline: Instant) -> BoxFuture<'a, Result<i64>>;

    /// Runs `cmd` inside a running container and collects its output.
    fn exec<'a>(
        &'a self,
        container: &'a str,
        cmd: &'a [String],
        env: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<ExecResult>>;

    /// The container's output as lines; the last `tail` lines only when set; keeps streaming
    /// new lines while the container runs when `follow`.
    fn logs<'a>(
        &'a self,
        name: &'a str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'a, Result<LogLine>> {
        self.logs_since(name, follow, tail, None)
    }

    /// [`Backend::logs`], from `since` (seconds since the epoch) on when set.
    fn logs_since<'a>(
        &'a self,
        name: &'a str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> BoxStream<'a, Result<LogLine>>;

    /// The engine's events from `since_nano` (nanoseconds since the epoch; now when `None`)
    /// until `until` (seconds since the epoch; without it the stream goes on while the
    /// engine is reachable, and ends with an error when it goes away). An engine without
    /// events has none.
    fn events<'a>(
        &'a self,
        since_nano: Option<i64>,
        until: Option<i64>,
    ) -> BoxStream<'a, Result<EngineEvent>> {
        let _ = (since_nano, until);
        futures_util::stream::empty().boxed()
    }

    /// `path` inside the container, as a tar archive.
    fn copy_out<'a>(&'a self, container: &'a str, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>>>;

    /// Unpacks the tar archive `tar` into directory `path` inside the container.
    fn copy_in<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        tar: Vec<u8>,
    ) -> BoxFuture<'a, Result<()>>;

    /// `path` inside the container as a tar archive, in chunks as the engine sends them.
    /// The default collects [`Backend::copy_out`]; an engine that can stream overrides it.
    fn copy_out_stream<'a>(&'a self, container: &'a str, path: &'a str) -> TarChunks<'a> {
        futures_util::stream::once(self.copy_out(container, path))
            .map_ok(Bytes::from)
            .boxed()
    }

    /// Unpacks a tar archive arriving in chunks into directory `path` inside the container.
    /// A chunk that fails to arrive aborts the upload with [`BackendError::SendData`]. The
    /// default collects the chunks and calls [`Backend::copy_in`].
    fn copy_in_stream<'a>(
        &'a self,
        container: &'a str,
        path: &'a str,
        tar: TarChunks<'static, std::io::Error>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let chunks: Vec<Bytes> =
                tar.try_collect()
                    .await
                    .map_err(|source| BackendError::SendData {
                        action: Action::CopyIn,
                        target: format!("{container}:{path}"),
                        source,
                    })?;
            self.copy_in(container, path, chunks.concat()).await
        })
    }
}

/// How long is left until `deadline`, zero when it has passed.
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
