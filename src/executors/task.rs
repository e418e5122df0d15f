//! Make-style tasks: each task's key covers its command, env, working directory, declared
//! outputs, the content of its inputs, the fingerprints of the tasks it depends on, and keyed
//! hashes of its secrets — the same whether the task then runs, is restored from the cache,
//! or is only explained by `why`. A task runs through `sh -c` on the host, or inside its
//! image with the project mounted; its outputs are stored in the cache by key.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cache::{Lookup, SaveRequest};
use crate::engine::{Session, Walk};
use crate::exec::process::{run_host, HostCommand};
use crate::exec::{Failure, FailureClass, NodeCtx, Outcome};
use crate::fingerprint::{hash_inputs, Key, Spec};
use crate::manifest::{Manifest, NodeId, Task};
use crate::plan::{decide, Action, Case, Prepared};

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

/// The script a task runs: its lines in order, stopping at the first failure; arguments
/// given after `--` are appended to the last line of the tasks they were given to.
pub fn script(session: &Session, id: &NodeId, task: &Task) -> String {
    let mut lines = task.run.clone();
    let args = &session.options.task_args;
    if !args.is_empty() && session.options.arg_targets.contains(id) {
        if let Some(last) = lines.last_mut() {
            for a in args {
                last.push(' ');
                last.push_str(&shell_quote(a));
            }
        }
    }
    format!("set -e\n{}", lines.join("\n"))
}

/// The key of task `id`, given the fingerprints of its dependencies computed earlier in the
/// same invocation.
pub fn key(session: &Session, id: &NodeId) -> Result<Key, String> {
    let m = &session.manifest;
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
        command: vec![script(session, id, task)],
        env: task.env.clone(),
        workdir: Some(workdir),
        outputs: task.outputs.clone(),
        extra: serde_json::json!({ "image": task.image }),
    };
    let mut key = Key::new("task", &task.name, spec);
    if !task.inputs.is_empty() {
        key.inputs = hash_inputs(&m.dir, &task.inputs, &mut session.stat(), &m.written_dirs())
            .map_err(|e| format!("task `{}`: {e}", task.name))?;
    }
    for dep in &task.depends_on {
        if let Some(fp) = session.fingerprint_of(&dep.node) {
            key.dependencies.insert(dep.node.to_string(), fp);
        }
    }
    for se in &task.secret_env {
        let value = crate::secrets::resolve(m, &se.secret).map_err(|e| e.to_string())?;
        key.secrets
            .insert(se.secret.clone(), session.salt.keyed_hash(value.as_bytes()));
    }
    super::container::key_secret_files(session, &mut key, &task.secret_files)?;
    Ok(key)
}

