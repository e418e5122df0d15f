//! Tests: shell lines on the host or inside an image, a command inside a running service, an
//! HTTP or TCP probe — each under its timeout, the output kept for the report.
//!
//! A test's key covers its spec (check, env, timeout), its input files, the tag of a
//! declared image it runs in, the keys of tasks and tests it depends on, and the identity of
//! every running container it needs — the container's id and when it started. A test
//! against a stack that was re-created or restarted since it last passed runs again; a
//! test of nothing live keeps caching like a task. Only passing runs are recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::backend::{names, ContainerInfo};
use crate::engine::{Session, Walk};
use crate::exec::process::{run_host, HostCommand};
use crate::exec::{Failure, NodeCtx, Outcome};
use crate::fingerprint::{hash_inputs, Key, Spec};
use crate::manifest::{ImageRef, Kind, Manifest, NodeId, Test, TestCheck};
use crate::plan::{decide, Action, Case, Prepared};
use crate::testing::probe::{http_probe, tcp_probe};

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

/// Who a needed service is right now: its container's id and start time, or `absent`.
fn identity(info: Option<&ContainerInfo>) -> String {
    match info {
        Some(c) => format!(
            "{}@{}",
            c.id,
            c.started_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
        None => "absent".to_string(),
    }
}

/// The identities of the services `t` needs, looked up by container name.
pub fn identities_from(
    m: &Manifest,
    t: &Test,
    lookup: impl Fn(&str) -> Option<ContainerInfo>,
) -> BTreeMap<String, String> {
    needed_services(t)
        .into_iter()
        .map(|svc| {
            let info = lookup(&names::container(&m.project.name, &svc));
            (svc, identity(info.as_ref()))
        })
        .collect()
}

fn script(lines: &[String]) -> String {
    format!("set -e\n{}", lines.join("\n"))
}

/// The key of test `t`; tasks and tests it depends on must have been keyed first.
pub fn key(
    session: &Session,
    t: &Test,
    identities: &BTreeMap<String, String>,
    image_tag: &dyn Fn(&ImageRef) -> Result<String, String>,
) -> Result<Key, String> {
    let m = &session.manifest;
    let mut extra = serde_json::json!({
        "check": t.check,
        "timeout_ms": u64::try_from(t.timeout.0.as_millis()).unwrap_or(u64::MAX),
    });
    if let TestCheck::Command {
        image: Some(img), ..
    } = &t.check
    {
        extra["image_tag"] = serde_json::json!(image_tag(img)?);
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
        key.inputs = hash_inputs(&m.dir, &t.inputs, &mut session.stat(), &m.written_dirs())
            .map_err(|e| format!("test `{}`: {e}", t.name))?;
    }
    for (svc, who) in identities {
        key.dependencies
            .insert(format!("service.{svc}"), who.clone());
    }
    for dep in &t.depends_on {
        let fp = match dep.node.kind {
            Kind::Task | Kind::Test => session.fingerprint_of(&dep.node),
            Kind::Image => Some(image_tag(&ImageRef::Declared(dep.node.name.clone()))?),
            _ => None,
        };
        if let Some(fp) = fp {
            key.dependencies.insert(dep.node.to_string(), fp);
        }
    }
    super::container::key_secret_files(session, &mut key, &t.secret_files)?;
    Ok(key)
}

/// How a check ended.
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

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let m = &session.manifest;
    let t = m
        .tests
        .get(&id.name)
        .ok_or_else(|| Failure::work(format!("no test `{}`", id.name)))?;
    let planned = &walk.plan.steps[i];
    // What the test needs was (re)started in this walk: it is keyed against the new
    // containers, and those are looked at now.
    let key = match walk.prepared(i) {
        Prepared::Key(k) if !walk.upstream_changed(i) => (**k).clone(),
        _ => {
            let identities = if needed_services(t).is_empty() {
                BTreeMap::new()
            } else {
                let backend = session.backend().await.map_err(super::engine_failure)?;
                let mut out = BTreeMap::new();
                for svc in needed_services(t) {
                    let info = backend
                        .inspect_container(&names::container(&m.project.name, &svc))
                        .await
                        .map_err(super::engine_failure)?;
                    out.insert(svc, identity(info.as_ref()));
                }
                out
            };
            let tags = |img: &ImageRef| match img {
                ImageRef::Declared(n) => match walk.tag_of(n) {
                    Some((tag, _)) => Ok(tag),
                    None => crate::plan::desired::image(m, n, &mut session.stat())
                        .map(|d| d.tag)
                        .map_err(|e| e.to_string()),
                },
                ImageRef::External(r) => Ok(r.clone()),
            };
            key(session, t, &identities, &tags).map_err(Failure::work)?
        }
    };
    let fp = key.fingerprint();
    session.note_fingerprint(id, fp.clone());
    let up_to_date = if walk.upstream_changed(i) {
        decide(Case::Test {
            key: &key,
            fingerprint: &fp,
            last: session.last(id),
            no_cache: session.options.no_cache,
        })
        .action
            == Action::UpToDate
    } else {
        planned.action == Action::UpToDate
    };
    if up_to_date {
        session.keep_test_output(&t.name, String::new());
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
        r = tokio::time::timeout(timeout, check(walk, t, ctx)) => match r {
            Ok(run) => run,
            Err(_) => CheckRun::failed(format!("timed out after {}", t.timeout), String::new()),
        },
        _ = ctx.cancel().cancelled() => return Err(Failure::interrupted()),
    };
    session.keep_test_output(&t.name, run.output);
    match run.failure {
        Some(reason) => Err(Failure::work(reason)),
        None => {
            session
                .cache
                .record_success(&key)
                .map_err(|e| Failure::work(format!("passed, but cannot record the result: {e}")))?;
            Ok(Outcome::Ran(Some("passed".into())))
        }
    }
}

