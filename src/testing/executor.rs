//! [`TestExecutor`] runs test nodes for the scheduler: it computes each test's key, answers
//! `cached` when a passing run had the same key, and otherwise runs the check under the
//! test's timeout, keeping the output so failures can be shown and written to JUnit.
//!
//! A test's key covers its spec (check, env, timeout), its input files, and the fingerprints
//! of what it needs: each needed service's `sanctuary.fingerprint` container label (or
//! "absent"), the tag of a declared image it runs in, the last success of tasks and the keys
//! of tests it depends on. So a change to a needed service — its env, its image — re-runs
//! the test. Only passing runs are recorded; a failure never makes a later run `cached`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::probe::{http_probe, tcp_probe};
use crate::backend::names;
use crate::backend::Backend;
use crate::cache::Cache;
use crate::exec::process::{run_host, HostCommand};
use crate::exec::{Executor, NodeCtx, Outcome};
use crate::fingerprint::{hash_inputs, Key, Spec, StatCache};
use crate::manifest::{ImageRef, Kind, Manifest, NodeId, Test, TestCheck};
use crate::plan::desired;

/// What a finished test left for the report: its output (empty when cached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOutput {
    pub output: String,
}

/// Runs test nodes, with caching by key.
pub struct TestExecutor {
    manifest: Arc<Manifest>,
    /// Needed for image and exec tests and for service fingerprints; host-only runs have none.
    backend: Option<Arc<dyn Backend>>,
    cache: Cache,
    statcache: Mutex<StatCache>,
    no_cache: bool,
    fingerprints: Mutex<HashMap<NodeId, String>>,
    outputs: Mutex<BTreeMap<String, TestOutput>>,
}

/// How a check ended, before caching decides anything.
struct CheckRun {
    failure: Option<String>,
    output: String,
}

impl CheckRun {
    fn failed(reason: impl Into<String>, output: String) -> Self {
        CheckRun {
            failure: Some(reason.into()),
            output,
        }
    }
}

/// The services a test needs running: `needs`, an `exec` target and services in
/// `depends-on`.
pub fn needed_services(t: &Test) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = t.needs.iter().cloned().collect();
    if let TestCheck::Exec { service, .. } = &t.check {
        s.insert(service.clone());
    }
    s.extend(
        t.depends_on
            .iter()
            .filter(|d| d.node.kind == Kind::Service)
            .map(|d| d.node.name.clone()),
    );
    s
}

/// Whether running `t` needs the container engine.
pub fn needs_docker(t: &Test) -> bool {
    !needed_services(t).is_empty()
        || matches!(t.check, TestCheck::Command { image: Some(_), .. })
        || t.depends_on.iter().any(|d| {
            matches!(
                d.node.kind,
                Kind::Image | Kind::Volume | Kind::Network | Kind::Service
            )
        })
}

fn script(lines: &[String]) -> String {
    format!("set -e\n{}", lines.join("\n"))
}

