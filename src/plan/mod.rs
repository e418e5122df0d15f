//! Planning: compare what the manifest wants ([`desired`]) with what Docker holds (observed by
//! label) and decide, per node, an action and its reasons — as Terraform's plan does.
//!
//! The plan is for people (`render`), for machines (`--json`) and for `apply FILE`, which
//! re-plans and refuses when the result differs from the saved plan (reality moved).

pub mod desired;
pub mod diff;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{names, Backend, BackendError, ContainerState, LabelFilter};
use crate::fingerprint::salt::Salt;
use crate::graph::Graph;
use crate::manifest::{Kind, Manifest, NodeId};

/// What apply will do to one node or object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Build,
    Pull,
    Replace,
    Start,
    Run,
    Delete,
    UpToDate,
}

impl Action {
    pub fn is_change(self) -> bool {
        self != Action::UpToDate
    }

    fn symbol(self) -> &'static str {
        match self {
            Action::Create | Action::Build | Action::Pull => "+",
            Action::Replace => "~",
            Action::Start | Action::Run => ">",
            Action::Delete => "-",
            Action::UpToDate => "=",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Build => "build",
            Action::Pull => "pull",
            Action::Replace => "replace",
            Action::Start => "start",
            Action::Run => "run",
            Action::Delete => "delete",
            Action::UpToDate => "up to date",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One line of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `service.omega`, or for an orphan the Docker object (`container voidcat-old`).
    pub node: String,
    pub action: Action,
    pub reasons: Vec<String>,
    /// The Docker object's name.
    pub object: String,
    /// The fingerprint apply will record (empty for orphans and tasks).
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub project: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Desired(#[from] desired::DesiredError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Task(String),
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.action.is_change())
    }

