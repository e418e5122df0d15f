//! The engine's events about one project, as they happen (`sanctuary events`): containers
//! starting, dying, turning unhealthy, being killed for memory; the project's networks and
//! volumes being created and removed.
//!
//! The engine's stream ends when the daemon goes away (a restart, an upgrade). The watch
//! then says so, waits until the engine answers again and resumes from the time of the last
//! event it saw, so nothing that happened meanwhile is lost; events at exactly that time that
//! were already seen are not repeated.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::backend::{names, Backend, EngineEvent, LabelFilter};
use crate::manifest::Manifest;

/// How long to wait between attempts to reach an engine that went away.
const RETRY: Duration = Duration::from_secs(1);

/// Which of the engine's events are the project's: containers by their project label;
/// networks and volumes, whose events carry no labels, by the names the project gives them.
#[derive(Debug, Clone)]
pub struct ProjectFilter {
    project: String,
    volumes: BTreeSet<String>,
    networks: BTreeSet<String>,
}

impl ProjectFilter {
    pub fn new(m: &Manifest) -> Self {
        let project = m.project.name.clone();
        let volumes = m
            .volumes
            .keys()
            .map(|v| names::volume(&project, v))
            .collect();
        let mut networks: BTreeSet<String> = m
            .networks
            .keys()
            .map(|n| names::network(&project, n))
            .collect();
        networks.insert(names::default_network(&project));
        ProjectFilter {
            project,
            volumes,
            networks,
        }
    }

    /// The event as the project's, or `None` when it is another's.
    pub fn accept(&self, event: EngineEvent) -> Option<ProjectEvent> {
        let name = event
            .attributes
            .get("name")
            .cloned()
            .unwrap_or_else(|| event.id.clone());
        let ours = match event.kind.as_str() {
            "container" => event.attributes.get(names::LABEL_PROJECT) == Some(&self.project),
            "network" => self.networks.contains(&name),
            // A restore's staging volume is named after the volume it stages.
            "volume" => {
                self.volumes.contains(&name)
                    || self
                        .volumes
                        .iter()
                        .any(|v| name.starts_with(&format!("{v}.sanctuary-tmp-")))
            }
            _ => false,
        };
        if !ours {
            return None;
        }
        let node = event.attributes.get(names::LABEL_NODE).cloned();
        Some(ProjectEvent {
            object: name,
            node,
            event,
        })
    }
}

/// One event of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEvent {
    /// The object's name (a container's, a volume's…).
    pub object: String,
    /// The node it realises, when its labels say.
    pub node: Option<String>,
    pub event: EngineEvent,
}

impl ProjectEvent {
    /// What the engine said beyond the labels: `exitCode`, `signal`, `image`… (labels are
    /// dotted keys, and the node is shown on its own).
    pub fn details(&self) -> BTreeMap<&str, &str> {
        self.event
            .attributes
            .iter()
            .filter(|(k, _)| !k.contains('.') && k.as_str() != "name")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// What a watch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Event(ProjectEvent),
    /// The engine's stream ended or failed (the reason); the watch keeps trying.
    Lost(String),
    /// The engine answers again; the watch resumed from the last event it saw.
    Back,
}

/// Watches the project's events from `since_nano` (now when `None`). With `until` (seconds
/// since the epoch), the stream ends there; without it, it goes on until dropped, across
/// the engine going away and coming back.
pub fn watch(
    backend: Arc<dyn Backend>,
    filter: ProjectFilter,
    since_nano: Option<i64>,
    until: Option<i64>,
) -> BoxStream<'static, Watched> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Watched>(64);
    tokio::spawn(async move {
        let mut since = since_nano;
        // Events at the `since` instant that were already passed on.
        let mut seen_at_since: HashSet<(String, String, String)> = HashSet::new();
        loop {
            let mut stream = backend.events(since, until);
            let mut lost = None;
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(e) => e,
                    Err(e) => {
                        lost = Some(e.to_string());
                        break;
                    }
                };
                tracing::debug!(kind = %event.kind, action = %event.action, "engine event");
                let key = (event.id.clone(), event.action.clone(), event.kind.clone());
                if since == Some(event.time_nano) && seen_at_since.contains(&key) {
                    continue;
                }
                if since != Some(event.time_nano) {
                    seen_at_since.clear();
                    since = Some(event.time_nano);
                }
                seen_at_since.insert(key);
                if let Some(ev) = filter.accept(event) {
                    if tx.send(Watched::Event(ev)).await.is_err() {
                        return;
                    }
                }
            }
            if until.is_some() && lost.is_none() {
                return;
            }
            let why = lost.unwrap_or_else(|| "the engine closed the event stream".into());
            if tx.send(Watched::Lost(why)).await.is_err() {
                return;
            }
            // Back when the engine answers a question again; the stream resumes from the
            // last event seen (or from when the watch started, if none was).
            let probe = LabelFilter::new().with(names::LABEL_PROJECT, filter.project.clone());
            loop {
                tokio::time::sleep(RETRY).await;
                if tx.is_closed() {
                    return;
                }
                if backend.list_containers(&probe, true).await.is_ok() {
                    break;
                }
            }
            if since.is_none() {
                since = Some(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0));
            }
            if tx.send(Watched::Back).await.is_err() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let vars = crate::manifest::interpolate::Vars::new(Default::default(), Default::default());
        crate::manifest::load_str(
            "Sanctuary.kdl",
            "project \"p\"\nvolume \"data\"\nnetwork \"back\"\n",
            std::path::Path::new("/p/Sanctuary.kdl"),
            std::path::Path::new("/p"),
            &vars,
        )
        .expect("valid manifest")
        .manifest
    }

    fn event(kind: &str, attrs: &[(&str, &str)]) -> EngineEvent {
        EngineEvent {
            kind: kind.into(),
            action: "create".into(),
            id: "abc".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_nano: 1,
        }
    }

    #[test]
    fn only_the_projects_objects_are_its_events() {
        let f = ProjectFilter::new(&manifest());
        let ours = f
            .accept(event(
                "container",
                &[
                    ("sanctuary.project", "p"),
                    ("sanctuary.node", "service web"),
                    ("name", "p-web"),
                    ("exitCode", "3"),
                ],
            ))
            .unwrap();
        assert_eq!(ours.object, "p-web");
        assert_eq!(ours.node.as_deref(), Some("service web"));
        assert_eq!(
            ours.details().into_iter().collect::<Vec<_>>(),
            [("exitCode", "3")]
        );
        assert!(f
            .accept(event("container", &[("sanctuary.project", "p2")]))
            .is_none());
        assert!(f.accept(event("container", &[("name", "p-web")])).is_none());
        for (kind, name) in [
            ("volume", "p-data"),
            ("volume", "p-data.sanctuary-tmp-12-staging"),
            ("network", "p-back"),
            ("network", "p-default"),
        ] {
            assert!(f.accept(event(kind, &[("name", name)])).is_some(), "{name}");
        }
        for (kind, name) in [
            ("volume", "p-other"),
            ("network", "p-backend"),
            ("image", "p-bb"),
        ] {
            assert!(f.accept(event(kind, &[("name", name)])).is_none(), "{name}");
        }
    }
}