impl TestExecutor {
    pub fn new(manifest: Arc<Manifest>, backend: Option<Arc<dyn Backend>>, no_cache: bool) -> Self {
        let state_dir = manifest.project.state_dir.clone();
        TestExecutor {
            cache: Cache::in_state_dir(&state_dir),
            statcache: Mutex::new(StatCache::in_state_dir(&state_dir)),
            manifest,
            backend,
            no_cache,
            fingerprints: Mutex::new(HashMap::new()),
            outputs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The output each finished test left, by test name.
    pub fn outputs(&self) -> BTreeMap<String, TestOutput> {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Saves the stat cache so the next run does not re-read unchanged inputs.
    pub fn finish(&self) {
        let mut stat = self.statcache.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = stat.save() {
            tracing::warn!("cannot save the stat cache: {e}");
        }
    }

    fn backend(&self) -> Result<&Arc<dyn Backend>, String> {
        self.backend
            .as_ref()
            .ok_or_else(|| "this test needs Docker, and there is no connection".to_string())
    }

    fn image_tag(&self, image: &ImageRef) -> Result<String, String> {
        match image {
            ImageRef::Declared(name) => desired::image(&self.manifest, name)
                .map(|d| d.tag)
                .map_err(|e| e.to_string()),
            ImageRef::External(reference) => Ok(reference.clone()),
        }
    }

    /// The key of test `t`; tests it depends on must have run first in this walk.
    pub async fn key(&self, t: &Test) -> Result<Key, String> {
        let m = &self.manifest;
        let mut extra = serde_json::json!({
            "check": t.check,
            "timeout_ms": u64::try_from(t.timeout.0.as_millis()).unwrap_or(u64::MAX),
        });
        if let TestCheck::Command {
            image: Some(img), ..
        } = &t.check
        {
            extra["image_tag"] = serde_json::json!(self.image_tag(img)?);
        }
        let command = match &t.check {
            TestCheck::Command { run, .. } => vec![script(run)],
            TestCheck::Exec { command, .. } => command.clone(),
            _ => Vec::new(),
        };
        let spec = Spec {
            command,
            env: t.env.clone(),
            workdir: None,
            outputs: Vec::new(),
            extra,
        };
        let mut key = Key::new("test", &t.name, spec);
        if !t.inputs.is_empty() {
            let mut stat = self.statcache.lock().unwrap_or_else(|e| e.into_inner());
            key.inputs = hash_inputs(&m.dir, &t.inputs, &mut stat)
                .map_err(|e| format!("test `{}`: {e}", t.name))?;
        }
        for svc in needed_services(t) {
            let fp = match &self.backend {
                Some(b) => {
                    let name = names::container(&m.project.name, &svc);
                    let info = b
                        .inspect_container(&name)
                        .await
                        .map_err(|e| e.to_string())?;
                    info.and_then(|i| i.labels.get(names::LABEL_FINGERPRINT).cloned())
                        .unwrap_or_else(|| "absent".to_string())
                }
                None => "absent".to_string(),
            };
            key.dependencies.insert(format!("service.{svc}"), fp);
        }
        for dep in &t.depends_on {
            let fp = match dep.node.kind {
                Kind::Task => self
                    .cache
                    .last_success("task", &dep.node.name)
                    .map_err(|e| e.to_string())?
                    .map(|r| r.fingerprint),
                Kind::Test => self
                    .fingerprints
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&dep.node)
                    .cloned(),
                Kind::Image => Some(self.image_tag(&ImageRef::Declared(dep.node.name.clone()))?),
                _ => None,
            };
            if let Some(fp) = fp {
                key.dependencies.insert(dep.node.to_string(), fp);
            }
        }
        Ok(key)
    }

    async fn run_test(&self, id: &NodeId, ctx: &NodeCtx) -> Result<Outcome, String> {
        let t = self
            .manifest
            .tests
            .get(&id.name)
            .ok_or_else(|| format!("no test `{}`", id.name))?;
        let key = self.key(t).await?;
        let fp = key.fingerprint();
        self.fingerprints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), fp.clone());
        if !self.no_cache && self.cache.last_fingerprint("test", &t.name).as_ref() == Some(&fp) {
            self.keep_output(&t.name, String::new());
            return Ok(Outcome::Cached(Some(
                "passed before, nothing changed".into(),
            )));
        }
        // An image test bounds its own wait by the timeout and then removes its container;
        // the outer bound only catches a daemon that stops answering.
        let timeout = match t.check {
            TestCheck::Command { image: Some(_), .. } => t.timeout.0 + Duration::from_secs(30),
            _ => t.timeout.0,
        };
        let run = tokio::select! {
            r = tokio::time::timeout(timeout, self.check(t, ctx)) => match r {
                Ok(run) => run,
                Err(_) => CheckRun::failed(format!("timed out after {}", t.timeout), String::new()),
            },
            _ = ctx.cancel().cancelled() => CheckRun::failed("interrupted", String::new()),
        };
        self.keep_output(&t.name, run.output);
        match run.failure {
            Some(reason) => Ok(Outcome::Failed(reason)),
            None => {
                self.cache
                    .record_success(&key)
                    .map_err(|e| format!("passed, but cannot record the result: {e}"))?;
                Ok(Outcome::Ran(Some("passed".into())))
            }
        }
    }