    /// Counts per action, in a fixed order.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut c = BTreeMap::new();
        for s in &self.steps {
            *c.entry(s.action).or_insert(0) += 1;
        }
        c
    }

    /// `Plan: 1 to create, 2 to replace, 5 up to date.`
    pub fn summary_line(&self) -> String {
        let counts = self.counts();
        if !self.has_changes() {
            return format!(
                "No changes: {} up to date.",
                counts.get(&Action::UpToDate).unwrap_or(&0)
            );
        }
        let parts: Vec<String> = counts
            .iter()
            .map(|(a, n)| match a {
                Action::UpToDate => format!("{n} up to date"),
                Action::Run => format!("{n} to run"),
                other => format!("{n} to {}", other.word()),
            })
            .collect();
        format!("Plan: {}.", parts.join(", "))
    }

    /// The plan for people: one line per node, reasons indented below.
    pub fn render(&self, show_up_to_date: bool) -> String {
        let width = self.steps.iter().map(|s| s.node.len()).max().unwrap_or(0);
        let mut out = String::new();
        for s in &self.steps {
            if !show_up_to_date && !s.action.is_change() {
                continue;
            }
            let first = s
                .reasons
                .first()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if s.reasons.len() <= 1 {
                out.push_str(&format!(
                    "  {} {:<width$}  {}{first}\n",
                    s.action.symbol(),
                    s.node,
                    s.action
                ));
            } else {
                out.push_str(&format!(
                    "  {} {:<width$}  {}\n",
                    s.action.symbol(),
                    s.node,
                    s.action
                ));
                for r in &s.reasons {
                    out.push_str(&format!("  {:<width$}      · {r}\n", ""));
                }
            }
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// The changes only, for comparing a saved plan with a fresh one.
    pub fn changes(&self) -> Vec<(&str, Action, &str)> {
        self.steps
            .iter()
            .filter(|s| s.action.is_change())
            .map(|s| (s.node.as_str(), s.action, s.fingerprint.as_str()))
            .collect()
    }
}

/// The nodes `apply` realises for these targets (all of them when empty): images, volumes,
/// networks and services, plus the tasks they depend on (a task that prepares an image's
/// context). Tests, backups and syncs have commands of their own.
pub fn apply_graph(m: &Manifest, targets: &[NodeId]) -> Graph {
    let graph = Graph::from_manifest(m);
    let infra = |k: Kind| {
        matches!(
            k,
            Kind::Image | Kind::Volume | Kind::Network | Kind::Service
        )
    };
    let roots: Vec<NodeId> = if targets.is_empty() {
        graph
            .nodes()
            .iter()
            .filter(|n| infra(n.kind))
            .cloned()
            .collect()
    } else {
        targets.to_vec()
    };
    graph
        .select(&roots)
        .filter(|n| infra(n.kind) || n.kind == Kind::Task)
}

/// Where the previous public spec of a node comes from (the state store), for reasons.
pub type PriorSpec<'a> = &'a (dyn Fn(&NodeId) -> Option<Value> + Sync);

/// Plans `graph` (from [`apply_graph`]) against what `backend` holds. Orphans (objects
/// labelled with the project that the manifest no longer declares) are deleted only when the
/// whole project is planned (`orphans`).
pub async fn make(
    m: &Manifest,
    backend: &dyn Backend,
    graph: &Graph,
    salt: &Salt,
    prior: PriorSpec<'_>,
    tasks: &crate::run::TaskExecutor,
    orphans: bool,
) -> Result<Plan, PlanError> {
    let project = &m.project.name;
    let filter = LabelFilter::new().with(names::LABEL_PROJECT, project.clone());
    // Everything observed is asked for at once: a no-op plan is mostly waiting on the daemon.
    let containers: Vec<String> = graph
        .nodes()
        .iter()
        .filter(|n| n.kind == Kind::Service)
        .map(|n| names::container(project, &n.name))
        .collect();
    let mut images = BTreeMap::new();
    for id in graph.nodes().iter().filter(|n| n.kind == Kind::Image) {
        images.insert(id.name.clone(), desired::image(m, &id.name)?);
    }
    let (volumes, networks, inspected, present) = futures_util::join!(
        backend.list_volumes(&filter),
        backend.list_networks(&filter),
        futures_util::future::join_all(containers.iter().map(|c| backend.inspect_container(c))),
        futures_util::future::join_all(images.values().map(|d| backend.inspect_image(&d.tag))),
    );
    let mut present_images = BTreeMap::new();
    for (name, info) in images.keys().zip(present) {
        present_images.insert(name.clone(), info?.is_some());
    }
    let volumes: BTreeSet<String> = volumes?.into_iter().map(|v| v.name).collect();
    let networks = networks?;
    let network_names: BTreeSet<&str> = networks.iter().map(|n| n.name.as_str()).collect();
    let mut observed_containers = BTreeMap::new();
    for (name, info) in containers.into_iter().zip(inspected) {
        observed_containers.insert(name, info?);
    }

    let mut steps = Vec::new();
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    let order = graph
        .topo_order()
        .unwrap_or_else(|| (0..graph.len()).collect());
    for i in order {
        let id = graph.node(i);
        let step = match id.kind {
            Kind::Task => {
                let (action, reasons) = match tasks.check(id).map_err(PlanError::Task)? {
                    Some(reasons) => (Action::Run, reasons),
                    None => (Action::UpToDate, vec![]),
                };
                Step {
                    node: id.to_string(),
                    action,
                    reasons,
                    object: String::new(),
                    fingerprint: String::new(),
                }
            }
            Kind::Image => {
                let Some(d) = images.remove(&id.name) else {
                    continue;
                };
                tags.insert(id.name.clone(), d.tag.clone());
                let present = present_images.get(&id.name).copied().unwrap_or(false);
                let (action, reasons) = match (&d.build, present) {
                    (_, true) => (Action::UpToDate, vec![]),
                    (Some(_), false) => (Action::Build, vec![format!("no image {}", d.tag)]),
                    (None, false) => (
                        Action::Pull,
                        vec![format!("{} is not present locally", d.tag)],
                    ),
                };
                Step {
                    node: id.to_string(),
                    action,
                    reasons,
                    object: d.tag,
                    fingerprint: d.fingerprint,
                }
            }
            Kind::Volume => {
                let name = names::volume(project, &id.name);
                let action = if volumes.contains(&name) {
                    Action::UpToDate
                } else {
                    Action::Create
                };
                Step {
                    node: id.to_string(),
                    action,
                    reasons: vec![],
                    object: name,
                    fingerprint: String::new(),
                }
            }
            Kind::Network => {
                let name = names::network(project, &id.name);
                let action = if network_names.contains(name.as_str()) {
                    Action::UpToDate
                } else {
                    Action::Create
                };
                Step {
                    node: id.to_string(),
                    action,
                    reasons: vec![],
                    object: name,
                    fingerprint: String::new(),
                }
            }
            Kind::Service => {
                let svc = &m.services[&id.name];
                let tag = desired::image_tag(&svc.image, &tags).unwrap_or_default();
                let d = desired::container(m, svc, &tag, salt)?;
                let observed = observed_containers.remove(&d.spec.name).flatten();
                let (action, reasons) = match observed {
                    None => (Action::Create, vec![]),
                    Some(c) if c.labels.get(names::LABEL_PROJECT) != Some(project) => (
                        Action::Replace,
                        vec![format!(
                            "a container named {} exists that this project does not own",
                            d.spec.name
                        )],
                    ),
                    Some(c) if c.labels.get(names::LABEL_FINGERPRINT) != Some(&d.fingerprint) => {
                        let reasons = match prior(id) {
                            Some(old) => diff::reasons(&old, &d.public),
                            None => vec![],
                        };
                        let reasons = if reasons.is_empty() {
                            vec!["configuration changed".to_string()]
                        } else {
                            reasons
                        };
                        (Action::Replace, reasons)
                    }
                    Some(c) if c.state == ContainerState::Running => (Action::UpToDate, vec![]),
                    Some(c) => (
                        Action::Start,
                        vec![format!("exists, {}", state_word(c.state))],
                    ),
                };
                Step {
                    node: id.to_string(),
                    action,
                    reasons,
                    object: d.spec.name,
                    fingerprint: d.fingerprint,
                }
            }
            _ => continue,
        };
        steps.push(step);
    }

    if orphans {
        let declared: BTreeSet<String> = m.node_ids().iter().map(|n| n.to_string()).collect();
        for c in backend.list_containers(&filter, true).await? {
            let node = names::node_of(&c.labels).unwrap_or("");
            if !declared.contains(node) {
                steps.push(Step {
                    node: format!("container {}", c.name),
                    action: Action::Delete,
                    reasons: vec![format!(
                        "{} is no longer declared",
                        if node.is_empty() { "it" } else { node }
                    )],
                    object: c.name,
                    fingerprint: String::new(),
                });
            }
        }
        let default = names::default_network(project);
        let needs_default = m.services.values().any(|s| s.networks.is_empty());
        for n in &networks {
            let node = names::node_of(&n.labels).unwrap_or("");
            let still = declared.contains(node) || (n.name == default && needs_default);
            if !still {
                steps.push(Step {
                    node: format!("network {}", n.name),
                    action: Action::Delete,
                    reasons: vec!["no longer declared".to_string()],
                    object: n.name.clone(),
                    fingerprint: String::new(),
                });
            }
        }
    }
    Ok(Plan {
        project: project.clone(),
        steps,
    })
}

fn state_word(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created, never started",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "stopped",
        ContainerState::Dead => "dead",
        _ => "not running",
    }
}

