//! Drift: what changed on the engine outside sanctuary since the last generation. The
//! generation says which container each service ran and on which image; the state store says
//! which objects sanctuary itself still holds (a `destroy` forgets them, so what sanctuary
//! removed is not drift). Only reads.

use serde::Serialize;

use super::Generation;
use crate::backend::{names, Backend, BackendError, ContainerState, LabelFilter};
use crate::manifest::Manifest;
use crate::state::StateFile;

/// One change made outside sanctuary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drifted {
    /// The node it concerns: `service.web`, `volume.data`, `network.default`.
    pub node: String,
    pub kind: DriftKind,
    /// What was found, in words.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// The service's container is gone.
    Removed,
    /// The container exists but does not run.
    Stopped,
    /// A container of the service's name that is not the one sanctuary made.
    Recreated,
    /// The container runs another image than the generation recorded.
    OtherImage,
    /// The image reference the container was made from now names another image, or none.
    Retagged,
    /// A volume or network sanctuary made is gone.
    Missing,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Removed => "removed",
            DriftKind::Stopped => "stopped",
            DriftKind::Recreated => "recreated",
            DriftKind::OtherImage => "other image",
            DriftKind::Retagged => "retagged",
            DriftKind::Missing => "missing",
        }
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Compares what the engine holds with generation `g` (whose manifest is `m`), for the
/// objects `state` still records.
pub async fn find(
    backend: &dyn Backend,
    m: &Manifest,
    g: &Generation,
    state: &StateFile,
) -> Result<Vec<Drifted>, BackendError> {
    let project = &m.project.name;
    let mut found = Vec::new();
    let services: Vec<&String> = m
        .services
        .keys()
        .filter(|s| state.get("service", s).is_some())
        .collect();
    let containers: Vec<String> = services
        .iter()
        .map(|s| names::container(project, s))
        .collect();
    // Everything is asked for at once: drift costs about one round trip more than a plan.
    let filter = LabelFilter::new().with(names::LABEL_PROJECT, project.as_str());
    let (inspected, volumes, networks) = futures_util::join!(
        futures_util::future::join_all(containers.iter().map(|c| backend.inspect_container(c))),
        backend.list_volumes(&filter),
        backend.list_networks(&filter),
    );
    let inspected = inspected.into_iter().collect::<Result<Vec<_>, _>>()?;
    let references: Vec<Option<&str>> = inspected
        .iter()
        .map(|i| i.as_ref().map(|i| i.image.as_str()))
        .collect();
    let images = futures_util::future::join_all(references.iter().map(|r| async move {
        match r {
            Some(r) => backend.inspect_image(r).await,
            None => Ok(None),
        }
    }))
    .await;
    for ((svc, info), image) in services.iter().zip(inspected).zip(images) {
        let node = format!("service.{svc}");
        let mut push = |kind, detail: String| {
            found.push(Drifted {
                node: node.clone(),
                kind,
                detail,
            })
        };
        let Some(info) = info else {
            push(DriftKind::Removed, "its container is gone".into());
            continue;
        };
        let recreated = g.containers.get(*svc).is_some_and(|id| *id != info.id);
        let labelled = info.labels.get(names::LABEL_PROJECT) == Some(project);
        if recreated || !labelled {
            push(
                DriftKind::Recreated,
                format!(
                    "container {} is not the one sanctuary made{}",
                    short(&info.id),
                    match g.containers.get(*svc) {
                        Some(id) => format!(" ({})", short(id)),
                        None => String::new(),
                    }
                ),
            );
        }
        if info.state != ContainerState::Running {
            push(
                DriftKind::Stopped,
                format!("its container is {:?}", info.state).to_lowercase(),
            );
        }
        if let Some(recorded) = g.images.get(*svc) {
            if *recorded != info.image_id {
                push(
                    DriftKind::OtherImage,
                    format!(
                        "runs image {}; generation {} ran {}",
                        short(&info.image_id),
                        g.number,
                        short(recorded)
                    ),
                );
            }
        }
        match image? {
            Some(image) if image.id == info.image_id => {}
            Some(image) => push(
                DriftKind::Retagged,
                format!(
                    "`{}` now names image {}; the container runs {}",
                    info.image,
                    short(&image.id),
                    short(&info.image_id)
                ),
            ),
            None => push(
                DriftKind::Retagged,
                format!("`{}` no longer names any image", info.image),
            ),
        }
    }

    let volumes: Vec<String> = volumes?.into_iter().map(|v| v.name).collect();
    for v in m.volumes.keys() {
        if state.get("volume", v).is_some() && !volumes.contains(&names::volume(project, v)) {
            found.push(Drifted {
                node: format!("volume.{v}"),
                kind: DriftKind::Missing,
                detail: format!("volume {} is gone", names::volume(project, v)),
            });
        }
    }
    let networks: Vec<String> = networks?.into_iter().map(|n| n.name).collect();
    let mut expected: Vec<(String, String)> = m
        .networks
        .keys()
        .filter(|n| state.get("network", n).is_some())
        .map(|n| (format!("network.{n}"), names::network(project, n)))
        .collect();
    let on_default = m
        .services
        .values()
        .any(|s| s.networks.is_empty() && state.get("service", &s.name).is_some());
    if on_default {
        expected.push(("network.default".into(), names::default_network(project)));
    }
    for (node, name) in expected {
        if !networks.contains(&name) {
            found.push(Drifted {
                node,
                kind: DriftKind::Missing,
                detail: format!("network {name} is gone"),
            });
        }
    }
    Ok(found)
}