    fn keep_output(&self, name: &str, output: String) {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), TestOutput { output });
    }

    async fn check(&self, t: &Test, ctx: &NodeCtx) -> CheckRun {
        match &t.check {
            TestCheck::Command { run, image: None } => self.host(t, run, ctx).await,
            TestCheck::Command {
                run,
                image: Some(img),
            } => self.in_image(t, run, img).await,
            TestCheck::Exec { service, command } => self.exec(t, service, command).await,
            TestCheck::Http(probe) => {
                let r = http_probe(probe).await;
                CheckRun {
                    failure: r.failure,
                    output: r.log,
                }
            }
            TestCheck::Tcp {
                address,
                retries,
                delay,
            } => {
                let r = tcp_probe(address, *retries, delay.0).await;
                CheckRun {
                    failure: r.failure,
                    output: r.log,
                }
            }
        }
    }

    async fn host(&self, t: &Test, run: &[String], ctx: &NodeCtx) -> CheckRun {
        let mut cmd = HostCommand::new(script(run), self.manifest.dir.clone());
        cmd.env = t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut output = String::new();
        match run_host(
            &cmd,
            |_, line| {
                output.push_str(line);
                output.push('\n');
            },
            ctx.cancel(),
        )
        .await
        {
            Ok(f) if f.exit.success() => CheckRun {
                failure: None,
                output,
            },
            Ok(f) => CheckRun::failed(f.exit.to_string(), output),
            Err(e) => CheckRun::failed(e.to_string(), output),
        }
    }

    async fn exec(&self, t: &Test, service: &str, command: &[String]) -> CheckRun {
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return CheckRun::failed(e, String::new()),
        };
        let container = names::container(&self.manifest.project.name, service);
        match backend.exec(&container, command, &t.env).await {
            Ok(r) if r.exit_code == 0 => CheckRun {
                failure: None,
                output: r.output,
            },
            Ok(r) => CheckRun::failed(
                format!("exit status {} in {container}", r.exit_code),
                r.output,
            ),
            Err(e) => CheckRun::failed(e.to_string(), String::new()),
        }
    }

    /// Runs the script in a throwaway container from `image`, with the project directory
    /// mounted at the same path, and removes the container whatever happens.
    async fn in_image(&self, t: &Test, run: &[String], image: &ImageRef) -> CheckRun {
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return CheckRun::failed(e, String::new()),
        };
        let tag = match self.image_tag(image) {
            Ok(tag) => tag,
            Err(e) => return CheckRun::failed(e, String::new()),
        };
        let m = &self.manifest;
        let purpose = format!("test-{}", t.name);
        // Leftovers after an interruption carry the project label for destroy and ci.
        match crate::run::container::run_script(
            m,
            backend.as_ref(),
            &tag,
            &purpose,
            &script(run),
            &m.dir,
            t.env.clone(),
            Some(t.timeout.0),
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        {
            Ok(r) if r.exit_code == 0 => CheckRun {
                failure: None,
                output: r.log,
            },
            Ok(r) => CheckRun::failed(format!("exit status {}", r.exit_code), r.log),
            Err(e) => CheckRun::failed(e, String::new()),
        }
    }
}

impl Executor<NodeId> for TestExecutor {
    fn execute<'a>(&'a self, node: &'a NodeId, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
        async move {
            if node.kind != Kind::Test {
                return Outcome::Failed(format!("{node} is not a test"));
            }
            self.run_test(node, ctx)
                .await
                .unwrap_or_else(Outcome::Failed)
        }
        .boxed()
    }
}
