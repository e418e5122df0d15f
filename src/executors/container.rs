//! Running a script inside an image: a one-off container with the project directory mounted
//! at the same path, the script run by `/bin/sh -c`, its output streamed, and the container
//! removed afterwards whatever happened. Used by tasks (and tests) that declare `image`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend::names;
use crate::backend::{self, Backend, ContainerSpec};
use crate::manifest::{ImageRef, Manifest};
use crate::plan::desired;

/// How a script in a container ended.
#[derive(Debug)]
pub struct ContainerRun {
    pub exit_code: i64,
    pub log: String,
}

/// Makes sure the image a task or test runs in exists locally — building a declared one
/// (when no earlier step of the walk did), pulling a reference — and returns the tag to run.
pub async fn ensure_image(
    walk: &crate::engine::Walk<'_>,
    backend: &dyn Backend,
    image: &ImageRef,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, String> {
    let (tag, build) = match image {
        ImageRef::External(reference) => (reference.clone(), None),
        ImageRef::Declared(name) => match walk.tag_of(name) {
            Some((tag, _)) => (tag, None),
            None => {
                let d = desired::image(&walk.session.manifest, name, &mut walk.session.stat())
                    .map_err(|e| e.to_string())?;
                (d.tag, d.build)
            }
        },
    };
    if backend
        .inspect_image(&tag)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(tag);
    }
    match &build {
        Some(build) => {
            backend
                .build_image(build, on_line)
                .await
                .map_err(|e| e.to_string())?;
        }
        None => backend.pull_image(&tag).await.map_err(|e| e.to_string())?,
    }
    Ok(tag)
}

/// Runs `script` in `image` with the project directory mounted, `workdir` as the working
/// directory, until it exits, `timeout` passes, or `cancel` fires.
#[allow(clippy::too_many_arguments)]
pub async fn run_script(
    m: &Manifest,
    backend: &dyn Backend,
    image: &str,
    purpose: &str,
    script: &str,
    workdir: &Path,
    env: BTreeMap<String, String>,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> Result<ContainerRun, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let project = &m.project.name;
    let name = format!(
        "{}-run-{purpose}-{}-{}",
        project,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = m.dir.display().to_string();
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        command: Some(vec![script.to_string()]),
        env,
        mounts: vec![backend::MountSpec {
            source: backend::MountSource::Bind(m.dir.clone()),
            target: dir,
            read_only: false,
        }],
        working_dir: Some(workdir.display().to_string()),
        labels: names::labels(project, &format!("run.{purpose}"), None),
        ..ContainerSpec::default()
    };
    backend
        .create_container(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        backend.start_container(&name).await.map_err(|e| e.to_string())?;
        // Without a timeout the wait is bounded only by cancellation.
        let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(7 * 24 * 3600));
        let code = tokio::select! {
            r = backend.wait_exit(&name, deadline) => r.map_err(|e| match e {
                backend::BackendError::ExitTimeout { .. } => format!("timed out after {}", humantime::format_duration(timeout.unwrap_or_default())),
                other => other.to_string(),
            })?,
            _ = cancel.cancelled() => return Err("interrupted".to_string()),
        };
        let mut log = String::new();
        let mut lines = backend.logs(&name, false, None);
        while let Some(Ok(line)) = lines.next().await {
            log.push_str(&line.line);
            log.push('\n');
        }
        Ok(ContainerRun { exit_code: code, log })
    }
    .await;
    // The container is disposable; removing it must not hide the result.
    let _ = backend.remove_container(&name, true).await;
    result
}
