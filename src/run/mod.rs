//! Make-style tasks: [`TaskExecutor`] computes each task's fingerprint (its cache key), skips
//! or restores it from the cache when the fingerprint matches a previous success, and
//! otherwise runs its lines through `sh -c` on the host and stores its outputs.
//!
//! A task's fingerprint covers its command, env, working directory, declared outputs, the
//! content of its inputs, the fingerprints of the tasks it depends on, and keyed hashes of its
//! secrets — the same whether the task then runs, is cached, or is only explained by `why`.

pub mod container;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::backend::Backend;
use crate::cache::{Cache, Lookup, SaveRequest};
use crate::exec::process::{run_host, HostCommand};
use crate::exec::{Executor, NodeCtx, NodeLabel, Outcome};
use crate::fingerprint::{hash_inputs, Key, Salt, Spec, StatCache};
use crate::manifest::{Kind, Manifest, NodeId, Task};

impl NodeLabel for NodeId {
    fn label(&self) -> String {
        // Tasks are what users type; other kinds keep their kind for clarity.
        match self.kind {
            Kind::Task => self.name.clone(),
            _ => self.to_string(),
        }
    }
}

/// Runs task nodes with caching.
pub struct TaskExecutor {
    manifest: Arc<Manifest>,
    cache: Cache,
    statcache: Mutex<StatCache>,
    salt: Salt,
    force: bool,
    /// Extra arguments (`run TASK -- ARGS`), given only to these tasks.
    args: Vec<String>,
    arg_targets: HashSet<NodeId>,
    fingerprints: Mutex<HashMap<NodeId, String>>,
    /// For tasks that run inside an image; connected on first use.
    backend: tokio::sync::OnceCell<std::sync::Arc<dyn Backend>>,
}

