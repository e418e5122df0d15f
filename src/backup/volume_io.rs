//! Reading and writing a Docker volume's files through a short-lived helper container.
//!
//! The helper image is `<project>-sanctuary-helper`: `FROM scratch` plus the host's static
//! `/bin/busybox`, built once and labelled with the project (there is no registry to pull
//! from, and a service's image may lack a shell). Reading needs no running process: Docker's
//! archive API copies out of a created-but-never-started container, so the volume is mounted
//! read-only and nothing in it can change because of the backup. Writing first empties the
//! volume with one `rm` run in the helper, then copies the verified tree in. Helper containers
//! are removed whether the step worked or not; one left by a killed run carries the project
//! label, so `destroy` finds it.

use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendError, ContainerSpec, MountSource, MountSpec};
use crate::plan::names;

use super::run_error::RunError;

/// Where the helper container sees the volume.
const MOUNT_POINT: &str = "/source";
/// How long emptying a volume may take.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(600);

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

/// A helper container's spec mounting `volume` (a Docker volume name) at [`MOUNT_POINT`].
fn helper_spec(
    project: &str,
    image: &str,
    volume: &str,
    purpose: &str,
    read_only: bool,
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
        mounts: vec![MountSpec {
            source: MountSource::Volume(volume.to_string()),
            target: MOUNT_POINT.to_string(),
            read_only,
        }],
        labels: names::labels(project, "sanctuary-helper", None),
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

/// The volume's contents as a tar stream whose entries start with `source/` (strip one
/// component). The volume is mounted read-only in a container that never starts.
pub async fn read_volume(
    backend: &dyn Backend,
    project: &str,
    backup: &str,
    volume: &str,
) -> Result<Vec<u8>, RunError> {
    let image = ensure_helper_image(backend, project).await?;
    let spec = helper_spec(
        project,
        &image,
        volume,
        "read",
        true,
        vec!["/bin/busybox".into(), "true".into()],
    );
    backend.create_container(&spec).await.map_err(docker_err(
        backup,
        format!("creating a helper container for volume {volume}"),
    ))?;
    let tar = backend
        .copy_out(&spec.name, MOUNT_POINT)
        .await
        .map_err(docker_err(backup, format!("reading volume {volume}")));
    let removed = backend.remove_container(&spec.name, true).await;
    let tar = tar?;
    removed.map_err(docker_err(
        backup,
        format!("removing helper container {}", spec.name),
    ))?;
    Ok(tar)
}

/// Replaces the volume's contents with the tar stream `tar` (entry paths relative to the
/// volume root): empties the volume, then unpacks into it. Owners and modes come from the tar.
pub async fn write_volume(
    backend: &dyn Backend,
    project: &str,
    backup: &str,
    volume: &str,
    tar: Vec<u8>,
) -> Result<(), RunError> {
    let image = ensure_helper_image(backend, project).await?;
    // The globs name every entry, dot files included; an unmatched glob stays literal and
    // `rm -f` ignores it.
    let script = format!(
        "/bin/busybox rm -rf {m}/* {m}/.[!.]* {m}/..?*",
        m = MOUNT_POINT
    );
    let spec = helper_spec(
        project,
        &image,
        volume,
        "write",
        false,
        vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script],
    );
    backend.create_container(&spec).await.map_err(docker_err(
        backup,
        format!("creating a helper container for volume {volume}"),
    ))?;
    let result = empty_and_fill(backend, &spec.name, backup, volume, tar).await;
    let removed = backend.remove_container(&spec.name, true).await;
    result?;
    removed.map_err(docker_err(
        backup,
        format!("removing helper container {}", spec.name),
    ))
}

async fn empty_and_fill(
    backend: &dyn Backend,
    container: &str,
    backup: &str,
    volume: &str,
    tar: Vec<u8>,
) -> Result<(), RunError> {
    backend
        .start_container(container)
        .await
        .map_err(docker_err(backup, format!("emptying volume {volume}")))?;
    let code = backend
        .wait_exit(container, Instant::now() + EMPTY_TIMEOUT)
        .await
        .map_err(docker_err(backup, format!("emptying volume {volume}")))?;
    if code != 0 {
        return Err(RunError::HelperFailed {
            backup: backup.to_string(),
            step: format!("emptying volume {volume}"),
            code,
            output: String::new(),
        });
    }
    backend
        .copy_in(container, MOUNT_POINT, tar)
        .await
        .map_err(docker_err(backup, format!("writing into volume {volume}")))
}
