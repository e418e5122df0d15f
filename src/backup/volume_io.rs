//! Reading and writing a Docker volume's files through short-lived helper containers, with
//! the data streamed in chunks, never held in memory whole.
//!
//! The helper image is `<project>-sanctuary-helper`: `FROM scratch` plus the host's static
//! `/bin/busybox`, built once and labelled with the project (there is no registry to pull
//! from, and a service's image may lack a shell). Reading needs no running process: Docker's
//! archive API copies out of a created-but-never-started container, so the volume is mounted
//! read-only and nothing in it can change because of the backup.
//!
//! Writing is two steps so that a failure halfway never leaves a volume half-restored: the
//! verified tree is unpacked into a fresh staging volume while the real one is untouched
//! (and its consumers still run); then, with the consumers stopped, one helper empties the
//! real volume and copies the staged tree over with `cp -a`, which is local to the engine.
//! Helper containers are removed whether the step worked or not. Every helper container and
//! staging volume carries the project label and its maker's pid and machine
//! ([`names::owned`]); the staging volume's name carries the debris mark too
//! (`<volume>.sanctuary-tmp-<pid>-staging`). One left by a killed process is removed by the
//! next backup, restore or prune of the project ([`sweep_helpers`]), and `destroy` finds it
//! by the project label; those of a live process are left alone.
//!
//! A requested stop ([`Stop`]) ends reading a volume and unpacking into a staging volume at
//! once (the stream is cut, the helper and the staging volume removed). Swapping a staged
//! tree in is the commit and is never cut: it runs to its end.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::backend::chunks::{self, ChunkReader};
use crate::backend::names;
use crate::backend::{Backend, BackendError, ContainerSpec, MountSource, MountSpec, TarChunks};

use super::run_error::RunError;
use super::stop::{stopped_io, Stop, StopReader};

/// Where the helper container sees the volume.
const MOUNT_POINT: &str = "/source";
/// Where the swap helper sees the staging volume.
const STAGING_POINT: &str = "/staging";
/// How long swapping a staged volume in may take.
const SWAP_TIMEOUT: Duration = Duration::from_secs(3600);

use crate::backend::helper::helper_image;

/// Builds the project's helper image unless it exists; returns its tag.
pub async fn ensure_helper_image(backend: &dyn Backend, project: &str) -> Result<String, RunError> {
    crate::backend::helper::ensure_helper_image(backend, project)
        .await
        .map_err(|reason| RunError::HelperImage {
            image: helper_image(project),
            reason,
        })
}

/// A helper container's spec mounting each `(volume, path, read_only)`.
fn helper_spec(
    project: &str,
    image: &str,
    mounts: &[(&str, &str, bool)],
    purpose: &str,
    command: Vec<String>,
) -> ContainerSpec {
    ContainerSpec {
        name: format!(
            "{project}-sanctuary-{purpose}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ),
        image: image.to_string(),
        command: Some(command),
        mounts: mounts
            .iter()
            .map(|(volume, target, read_only)| MountSpec {
                source: MountSource::Volume(volume.to_string()),
                target: target.to_string(),
                read_only: *read_only,
            })
            .collect(),
        labels: names::owned(names::labels(project, "sanctuary-helper", None)),
        ..Default::default()
    }
}

fn docker_err(backup: &str, step: String) -> impl FnOnce(BackendError) -> RunError + '_ {
    move |source| RunError::Docker {
        backup: backup.to_string(),
        step,
        source: Box::new(source),
    }
}

/// The helper container a volume is being read through; [`ReadHelper::close`] removes it
/// once the stream has been read.
pub struct ReadHelper {
    container: String,
}

impl ReadHelper {
    /// Removes the helper container.
    pub async fn close(self, backend: &dyn Backend, backup: &str) -> Result<(), RunError> {
        backend
            .remove_container(&self.container, true)
            .await
            .map_err(docker_err(
                backup,
                format!("removing helper container {}", self.container),
            ))
    }
}

