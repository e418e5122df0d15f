//! Sync rules as steps: one three-way pass between the host side and the container side.
//! Setting the container side up (the service's container, or a helper on the volume) is
//! the engine's part; the pass itself is file work on a blocking thread.

use crate::engine::Walk;
use crate::exec::{chain, Failure, FailureClass, NodeCtx, Outcome};
use crate::manifest::NodeId;
use crate::plan::desired;
use crate::sync::last_pass::{self, LastPass};
use crate::sync::target;
use crate::sync::{sync_pass, SyncError, SyncOptions};

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    // Apply found nothing for this rule to carry, and nothing it depends on changed since.
    if walk.plan.steps[i].action == crate::plan::Action::UpToDate && !walk.upstream_changed(i) {
        return Ok(Outcome::UpToDate(None));
    }
    let m = &session.manifest;
    let rule = &m.syncs[&id.name];
    let backend = session.backend().await.map_err(super::engine_failure)?;
    let prepared = target::prepare(
        backend,
        tokio::runtime::Handle::current(),
        m,
        rule,
        ctx.cancel().clone(),
    )
    .await
    .map_err(|e| Failure::new(FailureClass::Infrastructure, chain(&e)))?;
    let dry_run = session.options.dry_run;
    let rule_dir = target::rule_dir(&m.project.state_dir, &rule.name);
    let (prepared, result) = tokio::task::spawn_blocking(move || {
        let opts = SyncOptions {
            dry_run,
            ..prepared.opts.clone()
        };
        let result = sync_pass(
            prepared.host.as_ref(),
            prepared.container.as_ref(),
            &prepared.store,
            &opts,
        );
        if !dry_run {
            let record = LastPass::of(&result, |e| chain(e));
            if let Err(e) = last_pass::save(&rule_dir, &record) {
                tracing::warn!("{}", chain(&e));
            }
        }
        (prepared, result)
    })
    .await
    .map_err(|e| Failure::work(format!("sync `{}`: the pass thread failed: {e}", id.name)))?;
    let text = match &result {
        Ok(report) => Some(crate::sync::report::render(
            &rule.name,
            report,
            &prepared.store,
        )),
        Err(_) => None,
    };
    let finished = prepared.finish().await;
    // A stop request ends the pass at an action boundary (or cuts a transfer, whose staged
    // part is removed); what was done is recorded, the next pass carries the rest.
    if ctx.cancel().is_cancelled() {
        for line in text.unwrap_or_default().lines() {
            ctx.emit(line);
        }
        let done = result.as_ref().map_or(0, |r| r.applied.len());
        return Err(Failure::new(
            FailureClass::Interrupted,
            format!(
                "sync `{}` interrupted after {done} action(s); the next pass carries the rest",
                rule.name
            ),
        ));
    }
    let report = result.map_err(|e| {
        let class = match e {
            SyncError::Conflicts { .. } => FailureClass::Conflict,
            _ => FailureClass::Work,
        };
        Failure::new(class, format!("sync `{}` halted: {}", rule.name, chain(&e)))
    })?;
    for line in text.unwrap_or_default().lines() {
        ctx.emit(line);
    }
    ctx.data(&serde_json::json!({ "sync": rule.name, "report": report }));
    if let Err(e) = finished {
        return Err(Failure::infrastructure(format!(
            "sync `{}`: removing the helper container: {}",
            rule.name,
            chain(&e)
        )));
    }
    if !report.failed.is_empty() {
        return Err(Failure::work(format!(
            "sync `{}`: {} action(s) failed",
            rule.name,
            report.failed.len()
        )));
    }
    let _ = session.cache.record_success(&desired::sync_key(rule));
    let moved = !report.dry_run && !report.applied.is_empty();
    Ok(if moved {
        Outcome::Ran(Some(format!("{} applied", report.applied.len())))
    } else if report.dry_run {
        Outcome::UpToDate(Some(format!("{} would run", report.plan.actions.len())))
    } else {
        Outcome::UpToDate(None)
    })
}
