//! Making a [`Plan`] for a [`Selection`]: compute what each selected node wants, observe
//! what the engine holds in a few batched requests (a no-op plan is mostly waiting on the
//! daemon), and decide every node in dependency order with [`decide`]. Orphans and teardown
//! become steps too, ordered so names and ports are freed before they are taken again.

use std::collections::{BTreeMap, BTreeSet};

use super::selection::Selection;
use super::session::Session;
use crate::backend::{names, Backend, ContainerInfo, ContainerListing, LabelFilter, ObjectListing};
use crate::error::Result;
use crate::executors::{task, test};
use crate::graph::Graph;
use crate::manifest::{BackupSource, ImageRef, Kind, Manifest, NodeId, SyncTarget};
use crate::plan::desired::{self, DesiredImage};
use crate::plan::{
    decide, Action, Case, Last, ObjectKind, Plan, PlanError, Prepared, Step, Subject,
};

/// What the engine holds, as far as the plan needs to know.
#[derive(Default)]
struct Observed {
    /// By container name; `None` when absent.
    containers: BTreeMap<String, Option<ContainerInfo>>,
    /// By image tag.
    images: BTreeMap<String, bool>,
    volumes: BTreeSet<String>,
    networks: Vec<ObjectListing>,
    /// Every container labelled with the project, for orphans.
    listed: Vec<ContainerListing>,
}

fn project_filter(project: &str) -> LabelFilter {
    LabelFilter::new().with(names::LABEL_PROJECT, project)
}

/// Plans `selection`.
pub async fn plan(session: &Session, selection: &Selection) -> Result<Plan> {
    if let Selection::Destroy { volumes, images } = selection {
        return teardown(session, *volumes, *images).await;
    }
    let m = &session.manifest;
    let graph = Graph::from_manifest(m);
    let sub = selection.subgraph(m, &graph);
    let orphans = selection.removes_orphans();
    let explicit_syncs = matches!(selection, Selection::Syncs { .. });
    let stack = sub.nodes().iter().any(|n| {
        matches!(
            n.kind,
            Kind::Image | Kind::Volume | Kind::Network | Kind::Service
        )
    });
    if stack || orphans {
        session.preconnect();
    }

    // What the images want is known from their contexts alone; hash them before asking the
    // engine anything. A service selected without its image still needs the image's tag.
    let mut images: BTreeMap<String, DesiredImage> = BTreeMap::new();
    let mut wanted_images: BTreeSet<String> = sub
        .nodes()
        .iter()
        .filter(|n| n.kind == Kind::Image)
        .map(|n| n.name.clone())
        .collect();
    for id in sub.nodes().iter().filter(|n| n.kind == Kind::Service) {
        if let ImageRef::Declared(img) = &m.services[&id.name].image {
            wanted_images.insert(img.clone());
        }
    }
    for name in &wanted_images {
        let d = desired::image(m, name, &mut session.stat()).map_err(PlanError::from)?;
        images.insert(name.clone(), d);
    }

    let observed = if stack || orphans {
        let backend = session.backend().await?;
        observe(backend.as_ref(), m, &sub, &images, orphans).await?
    } else {
        Observed::default()
    };

    let order = sub.topo_order().unwrap_or_else(|| (0..sub.len()).collect());
    let mut steps: Vec<Step> = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut step_of: BTreeMap<usize, usize> = BTreeMap::new();
    for i in order {
        let id = sub.node(i).clone();
        let (step, prep) = node_step(session, &id, &images, &observed, &steps, explicit_syncs)?;
        step_of.insert(i, steps.len());
        steps.push(step);
        prepared.push(prep);
    }
    // Order between selected nodes follows the graph.
    for (i, &s) in &step_of {
        let mut waits: Vec<usize> = sub
            .dependencies(*i)
            .iter()
            .filter_map(|e| step_of.get(&e.to).copied())
            .collect();
        waits.sort_unstable();
        steps[s].waits_for = waits;
    }
    // A sync pass into a service that is (re)created here, or a volume created here, has
    // work to do whatever the host side says.
    for i in 0..steps.len() {
        let is_sync = matches!(steps[i].subject.node(), Some(n) if n.kind == Kind::Sync);
        if !is_sync || steps[i].action.is_change() {
            continue;
        }
        if let Some(dep) = steps[i]
            .waits_for
            .iter()
            .find(|&&d| steps[d].action.is_change())
        {
            let why = format!("{} changes in this run", steps[*dep].node);
            steps[i].action = Action::Run;
            steps[i].reasons = vec![why];
        }
    }
    if orphans {
        add_orphans(m, &observed, &mut steps, &mut prepared);
    }
    Ok(Plan {
        project: m.project.name.clone(),
        steps,
        prepared,
    })
}