/// `'it'\''s'`-style quoting so arguments reach the shell as single words.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl TaskExecutor {
    pub fn new(manifest: Arc<Manifest>, salt: Salt, force: bool) -> Self {
        let state_dir = manifest.project.state_dir.clone();
        TaskExecutor {
            cache: Cache::in_state_dir(&state_dir),
            statcache: Mutex::new(StatCache::in_state_dir(&state_dir)),
            manifest,
            salt,
            force,
            args: Vec::new(),
            arg_targets: HashSet::new(),
            fingerprints: Mutex::new(HashMap::new()),
            backend: tokio::sync::OnceCell::new(),
        }
    }

    /// Uses `backend` for tasks inside an image instead of connecting on first use.
    pub fn with_backend(self, backend: std::sync::Arc<dyn Backend>) -> Self {
        let _ = self.backend.set(backend);
        self
    }

    async fn backend(&self) -> Result<&std::sync::Arc<dyn Backend>, String> {
        self.backend
            .get_or_try_init(|| async {
                crate::backend::docker::DockerBackend::connect()
                    .await
                    .map(|d| std::sync::Arc::new(d) as std::sync::Arc<dyn Backend>)
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Passes `args` to the named tasks (appended to their last line, shell-quoted).
    pub fn with_args(mut self, targets: &[NodeId], args: Vec<String>) -> Self {
        self.arg_targets = targets.iter().cloned().collect();
        self.args = args;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The script a task runs: its lines in order, stopping at the first failure.
    pub fn script(&self, id: &NodeId, task: &Task) -> String {
        let mut lines = task.run.clone();
        if self.arg_targets.contains(id) && !self.args.is_empty() {
            if let Some(last) = lines.last_mut() {
                for a in &self.args {
                    last.push(' ');
                    last.push_str(&shell_quote(a));
                }
            }
        }
        format!("set -e\n{}", lines.join("\n"))
    }

    /// The key of `task`, given its dependencies' fingerprints computed earlier in the walk.
    pub fn key(&self, id: &NodeId) -> Result<Key, String> {
        let m = &self.manifest;
        let task = m
            .tasks
            .get(&id.name)
            .ok_or_else(|| format!("no task `{}`", id.name))?;
        let workdir = task
            .dir
            .strip_prefix(&m.dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| task.dir.display().to_string());
        let spec = Spec {
            command: vec![self.script(id, task)],
            env: task.env.clone(),
            workdir: Some(workdir),
            outputs: task.outputs.clone(),
            extra: serde_json::json!({ "image": task.image }),
        };
        let mut key = Key::new("task", &task.name, spec);
        if !task.inputs.is_empty() {
            let mut stat = self.statcache.lock().unwrap_or_else(|e| e.into_inner());
            key.inputs = hash_inputs(&m.dir, &task.inputs, &mut stat)
                .map_err(|e| format!("task `{}`: {e}", task.name))?;
        }
        let fps = self.fingerprints.lock().unwrap_or_else(|e| e.into_inner());
        for dep in &task.depends_on {
            if let Some(fp) = fps.get(&dep.node) {
                key.dependencies.insert(dep.node.to_string(), fp.clone());
            }
        }
        drop(fps);
        for se in &task.secret_env {
            let value = crate::secrets::resolve(m, &se.secret).map_err(|e| e.to_string())?;
            key.secrets
                .insert(se.secret.clone(), self.salt.keyed_hash(value.as_bytes()));
        }
        Ok(key)
    }

    /// Remembers a node's fingerprint for the keys of its dependents.
    pub fn note_fingerprint(&self, id: &NodeId, fp: String) {
        self.fingerprints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), fp);
    }

    /// Saves the stat cache so the next run does not re-read unchanged inputs.
    pub fn finish(&self) {
        let mut stat = self.statcache.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = stat.save() {
            tracing::warn!("cannot save the stat cache: {e}");
        }
    }

    async fn run_task(&self, id: &NodeId, ctx: &NodeCtx) -> Result<Outcome, String> {
        let m = &self.manifest;
        let task = &m.tasks[&id.name];
        if task.image.is_some() {
            return Err(format!(
                "task `{}` runs inside an image; `sanctuary run` runs host tasks only",
                task.name
            ));
        }
        let key = self.key(id)?;
        let fp = key.fingerprint();
        self.note_fingerprint(id, fp.clone());

        let mut miss = None;
        if !task.outputs.is_empty() {
            match self.cache.lookup(&fp).map_err(|e| e.to_string())? {
                Lookup::Hit(entry) if !self.force => {
                    let restored = self
                        .cache
                        .restore(&entry, &m.dir)
                        .map_err(|e| e.to_string())?;
                    // Rewriting (and fsyncing) an identical record would cost more than the
                    // whole no-op check.
                    let recorded =
                        self.cache.last_fingerprint("task", &task.name).as_ref() == Some(&fp);
                    if !recorded {
                        let _ = self.cache.record_success(&key);
                    }
                    let detail = match restored.len() {
                        0 => "outputs up to date".to_string(),
                        1 => format!("restored {}", restored[0]),
                        n => format!("restored {n} outputs"),
                    };
                    return Ok(Outcome::Cached(Some(detail)));
                }
                Lookup::Hit(_) => {}
                Lookup::Miss(m) => miss = Some(m),
                Lookup::Corrupt {
                    fingerprint,
                    reason,
                    miss: m,
                } => {
                    ctx.emit(&format!(
                        "cache entry {} corrupt ({reason}), discarded",
                        &fingerprint[..12.min(fingerprint.len())]
                    ));
                    miss = Some(m);
                }
            }
        } else if !self.force
            && self.cache.last_fingerprint("task", &task.name).as_ref() == Some(&fp)
        {
            return Ok(Outcome::UpToDate(None));
        }

        let mut env: Vec<(String, String)> = task
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for se in &task.secret_env {
            let value = crate::secrets::resolve(m, &se.secret).map_err(|e| e.to_string())?;
            env.push((se.var.clone(), value));
        }
        let started = Instant::now();
        let log = match &task.image {
            Some(image) => {
                let backend = self.backend().await?;
                let sink = |line: &str| ctx.emit(line);
                let tag = container::ensure_image(m, backend.as_ref(), image, &sink).await?;
                let env: BTreeMap<String, String> = env.into_iter().collect();
                let purpose = format!("task-{}", task.name);
                let script = self.script(id, task);
                let timeout = task.timeout.map(|t| t.0);
                let run = container::run_script(
                    m,
                    backend.as_ref(),
                    &tag,
                    &purpose,
                    &script,
                    &task.dir,
                    env,
                    timeout,
                    ctx.cancel(),
                )
                .await?;
                for line in run.log.lines() {
                    ctx.emit(line);
                }
                if run.exit_code != 0 {
                    return Err(format!("exit status {}", run.exit_code));
                }
                run.log
            }
            None => {
                let mut cmd = HostCommand::new(self.script(id, task), task.dir.clone());
                cmd.env = env;
                let run = run_host(&cmd, |_, line| ctx.emit(line), ctx.cancel());
                let finished = match task.timeout {
                    Some(t) => match tokio::time::timeout(t.0, run).await {
                        Ok(r) => r,
                        Err(_) => return Err(format!("timed out after {t}")),
                    },
                    None => run.await,
                }
                .map_err(|e| e.to_string())?;
                if !finished.exit.success() {
                    return Err(finished.exit.to_string());
                }
                finished.log
            }
        };
        if let Some(miss) = miss {
            self.cache
                .save(
                    miss,
                    SaveRequest {
                        key: &key,
                        root: &m.dir,
                        duration: started.elapsed(),
                        log: &log,
                    },
                )
                .map_err(|e| format!("{e}"))?;
        }
        self.cache.record_success(&key).map_err(|e| e.to_string())?;
        Ok(Outcome::ran())
    }
}

impl Executor<NodeId> for TaskExecutor {
    fn execute<'a>(&'a self, node: &'a NodeId, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
        async move {
            if node.kind != Kind::Task {
                return Outcome::Failed(format!("{node} is not a task"));
            }
            self.run_task(node, ctx)
                .await
                .unwrap_or_else(Outcome::Failed)
        }
        .boxed()
    }
}