/// Declared outputs (not globs) that are not on disk.
pub fn missing_outputs(m: &Manifest, task: &Task) -> Vec<String> {
    task.outputs
        .iter()
        .filter(|o| !crate::fingerprint::inputs::is_glob(o) && !m.dir.join(o).exists())
        .cloned()
        .collect()
}

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let m = &session.manifest;
    let task = &m.tasks[&id.name];
    let planned = &walk.plan.steps[i];
    let fresh = walk.upstream_changed(i);
    // Nothing this walk did can have changed the task's inputs: the plan's answer stands.
    // A task with outputs still has them checked against the cache below, so an output
    // edited by hand comes back as the task made it.
    let mut up_to_date = !fresh && planned.action == Action::UpToDate;
    if up_to_date && task.outputs.is_empty() {
        return Ok(Outcome::UpToDate(None));
    }
    let key = match walk.prepared(i) {
        Prepared::Key(k) if !fresh => (**k).clone(),
        _ => key(session, id).map_err(Failure::work)?,
    };
    let fp = key.fingerprint();
    session.note_fingerprint(id, fp.clone());
    if fresh {
        let decision = decide(Case::Task {
            key: &key,
            fingerprint: &fp,
            last: session.last(id),
            missing_outputs: missing_outputs(m, task),
            force: session.options.force,
        });
        up_to_date = decision.action == Action::UpToDate;
        if up_to_date && task.outputs.is_empty() {
            return Ok(Outcome::UpToDate(None));
        }
    }

    let mut miss = None;
    if !task.outputs.is_empty() {
        match session
            .cache
            .lookup(&fp)
            .map_err(|e| Failure::work(e.to_string()))?
        {
            Lookup::Hit(entry) if !session.options.force => {
                let restored = session
                    .cache
                    .restore(&entry, &m.dir)
                    .map_err(|e| Failure::work(e.to_string()))?;
                // Rewriting an identical record would cost more than the whole no-op check.
                if session.cache.last_fingerprint("task", &task.name).as_ref() != Some(&fp) {
                    let _ = session.cache.record_success(&key);
                }
                let detail = match restored.len() {
                    0 => "outputs up to date".to_string(),
                    1 => format!("restored {}", restored[0]),
                    n => format!("restored {n} outputs"),
                };
                return Ok(Outcome::Cached(Some(detail)));
            }
            Lookup::Hit(_) => {}
            // The outputs are there and nothing changed; only the cache lost its copy.
            Lookup::Miss(_) if up_to_date => return Ok(Outcome::UpToDate(None)),
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
    }

    let mut env: Vec<(String, String)> = task
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for se in &task.secret_env {
        let value =
            crate::secrets::resolve(m, &se.secret).map_err(|e| Failure::work(e.to_string()))?;
        env.push((se.var.clone(), value));
    }
    let started = Instant::now();
    let log = match &task.image {
        Some(image) => {
            let backend = session.backend().await.map_err(super::engine_failure)?;
            let sink = |line: &str| ctx.emit(line);
            let tag = super::container::ensure_image(walk, backend.as_ref(), image, &sink)
                .await
                .map_err(Failure::infrastructure)?;
            let env: BTreeMap<String, String> = env.into_iter().collect();
            let purpose = format!("task-{}", task.name);
            let script = script(session, id, task);
            let run = super::container::run_script(
                m,
                backend.as_ref(),
                super::container::Script {
                    image: &tag,
                    purpose: &purpose,
                    script: &script,
                    workdir: &task.dir,
                    env,
                    secret_files: &task.secret_files,
                    timeout: task.timeout.map(|t| t.0),
                },
                ctx.cancel(),
            )
            .await
            .map_err(Failure::infrastructure)?;
            for line in run.log.lines() {
                ctx.emit(line);
            }
            if run.exit_code != 0 {
                return Err(Failure::work(format!("exit status {}", run.exit_code)));
            }
            run.log
        }
        None => {
            let mut cmd = HostCommand::new(script(session, id, task), task.dir.clone());
            cmd.env = env;
            let run = run_host(&cmd, |_, line| ctx.emit(line), ctx.cancel());
            let finished = match task.timeout {
                Some(t) => match tokio::time::timeout(t.0, run).await {
                    Ok(r) => r,
                    Err(_) => return Err(Failure::work(format!("timed out after {t}"))),
                },
                None => run.await,
            }
            .map_err(|e| Failure::from_error(FailureClass::Work, &e))?;
            if let Outcome::Failed(f) = finished.outcome() {
                return Err(f);
            }
            finished.log
        }
    };
    // The log is kept in the cache entry: never with a secret in it.
    let log = crate::secrets::mask(&log).into_owned();
    if let Some(miss) = miss {
        session
            .cache
            .save(
                miss,
                SaveRequest {
                    key: &key,
                    root: &m.dir,
                    duration: started.elapsed(),
                    log: &log,
                },
            )
            .map_err(|e| Failure::work(e.to_string()))?;
    }
    session
        .cache
        .record_success(&key)
        .map_err(|e| Failure::work(e.to_string()))?;
    Ok(Outcome::ran())
}