/// Starts reading `volume`: mounts it read-only in a helper container that never starts and
/// streams Docker's archive of it on the runtime, chunk by chunk, into a bounded channel.
/// The reader yields a tar stream whose entries start with `source/` (strip one component);
/// read it on a thread outside the runtime. Once `stop` is requested the stream from the
/// engine is dropped and the reader fails: it never ends early as if the volume were smaller.
pub async fn open_volume(
    backend: Arc<dyn Backend>,
    project: &str,
    backup: &str,
    volume: &str,
    stop: &Stop,
) -> Result<(ReadHelper, ChunkReader), RunError> {
    let image = ensure_helper_image(backend.as_ref(), project).await?;
    let spec = helper_spec(
        project,
        &image,
        &[(volume, MOUNT_POINT, true)],
        "read",
        vec!["/bin/busybox".into(), "true".into()],
    );
    backend.create_container(&spec).await.map_err(docker_err(
        backup,
        format!("creating a helper container for volume {volume}"),
    ))?;
    let (tx, reader) = chunks::reader();
    let container = spec.name.clone();
    let what = format!("reading volume {volume}");
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut stream = backend.copy_out_stream(&container, MOUNT_POINT);
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => match chunk {
                    Some(chunk) => chunk,
                    None => {
                        tx.finish().await;
                        break;
                    }
                },
                () = stop.requested_async() => {
                    let _ = tx.send(Err(stopped_io())).await;
                    break;
                }
            };
            let failed = chunk.is_err();
            let chunk = chunk.map_err(|e| io::Error::other(format!("{what}: {e}")));
            // A reader that is gone gave up; nothing is left to do.
            if !tx.send(chunk).await || failed {
                break;
            }
        }
    });
    Ok((
        ReadHelper {
            container: spec.name,
        },
        reader,
    ))
}

/// Sends a synchronous tar stream to the engine in chunks: a thread reads it and feeds a
/// bounded channel that the returned stream drains.
fn send_chunks(mut tar: impl Read + Send + 'static) -> TarChunks<'static, io::Error> {
    let (mut writer, stream) = crate::backend::chunks::channel();
    std::thread::spawn(move || match io::copy(&mut tar, &mut writer) {
        Ok(_) => {
            let _ = writer.finish();
        }
        Err(e) => writer.fail(e),
    });
    stream
}

/// The staging volume this process unpacks a restore of `volume` into before it is swapped
/// in: `<volume>.sanctuary-tmp-<pid>-staging`.
pub fn staging_volume(volume: &str) -> String {
    format!("{volume}{}staging", crate::debris::own_prefix())
}

/// Unpacks the tar stream `tar` (entry paths relative to the volume root) into a fresh
/// staging volume for `volume`, labelled with the project and this process
/// ([`names::owned`]). Returns the staging volume's name. The real volume is not touched.
/// When `stop` is requested first, the copy is cut and the staging volume removed.
pub async fn stage_volume(
    backend: &dyn Backend,
    project: &str,
    backup: &str,
    volume: &str,
    tar: impl Read + Send + 'static,
    stop: &Stop,
) -> Result<String, RunError> {
    let staging = staging_volume(volume);
    // A staging volume left by an interrupted restore may hold anything: start empty.
    match backend.remove_volume(&staging).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(docker_err(backup, format!("removing old {staging}"))(e)),
    }
    let labels = names::owned(names::labels(project, "sanctuary-staging", None));
    backend
        .ensure_volume(&staging, &labels)
        .await
        .map_err(docker_err(
            backup,
            format!("creating staging volume {staging}"),
        ))?;
    let image = ensure_helper_image(backend, project).await?;
    let spec = helper_spec(
        project,
        &image,
        &[(&staging, MOUNT_POINT, false)],
        "stage",
        vec!["/bin/busybox".into(), "true".into()],
    );
    backend.create_container(&spec).await.map_err(docker_err(
        backup,
        format!("creating a helper container for volume {staging}"),
    ))?;
    let tar = StopReader::new(tar, stop);
    let copied = tokio::select! {
        copied = backend.copy_in_stream(&spec.name, MOUNT_POINT, send_chunks(tar)) => {
            copied.map_err(docker_err(backup, format!("unpacking into {staging}")))
        }
        () = stop.requested_async() => Err(RunError::Interrupted {
            backup: backup.to_string(),
        }),
    };
    let removed = backend.remove_container(&spec.name, true).await;
    if let Err(e) = copied {
        // A partial tree is of no use; the snapshot is still in its copies.
        let _ = backend.remove_volume(&staging).await;
        return Err(e);
    }
    removed.map_err(docker_err(
        backup,
        format!("removing helper container {}", spec.name),
    ))?;
    Ok(staging)
}