/// Everything observed at once.
async fn observe(
    backend: &dyn Backend,
    m: &Manifest,
    sub: &Graph,
    images: &BTreeMap<String, DesiredImage>,
    orphans: bool,
) -> std::result::Result<Observed, PlanError> {
    let project = &m.project.name;
    let filter = project_filter(project);
    let containers: Vec<String> = sub
        .nodes()
        .iter()
        .filter(|n| n.kind == Kind::Service)
        .map(|n| names::container(project, &n.name))
        .collect();
    let tags: Vec<String> = images.values().map(|d| d.tag.clone()).collect();
    let listed = async {
        if orphans {
            backend.list_containers(&filter, true).await
        } else {
            Ok(Vec::new())
        }
    };
    let (volumes, networks, inspected, present, listed) = futures_util::join!(
        backend.list_volumes(&filter),
        backend.list_networks(&filter),
        futures_util::future::join_all(containers.iter().map(|c| backend.inspect_container(c))),
        futures_util::future::join_all(tags.iter().map(|t| backend.inspect_image(t))),
        listed,
    );
    let mut o = Observed {
        volumes: volumes?.into_iter().map(|v| v.name).collect(),
        networks: networks?,
        listed: listed?,
        ..Observed::default()
    };
    for (name, info) in containers.into_iter().zip(inspected) {
        o.containers.insert(name, info?);
    }
    for (tag, info) in tags.into_iter().zip(present) {
        o.images.insert(tag, info?.is_some());
    }
    Ok(o)
}

