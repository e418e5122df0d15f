//! Removing what no node declares any more, or what `destroy` takes down: containers,
//! networks, volumes and images found by the project's label. An object already gone is
//! not an error; the node it realised is forgotten in the state store.

use crate::engine::Walk;
use crate::exec::{Failure, NodeCtx, Outcome};
use crate::plan::{ObjectKind, Step, Subject};

use super::engine_failure;

/// How long a container is given to stop: its service's `stop-timeout`, or Docker's 10 s.
fn stop_timeout(walk: &Walk<'_>, node: Option<&str>) -> std::time::Duration {
    node.and_then(|n| n.strip_prefix("service."))
        .and_then(|s| walk.session.manifest.services.get(s))
        .map(|s| s.stop_timeout.0)
        .unwrap_or(std::time::Duration::from_secs(10))
}

pub async fn execute(walk: &Walk<'_>, step: &Step, _ctx: &NodeCtx) -> Result<Outcome, Failure> {
    let Subject::Object { kind, name, node } = &step.subject else {
        return Err(Failure::work(format!("{} is not an object", step.node)));
    };
    let session = walk.session;
    let backend = session.backend().await.map_err(engine_failure)?;
    let removed = match kind {
        ObjectKind::Container => {
            // Stopped first, as `docker compose down` does, and only a few at a time (see
            // `REMOVALS_IN_FLIGHT`).
            let _slot = session.removals.acquire().await.ok();
            let timeout = stop_timeout(walk, node.as_deref());
            match backend.stop_container(name, timeout).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => backend.remove_container(name, true).await,
            }
        }
        ObjectKind::Network => backend.remove_network(name).await,
        ObjectKind::Volume => backend.remove_volume(name).await,
        ObjectKind::Image => backend.remove_image(name).await,
    };
    let outcome = match removed {
        Ok(()) => Outcome::Ran(Some("deleted".into())),
        Err(e) if e.is_not_found() => Outcome::UpToDate(Some("already gone".into())),
        Err(e) => return Err(engine_failure(e)),
    };
    // What no longer exists is forgotten, so the next plan does not compare against it; a
    // service's secret files go with its container.
    if let Some((k, n)) = node.as_deref().and_then(|n| n.split_once('.')) {
        session.forget(k, n).map_err(Failure::infrastructure)?;
        if *kind == ObjectKind::Container && k == "service" {
            let dir = crate::plan::desired::secret_dir(&session.manifest, n);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(outcome)
}
