//! Services: a container per service, created, replaced, started or left alone as the
//! decision says, then waited for — until healthy when it has a health check, until it exits
//! when a dependent waits for it to complete. All of it is the engine's work, so the walk
//! runs it outside its job slots; changing the container takes one of the session's engine
//! slots, waiting takes none.

use std::time::Instant;

use crate::backend::{names, BackendError, ContainerState};
use crate::engine::Walk;
use crate::exec::{Failure, FailureClass, NodeCtx, Outcome};
use crate::manifest::{Condition, ImageRef, Kind, NodeId, Service};
use crate::plan::{decide, desired, Action, Case, Last, Prepared};
use crate::state::{NodeRecord, RecordResult};

use super::{engine_failure, ready};

/// What service `svc` wants now: the plan's container unless something upstream changed in
/// this walk (its image was rebuilt), then computed again from the tag resolved in the walk.
fn desired_now(
    walk: &Walk<'_>,
    i: usize,
    svc: &Service,
) -> Result<desired::DesiredContainer, Failure> {
    if let Prepared::Service(d) = walk.prepared(i) {
        if !walk.upstream_changed(i) {
            return Ok((**d).clone());
        }
    }
    let m = &walk.session.manifest;
    let (tag, fp) = match &svc.image {
        ImageRef::Declared(n) => match walk.tag_of(n) {
            Some(t) => t,
            None => {
                let d = desired::image(m, n, &mut walk.session.stat())
                    .map_err(|e| Failure::from_error(FailureClass::Infrastructure, &e))?;
                (d.tag, d.fingerprint)
            }
        },
        ImageRef::External(r) => (r.clone(), String::new()),
    };
    let fp = (!fp.is_empty()).then_some(fp);
    desired::container(m, svc, &tag, fp.as_deref(), &walk.session.salt)
        .map_err(|e| Failure::from_error(FailureClass::Work, &e))
}

/// Whether something waits for `svc` to exit successfully (`condition="completed"`).
fn awaited_to_complete(walk: &Walk<'_>, svc: &str) -> bool {
    let m = &walk.session.manifest;
    m.services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .chain(m.tasks.values().flat_map(|t| t.depends_on.iter()))
        .chain(m.tests.values().flat_map(|t| t.depends_on.iter()))
        .chain(m.backups.values().flat_map(|b| b.depends_on.iter()))
        .chain(m.syncs.values().flat_map(|s| s.depends_on.iter()))
        .any(|d| {
            d.node.kind == Kind::Service
                && d.node.name == svc
                && d.condition == Condition::Completed
        })
}

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let m = &session.manifest;
    let svc = &m.services[&id.name];
    let d = desired_now(walk, i, svc)?;
    let backend = session.backend().await.map_err(engine_failure)?;
    let name = d.spec.name.clone();
    if d.uses_default_network {
        walk.default_network
            .get_or_try_init(|| async {
                let net = names::default_network(&m.project.name);
                let labels = names::labels(&m.project.name, "network.default", None);
                backend.ensure_network(&net, &labels).await.map(|_| ())
            })
            .await
            .map_err(engine_failure)?;
    }
    let observed = backend
        .inspect_container(&name)
        .await
        .map_err(engine_failure)?;
    let record = session.record_of("service", &id.name);
    let decision = decide(Case::Service {
        desired: &d,
        observed: observed.as_ref(),
        record: record.as_ref(),
        last: Last {
            fingerprint: None,
            load: Box::new(|| session.last_key(id)),
        },
    });
    walk.check_planned(i, &decision)?;
    // Changing the container is the engine's work, bounded across the walk; the wait for
    // health below is not.
    let engine_slot = session.engine_steps.acquire().await.ok();
    if svc.update.is_blue_green() {
        let bg = super::blue_green::BlueGreen {
            walk,
            ctx,
            backend: backend.as_ref(),
            svc,
            d: &d,
        };
        let detail = bg.run(decision.action, observed.as_ref()).await?;
        drop(engine_slot);
        return finish(walk, id, &d, detail);
    }
    // Only a container blue-green made (or none at all) can have a proxy beside it: a
    // recreated service that was blue-green before takes its ports back.
    let was_blue_green = observed
        .as_ref()
        .is_none_or(|c| c.labels.contains_key(super::blue_green::LABEL_COLOUR));
    if decision.action != Action::UpToDate && was_blue_green {
        super::blue_green::remove_leftovers(backend.as_ref(), &m.project.name, &svc.name).await?;
    }
    let detail = match decision.action {
        Action::UpToDate => None,
        Action::Blocked => {
            return Err(Failure::conflict(
                decision.reasons.first().cloned().unwrap_or_default(),
            ))
        }
        Action::Start => {
            if observed
                .as_ref()
                .is_some_and(|c| c.state == ContainerState::Paused)
            {
                backend
                    .unpause_container(&name)
                    .await
                    .map_err(engine_failure)?;
                Some("unpaused")
            } else {
                start(backend.as_ref(), &name, svc).await?;
                Some("started")
            }
        }
        Action::Replace => {
            ctx.emit(&format!("replacing {name}"));
            {
                let _removal = session.removals.acquire().await.ok();
                backend
                    .stop_container(&name, svc.stop_timeout.0)
                    .await
                    .map_err(engine_failure)?;
                backend
                    .remove_container(&name, true)
                    .await
                    .map_err(engine_failure)?;
            }
            write_secrets(walk, svc, &d)?;
            backend
                .create_container(&d.spec)
                .await
                .map_err(engine_failure)?;
            start(backend.as_ref(), &name, svc).await?;
            Some("replaced")
        }
        _ => {
            write_secrets(walk, svc, &d)?;
            backend
                .create_container(&d.spec)
                .await
                .map_err(engine_failure)?;
            start(backend.as_ref(), &name, svc).await?;
            Some("created")
        }
    };
    drop(engine_slot);
    // Apply reports success only for services that are ready: every service with a health
    // check is waited for, not only those another node waits for.
    if let Some(h) = &svc.health {
        ctx.idle(ready::wait_ready(
            backend.as_ref(),
            &svc.name,
            &name,
            &h.test,
            svc.ready_timeout.0,
            &session.probes,
            ctx.cancel(),
        ))
        .await
        .map_err(|e| Failure::from_error(FailureClass::Infrastructure, &e))?;
    }
    if awaited_to_complete(walk, &svc.name) {
        let deadline = Instant::now() + svc.ready_timeout.0;
        let code = ctx
            .idle(backend.wait_exit(&name, deadline))
            .await
            .map_err(engine_failure)?;
        if code != 0 {
            return Err(Failure::work(format!(
                "service `{}` exited with code {code}; dependents wait for it to complete successfully",
                svc.name
            )));
        }
    }
    finish(walk, id, &d, detail.map(str::to_string))
}