fn node_step(
    session: &Session,
    id: &NodeId,
    images: &BTreeMap<String, DesiredImage>,
    observed: &Observed,
    earlier: &[Step],
    explicit_syncs: bool,
) -> Result<(Step, Prepared)> {
    let m = &session.manifest;
    let project = &m.project.name;
    let mut step = Step {
        node: Subject::Node { id: id.clone() }.label(),
        subject: Subject::Node { id: id.clone() },
        action: Action::UpToDate,
        reasons: Vec::new(),
        object: String::new(),
        fingerprint: String::new(),
        waits_for: Vec::new(),
    };
    let mut prep = Prepared::Nothing;
    let decision = match id.kind {
        Kind::Image => {
            let d = &images[&id.name];
            let present = observed.images.get(&d.tag).copied().unwrap_or(false);
            let mut decision = decide(Case::Image {
                desired: d,
                present,
            });
            // Say what changed in the context rather than only that the tag is new.
            if decision.action == Action::Build {
                if let Some(last) = session.last_key(id) {
                    let changes: Vec<String> = crate::fingerprint::Key::diff(&last, &d.key)
                        .iter()
                        .map(|c| c.to_string())
                        .collect();
                    if !changes.is_empty() {
                        decision.reasons = changes;
                    }
                }
            }
            step.object = d.tag.clone();
            step.fingerprint = d.fingerprint.clone();
            prep = Prepared::Image(Box::new(d.clone()));
            decision
        }
        Kind::Volume | Kind::Network => {
            let (name, exists) = if id.kind == Kind::Volume {
                let name = names::volume(project, &id.name);
                let exists = observed.volumes.contains(&name);
                (name, exists)
            } else {
                let name = names::network(project, &id.name);
                let exists = observed.networks.iter().any(|n| n.name == name);
                (name, exists)
            };
            step.object = name;
            step.fingerprint = desired::named_key(m, id).fingerprint();
            decide(Case::Named { exists })
        }
        Kind::Service => {
            let svc = &m.services[&id.name];
            let (tag, image_fp) = match &svc.image {
                ImageRef::Declared(n) => {
                    (images[n].tag.clone(), Some(images[n].fingerprint.clone()))
                }
                ImageRef::External(r) => (r.clone(), None),
            };
            let d = desired::container(m, svc, &tag, image_fp.as_deref(), &session.salt)
                .map_err(PlanError::from)?;
            let record = session.record_of("service", &id.name);
            let observed_c = observed
                .containers
                .get(&d.spec.name)
                .and_then(|c| c.as_ref());
            let mut decision = decide(Case::Service {
                desired: &d,
                observed: observed_c,
                record: record.as_ref(),
                last: Last {
                    fingerprint: None,
                    load: Box::new(|| session.last_key(id)),
                },
            });
            explain_dependencies(&mut decision.reasons, earlier);
            step.object = d.spec.name.clone();
            step.fingerprint = d.fingerprint.clone();
            prep = Prepared::Service(Box::new(d));
            decision
        }
        Kind::Task => {
            let key = task::key(session, id).map_err(PlanError::Task)?;
            let fp = key.fingerprint();
            session.note_fingerprint(id, fp.clone());
            let decision = decide(Case::Task {
                key: &key,
                fingerprint: &fp,
                last: session.last(id),
                missing_outputs: task::missing_outputs(m, &m.tasks[&id.name]),
                force: session.options.force,
            });
            step.fingerprint = fp;
            prep = Prepared::Key(Box::new(key));
            decision
        }
        Kind::Test => {
            let t = &m.tests[&id.name];
            // A test against services this run changes will see new containers: it runs.
            let changing: Vec<String> = test::needed_services(t)
                .into_iter()
                .filter(|svc| {
                    earlier.iter().any(|s| {
                        s.action.is_change()
                            && s.subject.node() == Some(&NodeId::new(Kind::Service, svc))
                    })
                })
                .collect();
            let identities = test::identities_from(m, t, |name| {
                observed.containers.get(name).cloned().flatten()
            });
            let tags = |img: &ImageRef| match img {
                ImageRef::Declared(n) => images
                    .get(n)
                    .map(|d| d.tag.clone())
                    .ok_or_else(|| format!("image `{n}` is not planned")),
                ImageRef::External(r) => Ok(r.clone()),
            };
            let key = test::key(session, t, &identities, &tags).map_err(PlanError::Task)?;
            let fp = key.fingerprint();
            session.note_fingerprint(id, fp.clone());
            let decision = if changing.is_empty() {
                decide(Case::Test {
                    key: &key,
                    fingerprint: &fp,
                    last: session.last(id),
                    no_cache: session.options.no_cache,
                })
            } else {
                decide(Case::Always {
                    action: Action::Run,
                    reasons: changing
                        .iter()
                        .map(|s| format!("service.{s} changes in this run"))
                        .collect(),
                })
            };
            step.fingerprint = fp;
            prep = Prepared::Key(Box::new(key));
            decision
        }
        Kind::Backup => {
            let b = &m.backups[&id.name];
            step.fingerprint = desired::backup_key(b).fingerprint();
            let what = match &b.source {
                BackupSource::Volume(v) => format!("snapshot of volume {v}"),
                BackupSource::Path(p) => format!("snapshot of {}", p.display()),
            };
            decide(Case::Always {
                action: Action::Run,
                reasons: vec![what],
            })
        }
        Kind::Sync if !explicit_syncs => {
            // Part of an apply: a pass when the host side has something to carry in (or a
            // step it waits for changes, below); the container side is left to `sync`.
            let s = &m.syncs[&id.name];
            step.fingerprint = desired::sync_key(s).fingerprint();
            let pending = crate::sync::target::host_pending(m, s).map_err(PlanError::Task)?;
            match pending {
                Some(reason) => decide(Case::Always {
                    action: Action::Run,
                    reasons: vec![reason],
                }),
                None => decide(Case::Always {
                    action: Action::UpToDate,
                    reasons: Vec::new(),
                }),
            }
        }
        Kind::Sync => {
            let s = &m.syncs[&id.name];
            step.fingerprint = desired::sync_key(s).fingerprint();
            let to = match &s.target {
                SyncTarget::Volume { name, path } => format!("volume {name}:{path}"),
                SyncTarget::Service { name, path } => format!("service {name}:{path}"),
            };
            let mode = if session.options.dry_run {
                " (dry run)"
            } else {
                ""
            };
            decide(Case::Always {
                action: Action::Run,
                reasons: vec![format!("pass {} ↔ {to}{mode}", s.host.display())],
            })
        }
        Kind::Secret => decide(Case::Always {
            action: Action::UpToDate,
            reasons: Vec::new(),
        }),
    };
    step.action = decision.action;
    step.reasons = decision.reasons;
    Ok((step, prep))
}

