//! Images: build from the context (or pull a reference) unless the tag is present. The tag
//! comes from the context's content, so an unchanged context is never rebuilt.

use crate::engine::Walk;
use crate::exec::{Failure, NodeCtx, Outcome};
use crate::manifest::NodeId;
use crate::plan::{decide, desired, Action, Case, Prepared};
use crate::state::{NodeRecord, RecordResult};

use super::engine_failure;

/// What image `name` wants now: the plan's answer, unless something upstream changed in this
/// walk (a task rewrote the context), then computed again.
pub fn desired_now(
    walk: &Walk<'_>,
    i: usize,
    name: &str,
) -> Result<desired::DesiredImage, Failure> {
    match walk.prepared(i) {
        Prepared::Image(d) if !walk.upstream_changed(i) => Ok((**d).clone()),
        _ => desired::image(&walk.session.manifest, name, &mut walk.session.stat())
            .map_err(|e| Failure::from_error(crate::exec::FailureClass::Infrastructure, &e)),
    }
}

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let d = desired_now(walk, i, &id.name)?;
    walk.note_tag(&id.name, d.tag.clone(), d.fingerprint.clone());
    let backend = session.backend().await.map_err(engine_failure)?;
    let present = backend
        .inspect_image(&d.tag)
        .await
        .map_err(engine_failure)?
        .is_some();
    let decision = decide(Case::Image {
        desired: &d,
        present,
    });
    walk.check_planned(i, &decision)?;
    let outcome = match (decision.action, &d.build) {
        (Action::Build, Some(build)) => {
            let sink = |line: &str| ctx.emit(line);
            // A stop request drops the build's connection, which makes the daemon cancel it;
            // nothing is tagged, so the next apply builds again.
            tokio::select! {
                built = backend.build_image(build, &sink) => {
                    built.map_err(engine_failure)?;
                }
                _ = ctx.cancel().cancelled() => return Err(Failure::interrupted()),
            }
            Outcome::Ran(Some(format!("built {}", d.tag)))
        }
        (Action::Pull, _) => {
            ctx.emit(&format!("pulling {}", d.tag));
            tokio::select! {
                pulled = backend.pull_image(&d.tag) => pulled.map_err(engine_failure)?,
                _ = ctx.cancel().cancelled() => return Err(Failure::interrupted()),
            }
            Outcome::Ran(Some(format!("pulled {}", d.tag)))
        }
        _ => Outcome::UpToDate(None),
    };
    let result = match outcome {
        Outcome::Ran(_) => RecordResult::Ran,
        _ => RecordResult::UpToDate,
    };
    session
        .record(NodeRecord {
            kind: "image".into(),
            name: id.name.clone(),
            fingerprint: d.fingerprint.clone(),
            spec: serde_json::json!({ "tag": d.tag }),
            finished_at: chrono::Utc::now(),
            result,
        })
        .map_err(Failure::infrastructure)?;
    // The key is what the next plan compares with to say which context file changed.
    if session.cache.last_fingerprint("image", &id.name).as_deref() != Some(&d.fingerprint) {
        let _ = session.cache.record_success(&d.key);
    }
    Ok(outcome)
}
