//! Backups as steps: sweep, quiesce, snapshot into the first copy, replicate, resume — the
//! backup library's work, handed to a blocking thread so the rest of the walk goes on. Before
//! `destroy --volumes` deletes a volume, its backup is also verified in full.
//!
//! The run's cancellation token is the runner's stop: on SIGINT or SIGTERM the backup ends
//! at its next safe point and the node fails as interrupted, which gives the command its
//! exit code (130 or 143).

use std::sync::Arc;

use crate::backup::run_error::RunError;
use crate::backup::runner::{backup_needs_engine, Runner};
use crate::backup::{BackupOutcome, Stop};
use crate::engine::Walk;
use crate::exec::{Failure, FailureClass, NodeCtx, Outcome};
use crate::manifest::NodeId;
use crate::plan::{desired, Action, Step};

pub async fn execute(
    walk: &Walk<'_>,
    step: &Step,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let b = session.manifest.backups[&id.name].clone();
    // Backups of host paths with nothing to quiesce need no engine.
    let backend = if backup_needs_engine(&b) {
        Some(session.backend().await.map_err(super::engine_failure)?)
    } else {
        None
    };
    let runner = Runner {
        manifest: Arc::clone(&session.manifest),
        backend,
        rt: tokio::runtime::Handle::current(),
        stop: Stop::on(ctx.cancel().clone()),
    };
    let verified = step.action == Action::VerifiedBackup;
    let node = b.clone();
    let now = chrono::Utc::now();
    let run = tokio::task::spawn_blocking(move || {
        if verified {
            runner.backup_verified(&node, now)
        } else {
            runner.backup(&node, now)
        }
    })
    .await
    .map_err(|e| Failure::work(format!("backup {}: the backup thread failed: {e}", b.name)))?;
    let run = run.map_err(|e| {
        let class = if matches!(e, RunError::Interrupted { .. }) {
            FailureClass::Interrupted
        } else if e.is_infrastructure() {
            FailureClass::Infrastructure
        } else {
            FailureClass::Work
        };
        Failure::new(class, e.chain())
    })?;
    if let Some(line) = run.swept.summary() {
        ctx.emit(&line);
    }
    for f in &run.swept.failures {
        ctx.emit(&format!("warning: not swept: {f}"));
    }
    for c in &run.copies {
        ctx.emit(&format!("{}: {}", c.copy, c.message));
    }
    for w in &run.report.warnings {
        ctx.emit(&format!("warning: {w}"));
    }
    for s in &run.report.skipped {
        ctx.emit(&format!("warning: {s} not backed up"));
    }
    let outcome = match &run.report.outcome {
        BackupOutcome::Created(_) => "created",
        BackupOutcome::Unchanged(_) => "unchanged",
    };
    ctx.data(&serde_json::json!({
        "backup": b.name,
        "snapshot": run.report.id(),
        "outcome": outcome,
        "verified": verified,
        "copies": run.copies.iter().map(|c| serde_json::json!({
            "copy": c.copy, "ok": c.ok, "message": c.message,
        })).collect::<Vec<_>>(),
        "skipped": run.report.skipped.iter()
            .map(|s| format!("{}: {}", s.path, s.kind))
            .collect::<Vec<_>>(),
        "warnings": run.report.warnings,
        "swept": run.swept.to_json(),
    }));
    // Before a deletion what must hold is the verified snapshot in the first copy; a copy
    // that could not be replicated is reported above, as for any backup.
    if !run.all_copies_ok() && !verified {
        return Err(Failure::work(format!(
            "backup {}: not every copy holds snapshot {}",
            b.name,
            &run.report.id()[..12.min(run.report.id().len())]
        )));
    }
    let _ = session.cache.record_success(&desired::backup_key(&b));
    session
        .snapshots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(b.name.clone(), run.report.id().to_string());
    let detail = format!(
        "{}{}",
        run.report.summary(),
        if verified { " (verified)" } else { "" }
    );
    Ok(match run.report.outcome {
        BackupOutcome::Created(_) => Outcome::Ran(Some(detail)),
        BackupOutcome::Unchanged(_) => Outcome::UpToDate(Some(detail)),
    })
}