/// A service replaced because its image changed says how the image changed, instead of the
/// two new tags and a changed dependency fingerprint.
fn explain_dependencies(reasons: &mut Vec<String>, earlier: &[Step]) {
    let mut explained = false;
    for r in reasons.iter_mut() {
        let Some(name) = r
            .strip_prefix("dependency ")
            .and_then(|rest| rest.strip_suffix(" changed"))
        else {
            continue;
        };
        if let Some(dep) = earlier.iter().find(|s| s.node == name) {
            *r = if dep.reasons.is_empty() {
                format!("{name} changed")
            } else {
                format!("{name} changed: {}", dep.reasons.join("; "))
            };
            explained = true;
        }
    }
    if explained {
        reasons.retain(|r| !r.starts_with("image changed: "));
    }
}

/// Deletes of what the project's labels hold and the manifest no longer declares. Services
/// wait for the old containers to go (they may hold the same host ports); networks go last,
/// once nothing is attached to them.
fn add_orphans(m: &Manifest, o: &Observed, steps: &mut Vec<Step>, prepared: &mut Vec<Prepared>) {
    let declared: BTreeSet<String> = m.node_ids().iter().map(|n| n.to_string()).collect();
    let mut container_deletes = Vec::new();
    for c in &o.listed {
        let node = names::node_of(&c.labels).unwrap_or("");
        // A helper another sanctuary still works with (a sync watch's) is its own to remove.
        if declared.contains(node) || names::owner_alive(&c.labels) {
            continue;
        }
        let why = if node.is_empty() {
            "it is no longer declared".to_string()
        } else {
            format!("{node} is no longer declared")
        };
        container_deletes.push(steps.len());
        steps.push(object_step(ObjectKind::Container, &c.name, node, why));
        prepared.push(Prepared::Nothing);
    }
    let services: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.subject.node(), Some(n) if n.kind == Kind::Service))
        .map(|(i, _)| i)
        .collect();
    for &i in &services {
        steps[i].waits_for.extend(container_deletes.iter().copied());
    }
    let default = names::default_network(&m.project.name);
    let needs_default = m.services.values().any(|s| s.networks.is_empty());
    for n in &o.networks {
        let node = names::node_of(&n.labels).unwrap_or("");
        if declared.contains(node) || (n.name == default && needs_default) {
            continue;
        }
        let mut step = object_step(
            ObjectKind::Network,
            &n.name,
            node,
            "no longer declared".into(),
        );
        step.waits_for = container_deletes.iter().chain(&services).copied().collect();
        steps.push(step);
        prepared.push(Prepared::Nothing);
    }
}