/// Why a service whose container already matches the manifest is to be replaced anyway: the
/// last apply failed on it (it never became ready), or was interrupted after creating it and
/// before recording it (the record still holds an older fingerprint). `None` when the state store has nothing against it — a missing record
/// is not a reason, so losing the state store does not recreate every container.
pub fn retry_reason(
    record: Option<&crate::state::NodeRecord>,
    fingerprint: &str,
) -> Option<String> {
    let record = record?;
    match &record.result {
        // A failure keeps the fingerprint realised before it, so it is not compared here.
        crate::state::RecordResult::Failed { message } => {
            let first = message.lines().next().unwrap_or_default();
            Some(format!("the last apply failed: {first}"))
        }
        _ if record.fingerprint != fingerprint => {
            Some("the last apply was interrupted before it finished".to_string())
        }
        _ => None,
    }
}

/// Marks services that [`retry_reason`] says must be tried again as replacements.
pub fn retry_unfinished(plan: &mut Plan, state: &crate::state::StateFile) {
    for step in &mut plan.steps {
        let Some(name) = step.node.strip_prefix("service.") else {
            continue;
        };
        if !matches!(step.action, Action::UpToDate | Action::Start) {
            continue;
        }
        if let Some(reason) = retry_reason(state.get("service", name), &step.fingerprint) {
            step.action = Action::Replace;
            step.reasons = vec![reason];
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;
    use crate::state::{NodeRecord, RecordResult};

    fn record(fingerprint: &str, result: RecordResult) -> NodeRecord {
        NodeRecord {
            kind: "service".into(),
            name: "web".into(),
            fingerprint: fingerprint.into(),
            spec: Value::Null,
            finished_at: chrono::Utc::now(),
            result,
        }
    }

    #[test]
    fn failed_or_interrupted_services_are_retried_and_finished_ones_are_not() {
        let failed = record(
            "old",
            RecordResult::Failed {
                message: "did not become healthy\n  last output".into(),
            },
        );
        assert_eq!(
            retry_reason(Some(&failed), "new").as_deref(),
            Some("the last apply failed: did not become healthy")
        );
        let interrupted = record("old", RecordResult::Ran);
        assert!(retry_reason(Some(&interrupted), "new")
            .unwrap()
            .contains("interrupted"));
        assert_eq!(
            retry_reason(Some(&record("new", RecordResult::Ran)), "new"),
            None
        );
        assert_eq!(retry_reason(None, "new"), None);
    }
}