async fn check(walk: &Walk<'_>, t: &Test, ctx: &NodeCtx) -> CheckRun {
    match &t.check {
        TestCheck::Command { run, image: None } => host(walk.session, t, run, ctx).await,
        TestCheck::Command {
            run,
            image: Some(img),
        } => in_image(walk, t, run, img, ctx).await,
        TestCheck::Exec { service, command } => exec(walk.session, t, service, command).await,
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

async fn host(session: &Session, t: &Test, run: &[String], ctx: &NodeCtx) -> CheckRun {
    let mut cmd = HostCommand::new(script(run), session.manifest.dir.clone());
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

async fn exec(session: &Session, t: &Test, service: &str, command: &[String]) -> CheckRun {
    let backend = match session.backend().await {
        Ok(b) => b,
        Err(e) => return CheckRun::failed(e.to_string(), String::new()),
    };
    let container = names::container(&session.manifest.project.name, service);
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
async fn in_image(
    walk: &Walk<'_>,
    t: &Test,
    run: &[String],
    image: &ImageRef,
    ctx: &NodeCtx,
) -> CheckRun {
    let session = walk.session;
    let backend = match session.backend().await {
        Ok(b) => b,
        Err(e) => return CheckRun::failed(e.to_string(), String::new()),
    };
    let sink = |line: &str| ctx.emit(line);
    let tag = match super::container::ensure_image(walk, backend.as_ref(), image, &sink).await {
        Ok(tag) => tag,
        Err(e) => return CheckRun::failed(e, String::new()),
    };
    let m = &session.manifest;
    let purpose = format!("test-{}", t.name);
    let script = script(run);
    match super::container::run_script(
        m,
        backend.as_ref(),
        super::container::Script {
            image: &tag,
            purpose: &purpose,
            script: &script,
            workdir: &m.dir,
            env: t.env.clone(),
            secret_files: &t.secret_files,
            timeout: Some(t.timeout.0),
        },
        ctx.cancel(),
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