/// Replaces the contents of `volume` with those of `staging` (ownership, modes, times and
/// symlinks kept), then removes `staging`. Run with the volume's consumers stopped.
pub async fn swap_in(
    backend: &dyn Backend,
    project: &str,
    backup: &str,
    staging: &str,
    volume: &str,
) -> Result<(), RunError> {
    let image = ensure_helper_image(backend, project).await?;
    // The globs name every entry, dot files included; an unmatched glob stays literal and
    // `rm -f` ignores it. `cp -a` keeps owners, modes, times and links as they are.
    let script = format!(
        "/bin/busybox rm -rf {m}/* {m}/.[!.]* {m}/..?* && /bin/busybox cp -a {s}/. {m}/",
        m = MOUNT_POINT,
        s = STAGING_POINT,
    );
    let spec = helper_spec(
        project,
        &image,
        &[(staging, STAGING_POINT, true), (volume, MOUNT_POINT, false)],
        "swap",
        vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script],
    );
    backend.create_container(&spec).await.map_err(docker_err(
        backup,
        format!("creating a helper container for volume {volume}"),
    ))?;
    let result = run_to_end(
        backend,
        &spec.name,
        backup,
        format!("swapping {staging} into {volume}"),
    )
    .await;
    let removed = backend.remove_container(&spec.name, true).await;
    result?;
    removed.map_err(docker_err(
        backup,
        format!("removing helper container {}", spec.name),
    ))?;
    backend.remove_volume(staging).await.map_err(docker_err(
        backup,
        format!("removing staging volume {staging}"),
    ))
}

async fn run_to_end(
    backend: &dyn Backend,
    container: &str,
    backup: &str,
    step: String,
) -> Result<(), RunError> {
    backend
        .start_container(container)
        .await
        .map_err(docker_err(backup, step.clone()))?;
    let code = backend
        .wait_exit(container, Instant::now() + SWAP_TIMEOUT)
        .await
        .map_err(docker_err(backup, step.clone()))?;
    if code != 0 {
        let output = helper_output(backend, container).await;
        return Err(RunError::HelperFailed {
            backup: backup.to_string(),
            step,
            code,
            output,
        });
    }
    Ok(())
}

/// The last lines a failed helper printed, for the error message.
async fn helper_output(backend: &dyn Backend, container: &str) -> String {
    let mut lines = backend.logs(container, false, Some(20));
    let mut out = Vec::new();
    while let Some(Ok(line)) = lines.next().await {
        out.push(line.line);
    }
    out.join("\n")
}

/// What [`sweep_helpers`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweptHelpers {
    /// Helper containers.
    pub containers: usize,
    /// Staging volumes.
    pub volumes: usize,
}

/// Removes the helper containers and staging volumes of `project` whose maker, a process of
/// this machine, is gone ([`names::owner_gone`]); containers first, as they may hold the
/// volumes. Those of live processes, and objects without an owner label, are left alone.
pub async fn sweep_helpers(
    backend: &dyn Backend,
    project: &str,
) -> Result<SweptHelpers, BackendError> {
    let filter = crate::backend::LabelFilter::new()
        .with(names::LABEL_PROJECT, project)
        .with_key(names::LABEL_PID);
    let mut swept = SweptHelpers::default();
    for c in backend.list_containers(&filter, true).await? {
        if names::owner_gone(&c.labels) {
            match backend.remove_container(&c.name, true).await {
                Ok(()) => swept.containers += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    for v in backend.list_volumes(&filter).await? {
        if names::owner_gone(&v.labels) {
            match backend.remove_volume(&v.name).await {
                Ok(()) => swept.volumes += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(swept)
}
