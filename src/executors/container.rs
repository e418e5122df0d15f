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
use crate::engine::Session;
use crate::fingerprint::Key;
use crate::manifest::{ImageRef, Manifest, SecretFile};
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

/// A script to run in a one-off container.
pub struct Script<'a> {
    pub image: &'a str,
    /// What the container is for (`task-build`, `test-smoke`): part of its name and label.
    pub purpose: &'a str,
    pub script: &'a str,
    pub workdir: &'a Path,
    pub env: BTreeMap<String, String>,
    pub secret_files: &'a [SecretFile],
    pub timeout: Option<Duration>,
}

/// Adds a task's or test's secret files to its key: each value by keyed hash, so a changed
/// secret runs the work again, and where and how it is mounted in the spec.
pub fn key_secret_files(
    session: &Session,
    key: &mut Key,
    files: &[SecretFile],
) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    for sf in files {
        let value =
            crate::secrets::resolve(&session.manifest, &sf.secret).map_err(|e| e.to_string())?;
        key.secrets.insert(
            format!("file:{}", sf.path),
            format!(
                "{}:{}",
                sf.secret,
                session.salt.keyed_hash(value.as_bytes())
            ),
        );
    }
    key.spec.extra["secret_files"] = serde_json::json!(files
        .iter()
        .map(|sf| serde_json::json!({ "path": sf.path, "mode": sf.mode, "owner": sf.owner }))
        .collect::<Vec<_>>());
    Ok(())
}

/// Runs `run.script` in `run.image` with the project directory mounted, `run.workdir` as the
/// working directory and the secret files mounted read-only, until it exits, the timeout
/// passes, or `cancel` fires.
///
/// The secret files live in a directory of their own under the state directory, named for
/// this process ([`crate::debris`]) and removed with the container; the container carries
/// this process as its owner ([`names::owned`]). What a killed run leaves of either is
/// removed by the next run in an image of the project ([`sweep_dead_runs`]).
pub async fn run_script(
    m: &Manifest,
    backend: &dyn Backend,
    run: Script<'_>,
    cancel: &CancellationToken,
) -> Result<ContainerRun, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    sweep_dead_runs(m, backend).await;
    let project = &m.project.name;
    let purpose = run.purpose;
    let name = format!(
        "{}-run-{purpose}-{}-{}",
        project,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut mounts = vec![backend::MountSpec {
        source: backend::MountSource::Bind(m.dir.clone()),
        target: m.dir.display().to_string(),
        read_only: false,
    }];
    let secrets = match run.secret_files {
        [] => None,
        files => {
            let dir = write_secrets(m, files).map_err(|e| {
                format!(
                    "writing the secret files of {purpose} under {}: {e}",
                    secrets_root(m).display()
                )
            })?;
            for (i, sf) in files.iter().enumerate() {
                mounts.push(backend::MountSpec {
                    source: backend::MountSource::Bind(secret_path(dir.path(), i, sf)),
                    target: sf.path.clone(),
                    read_only: true,
                });
            }
            Some(dir)
        }
    };
    let spec = ContainerSpec {
        name: name.clone(),
        image: run.image.to_string(),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        command: Some(vec![run.script.to_string()]),
        env: run.env,
        mounts,
        working_dir: Some(run.workdir.display().to_string()),
        labels: names::owned(names::labels(
            project,
            &format!("{RUN_NODE}{purpose}"),
            None,
        )),
        ..ContainerSpec::default()
    };
    let timeout = run.timeout;
    let result = async {
        backend
            .create_container(&spec)
            .await
            .map_err(|e| e.to_string())?;
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
    drop(secrets);
    result
}

/// The node label of one-off containers: `run.<purpose>`.
const RUN_NODE: &str = "run.";

/// Where the secret files of one-off containers are written.
fn secrets_root(m: &Manifest) -> std::path::PathBuf {
    m.project.state_dir.join("secrets")
}

fn secret_path(dir: &Path, i: usize, sf: &SecretFile) -> std::path::PathBuf {
    dir.join(format!("{i}-{}", sf.secret))
}

/// Writes `files` into a new private directory (0700) named for this process.
fn write_secrets(m: &Manifest, files: &[SecretFile]) -> std::io::Result<tempfile::TempDir> {
    let root = secrets_root(m);
    std::fs::create_dir_all(&root)?;
    let dir = crate::fsutil::new_temp_dir_in(&root)?;
    let mut on_host = Vec::with_capacity(files.len());
    for (i, sf) in files.iter().enumerate() {
        let value = crate::secrets::resolve(m, &sf.secret)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        on_host.push(desired::SecretFileOnHost {
            host: secret_path(dir.path(), i, sf),
            value,
            mode: sf.mode,
            owner: sf.owner,
        });
    }
    desired::write_secret_files(dir.path(), &on_host)?;
    Ok(dir)
}

/// Removes, once per process, the one-off containers and secret directories of `m`'s
/// project whose maker — a process of this machine — is gone. Failures only leave the
/// debris for a later run.
async fn sweep_dead_runs(m: &Manifest, backend: &dyn Backend) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let _ = crate::debris::sweep(&secrets_root(m), true);
            let filter = backend::LabelFilter::new()
                .with(names::LABEL_PROJECT, &m.project.name)
                .with_key(names::LABEL_PID);
            let Ok(listed) = backend.list_containers(&filter, true).await else {
                return;
            };
            for c in listed {
                let is_run = names::node_of(&c.labels).is_some_and(|n| n.starts_with(RUN_NODE));
                if is_run && names::owner_gone(&c.labels) {
                    let _ = backend.remove_container(&c.name, true).await;
                }
            }
        })
        .await;
}
