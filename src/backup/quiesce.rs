//! Keeping writers away from a backup's source while it is read: stop or pause the named
//! services, or run a `pre` command in one of them (and `post` afterwards).
//!
//! Only services that were running are touched, and exactly those are brought back, so a
//! service that was down stays down. [`quiesce`] returns what it did even when it fails
//! halfway, so the caller can always [`resume`]; the caller resumes whether or not the
//! backup itself worked.

use std::collections::BTreeMap;

use crate::backend::{Backend, ContainerState};
use crate::manifest::{Manifest, Quiesce, QuiesceMode};
use crate::plan::names;

use super::run_error::RunError;

/// What quiescing did, to be undone by [`resume`].
#[derive(Debug, Default)]
pub struct Quiesced {
    /// Containers stopped, to start again.
    pub stopped: Vec<String>,
    /// Containers paused, to unpause.
    pub paused: Vec<String>,
    /// A `post` command to run in a container.
    pub post: Option<(String, String)>,
}

/// Quiesces the services of `q`. The [`Quiesced`] is returned with any error, so what was
/// already done can be undone.
pub async fn quiesce(
    backend: &dyn Backend,
    m: &Manifest,
    backup: &str,
    q: &Quiesce,
) -> (Quiesced, Option<RunError>) {
    let mut done = Quiesced::default();
    let project = &m.project.name;
    let docker = |step: String| {
        move |source| RunError::Docker {
            backup: backup.to_string(),
            step,
            source: Box::new(source),
        }
    };
    for svc in &q.services {
        let container = names::container(project, svc);
        let running = match backend.inspect_container(&container).await {
            Ok(info) => info.is_some_and(|i| i.state == ContainerState::Running),
            Err(e) => return (done, Some(docker(format!("inspecting {container}"))(e))),
        };
        match q.mode {
            QuiesceMode::Stop if running => {
                let timeout = m.services.get(svc).map(|s| s.stop_timeout.0);
                let timeout = timeout.unwrap_or(std::time::Duration::from_secs(10));
                if let Err(e) = backend.stop_container(&container, timeout).await {
                    return (done, Some(docker(format!("stopping {container}"))(e)));
                }
                done.stopped.push(container);
            }
            QuiesceMode::Pause if running => {
                if let Err(e) = backend.pause_container(&container).await {
                    return (done, Some(docker(format!("pausing {container}"))(e)));
                }
                done.paused.push(container);
            }
            QuiesceMode::Exec => {
                if let Some(pre) = &q.pre {
                    if let Err(e) = run_hook(backend, backup, &container, pre, "pre").await {
                        return (done, Some(e));
                    }
                }
                if let Some(post) = &q.post {
                    done.post = Some((container, post.clone()));
                }
            }
            _ => {}
        }
    }
    (done, None)
}

/// Undoes [`quiesce`]: starts, unpauses, or runs `post`. Returns what could not be undone;
/// every step is tried even when an earlier one fails.
pub async fn resume(backend: &dyn Backend, backup: &str, done: Quiesced) -> Vec<String> {
    let mut failures = Vec::new();
    for c in &done.stopped {
        if let Err(e) = backend.start_container(c).await {
            failures.push(format!("starting {c}: {e}"));
        }
    }
    for c in &done.paused {
        if let Err(e) = backend.unpause_container(c).await {
            failures.push(format!("unpausing {c}: {e}"));
        }
    }
    if let Some((c, post)) = &done.post {
        if let Err(e) = run_hook(backend, backup, c, post, "post").await {
            failures.push(e.to_string());
        }
    }
    failures
}

async fn run_hook(
    backend: &dyn Backend,
    backup: &str,
    container: &str,
    command: &str,
    which: &str,
) -> Result<(), RunError> {
    let step = format!("{which} command in {container}");
    let cmd = vec!["sh".to_string(), "-c".to_string(), command.to_string()];
    let result = backend
        .exec(container, &cmd, &BTreeMap::new())
        .await
        .map_err(|source| RunError::Docker {
            backup: backup.to_string(),
            step: step.clone(),
            source: Box::new(source),
        })?;
    if result.exit_code != 0 {
        return Err(RunError::HelperFailed {
            backup: backup.to_string(),
            step,
            code: result.exit_code,
            output: result.output.trim().to_string(),
        });
    }
    Ok(())
}
