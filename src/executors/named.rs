//! Volumes and networks: identified by their names alone, created when missing, never
//! changed or removed by apply.

use crate::backend::names;
use crate::engine::Walk;
use crate::exec::{Failure, NodeCtx, Outcome};
use crate::manifest::{Kind, NodeId};
use crate::plan::{decide, desired, Case};
use crate::state::{NodeRecord, RecordResult};

use super::engine_failure;

pub async fn execute(
    walk: &Walk<'_>,
    i: usize,
    id: &NodeId,
    _ctx: &NodeCtx,
) -> Result<Outcome, Failure> {
    let session = walk.session;
    let project = &session.manifest.project.name;
    let backend = session.backend().await.map_err(engine_failure)?;
    let labels = names::labels(project, &id.to_string(), None);
    let name = if id.kind == Kind::Volume {
        names::volume(project, &id.name)
    } else {
        names::network(project, &id.name)
    };
    let ensured = if id.kind == Kind::Volume {
        backend.ensure_volume(&name, &labels).await
    } else {
        backend.ensure_network(&name, &labels).await
    }
    .map_err(engine_failure)?;
    let exists = ensured == crate::backend::Ensured::AlreadyExisted;
    // Ensuring is the observation: what existed was left alone, as the decision says.
    walk.check_planned(i, &decide(Case::Named { exists }))?;
    let outcome = if exists {
        Outcome::UpToDate(None)
    } else {
        Outcome::Ran(Some(format!("created {name}")))
    };
    session
        .record(NodeRecord {
            kind: id.kind.to_string(),
            name: id.name.clone(),
            fingerprint: desired::named_key(&session.manifest, id).fingerprint(),
            spec: serde_json::json!({ "name": name }),
            finished_at: chrono::Utc::now(),
            result: if exists {
                RecordResult::UpToDate
            } else {
                RecordResult::Ran
            },
        })
        .map_err(Failure::infrastructure)?;
    Ok(outcome)
}