/// Records what the service's container is now.
fn finish(
    walk: &Walk<'_>,
    id: &NodeId,
    d: &desired::DesiredContainer,
    detail: Option<String>,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let ran = detail.is_some();
    if ran {
        // Apply brought it up: it is no longer stopped on purpose.
        let state_dir = &session.manifest.project.state_dir;
        let _ =
            crate::state::stopped::mark_stopped(state_dir, std::slice::from_ref(&id.name), false);
    }
    let outcome = match detail {
        Some(word) => Outcome::Ran(Some(word)),
        None => Outcome::UpToDate(None),
    };
    session
        .record(NodeRecord {
            kind: "service".into(),
            name: id.name.clone(),
            fingerprint: d.fingerprint.clone(),
            spec: d.public.clone(),
            finished_at: chrono::Utc::now(),
            result: if ran {
                RecordResult::Ran
            } else {
                RecordResult::UpToDate
            },
        })
        .map_err(Failure::infrastructure)?;
    // The key is what the next plan compares with to say what changed.
    if session.last_fingerprint(id).as_deref() != Some(&d.fingerprint) {
        let _ = session.cache.record_success(&d.key);
    }
    Ok(outcome)
}

/// Puts the service's secret files in place, just before its container is created.
pub(super) fn write_secrets(
    walk: &Walk<'_>,
    svc: &Service,
    d: &desired::DesiredContainer,
) -> Result<(), Failure> {
    let dir = desired::secret_dir(&walk.session.manifest, &svc.name);
    desired::write_secret_files(&dir, &d.secret_files).map_err(|e| {
        Failure::work(format!(
            "service `{}`: cannot write its secret files in {}: {e}",
            svc.name,
            dir.display()
        ))
    })
}

async fn start(
    backend: &dyn crate::backend::Backend,
    name: &str,
    svc: &Service,
) -> Result<(), Failure> {
    match backend.start_container(name).await {
        Ok(()) => Ok(()),
        Err(BackendError::PortInUse { port, .. }) => {
            // Leave no half-started container behind: the next apply creates it afresh.
            let _ = backend.remove_container(name, true).await;
            Err(Failure::infrastructure(format!(
                "service `{}` cannot start: host port {port} is already in use by another process or container",
                svc.name
            )))
        }
        Err(e) => Err(engine_failure(e)),
    }
}