fn object_step(kind: ObjectKind, name: &str, node: &str, reason: String) -> Step {
    let subject = Subject::Object {
        kind,
        name: name.to_string(),
        node: (!node.is_empty()).then(|| node.to_string()),
    };
    Step {
        node: subject.label(),
        subject,
        action: Action::Delete,
        reasons: vec![reason],
        object: name.to_string(),
        fingerprint: String::new(),
        waits_for: Vec::new(),
    }
}

/// `destroy`: every container of the project, then its networks; with `volumes`, a verified
/// backup of each volume a backup node reads, then the volumes — none of them unless every
/// backup held; with `images`, the images.
async fn teardown(session: &Session, volumes: bool, images: bool) -> Result<Plan> {
    let m = &session.manifest;
    let project = &m.project.name;
    let backend = session.backend().await?;
    let filter = project_filter(project);
    let (containers, networks, vols, imgs) = futures_util::join!(
        backend.list_containers(&filter, true),
        backend.list_networks(&filter),
        async {
            if volumes {
                backend.list_volumes(&filter).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if images {
                backend.list_images(&filter).await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let (containers, networks, vols, imgs) = (containers?, networks?, vols?, imgs?);
    let mut steps = Vec::new();
    let removal = |kind, name: &str, node: Option<&str>| {
        object_step(kind, name, node.unwrap_or(""), "destroy".to_string())
    };
    for c in &containers {
        steps.push(removal(
            ObjectKind::Container,
            &c.name,
            names::node_of(&c.labels),
        ));
    }
    let gone: Vec<usize> = (0..steps.len()).collect();
    for n in &networks {
        let mut s = removal(ObjectKind::Network, &n.name, names::node_of(&n.labels));
        s.waits_for = gone.clone();
        steps.push(s);
    }
    // Data goes only after a fresh, fully verified backup of every volume a backup node
    // reads; the containers are gone by then, so nothing writes meanwhile.
    let mut backups = Vec::new();
    let mut seen = BTreeSet::new();
    for b in m.backups.values() {
        let BackupSource::Volume(v) = &b.source else {
            continue;
        };
        let name = names::volume(project, v);
        if !vols.iter().any(|x| x.name == name) || !seen.insert(v.clone()) {
            continue;
        }
        let id = NodeId::new(Kind::Backup, &b.name);
        backups.push(steps.len());
        steps.push(Step {
            node: Subject::Node { id: id.clone() }.label(),
            subject: Subject::Node { id },
            action: Action::VerifiedBackup,
            reasons: vec![format!("volume {v} is deleted next")],
            object: name,
            fingerprint: desired::backup_key(b).fingerprint(),
            waits_for: gone.clone(),
        });
    }
    for v in &vols {
        let mut s = removal(ObjectKind::Volume, &v.name, names::node_of(&v.labels));
        s.waits_for = gone.iter().chain(&backups).copied().collect();
        steps.push(s);
    }
    // Images go once nothing runs from them; the backups above may build the helper image
    // they read volumes with, so it is removed by name after them even if absent now.
    let helper = crate::backend::helper::helper_image(project);
    let mut helper_listed = false;
    for i in &imgs {
        let node = names::node_of(&i.labels);
        let mut s = removal(ObjectKind::Image, &i.id, node);
        if let Some(tag) = i.tags.first() {
            s.node = format!("image {tag}");
        }
        helper_listed |= i.tags.contains(&helper);
        s.waits_for = gone.iter().chain(&backups).copied().collect();
        steps.push(s);
    }
    if images && !helper_listed && !backups.is_empty() {
        let mut s = removal(ObjectKind::Image, &helper, None);
        s.waits_for = gone.iter().chain(&backups).copied().collect();
        steps.push(s);
    }
    let prepared = vec![Prepared::Nothing; steps.len()];
    Ok(Plan {
        project: project.clone(),
        steps,
        prepared,
    })
}
