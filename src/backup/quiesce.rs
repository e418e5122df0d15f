//! Keeping writers away from a backup's source while it is read: stop or pause the named
//! services, or run a `pre` command in one of them (and `post` afterwards).
//!
//! Only services that were running are touched, and exactly those are brought back, so a
//! service that was down stays down. [`quiesce`] returns what it did even when it fails
//! halfway, so the caller can always [`resume`]; the caller resumes whether or not the
//! backup itself worked.
//!
//! A process killed while services are quiesced cannot resume them, so each step is written
//! to a [`Journal`] in the state directory before it is taken. The next backup or restore of
//! the same node finds the journal and brings those services back at its end, together with
//! its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::names;
use crate::backend::{Backend, ContainerState};
use crate::manifest::{Manifest, Quiesce, QuiesceMode};

use super::run_error::RunError;

/// What quiescing did, to be undone by [`resume`].
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quiesced {
    /// Containers stopped, to start again.
    pub stopped: Vec<String>,
    /// Containers paused, to unpause.
    pub paused: Vec<String>,
    /// A `post` command to run in a container.
    pub post: Option<(String, String)>,
}

impl Quiesced {
    /// Whether there is nothing to undo.
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty() && self.paused.is_empty() && self.post.is_none()
    }
}

impl std::fmt::Display for Quiesced {
    /// `stopped a, b; paused c; post command in d`, the parts that are not empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.stopped.is_empty() {
            parts.push(format!("stopped {}", self.stopped.join(", ")));
        }
        if !self.paused.is_empty() {
            parts.push(format!("paused {}", self.paused.join(", ")));
        }
        if let Some((container, _)) = &self.post {
            parts.push(format!("post command in {container}"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// The record of what a backup or restore of one node has quiesced and not yet resumed.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal of node `backup` under `state_dir`.
    pub fn new(state_dir: &Path, backup: &str) -> Self {
        Journal {
            path: state_dir
                .join("backup")
                .join(format!("{backup}.quiesced.json")),
        }
    }

    /// What an interrupted run left quiesced; nothing when there is no journal. An
    /// unreadable journal is reported and treated as empty: it can only name services to
    /// start, and `apply` starts stopped services anyway.
    pub fn load(&self) -> Quiesced {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", self.path.display());
                Quiesced::default()
            }),
            Err(_) => Quiesced::default(),
        }
    }

    fn save(&self, backup: &str, done: &Quiesced) -> Result<(), RunError> {
        let bytes = serde_json::to_vec_pretty(done).unwrap_or_default();
        crate::fsutil::write_atomic(&self.path, &bytes).map_err(|source| RunError::Journal {
            backup: backup.to_string(),
            path: self.path.clone(),
            source,
        })
    }

    /// Forgets the journal once everything in it was resumed.
    pub fn clear(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Quiesces the services of `q`, adding to `done` (which may hold what an interrupted run
/// left). Each step is journalled before it is taken. `done` is returned with any error, so
/// what was already done can be undone.
pub async fn quiesce(
    backend: &dyn Backend,
    m: &Manifest,
    backup: &str,
    q: &Quiesce,
    journal: &Journal,
    mut done: Quiesced,
) -> (Quiesced, Option<RunError>) {
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
                let mut next = done.clone();
                next.stopped.push(container.clone());
                if let Err(e) = journal.save(backup, &next) {
                    return (done, Some(e));
                }
                if let Err(e) = backend.stop_container(&container, timeout).await {
                    return (done, Some(docker(format!("stopping {container}"))(e)));
                }
                done = next;
            }
            QuiesceMode::Pause if running => {
                let mut next = done.clone();
                next.paused.push(container.clone());
                if let Err(e) = journal.save(backup, &next) {
                    return (done, Some(e));
                }
                if let Err(e) = backend.pause_container(&container).await {
                    return (done, Some(docker(format!("pausing {container}"))(e)));
                }
                done = next;
            }
            QuiesceMode::Exec => {
                // `post` undoes `pre`, so it is journalled before `pre` runs; a failed `pre`
                // has nothing to undo.
                let mut next = done.clone();
                if let Some(post) = &q.post {
                    next.post = Some((container.clone(), post.clone()));
                }
                if let Err(e) = journal.save(backup, &next) {
                    return (done, Some(e));
                }
                if let Some(pre) = &q.pre {
                    if let Err(e) = run_hook(backend, backup, &container, pre, "pre").await {
                        return (done, Some(e));
                    }
                }
                done = next;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_an_unreadable_one_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path(), "db");
        assert!(journal.load().is_empty(), "no journal, nothing left");
        let left = Quiesced {
            stopped: vec!["p-db".into()],
            paused: vec![],
            post: None,
        };
        journal.save("db", &left).unwrap();
        assert_eq!(journal.load(), left);
        std::fs::write(dir.path().join("backup/db.quiesced.json"), b"{ half").unwrap();
        assert!(journal.load().is_empty());
        journal.clear();
        assert!(!dir.path().join("backup/db.quiesced.json").exists());
        journal.clear();
    }
}