impl TaskExecutor {
    /// Whether `id` would run now, with the reasons — for plans. Dependencies must have been
    /// checked first (in graph order), as for [`why`].
    pub fn check(&self, id: &NodeId) -> Result<Option<Vec<String>>, String> {
        let key = self.key(id)?;
        let fp = key.fingerprint();
        self.note_fingerprint(id, fp.clone());
        let task = &self.manifest.tasks[&id.name];
        match self
            .cache
            .last_success("task", &id.name)
            .map_err(|e| e.to_string())?
        {
            None => Ok(Some(vec!["never ran".to_string()])),
            Some(rec) if rec.fingerprint == fp => {
                let missing: Vec<String> = task
                    .outputs
                    .iter()
                    .filter(|o| {
                        !crate::fingerprint::inputs::is_glob(o)
                            && !self.manifest.dir.join(o).exists()
                    })
                    .map(|o| format!("output {o} missing (restored from the cache)"))
                    .collect();
                Ok((!missing.is_empty()).then_some(missing))
            }
            Some(rec) => Ok(Some(
                Key::diff(&rec.key, &key)
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            )),
        }
    }
}

/// Why a task would run now, or that it would not.
#[derive(Debug)]
pub enum Why {
    NeverRan,
    UpToDate { restore: Vec<String> },
    Changed(Vec<String>),
}

/// Explains `target`: computes the keys of its task dependencies in order, then compares its
/// key with the key of its last success.
pub fn why(exec: &TaskExecutor, order: &[NodeId], target: &NodeId) -> Result<Why, String> {
    let mut last_key = None;
    for id in order.iter().filter(|n| n.kind == Kind::Task) {
        let key = exec.key(id)?;
        exec.note_fingerprint(id, key.fingerprint());
        if id == target {
            last_key = Some(key);
        }
    }
    let key = last_key.ok_or_else(|| format!("`{}` is not a task", target.name))?;
    let fp = key.fingerprint();
    let previous = exec
        .cache
        .last_success("task", &target.name)
        .map_err(|e| e.to_string())?;
    match previous {
        None => Ok(Why::NeverRan),
        Some(rec) if rec.fingerprint == fp => {
            let task = &exec.manifest.tasks[&target.name];
            let missing: Vec<String> = task
                .outputs
                .iter()
                .filter(|o| {
                    !crate::fingerprint::inputs::is_glob(o) && !exec.manifest.dir.join(o).exists()
                })
                .cloned()
                .collect();
            Ok(Why::UpToDate { restore: missing })
        }
        Some(rec) => Ok(Why::Changed(
            Key::diff(&rec.key, &key)
                .iter()
                .map(|c| c.to_string())
                .collect(),
        )),
    }
}
