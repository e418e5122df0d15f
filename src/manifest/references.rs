//! The references between nodes: every `depends-on` entry and every implied use (a service
//! uses its image, volumes, networks and secrets; a test needs services; a backup reads a
//! volume; a sync writes into a volume or service). The one place that knows which parts of
//! a node point at another: the graph is built from these, and cycles are reported on them.

use serde::Serialize;

use super::model::*;

/// Why one node depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// Declared with `depends-on`, waiting for this condition.
    DependsOn(Condition),
    /// Implied by a reference (image, volume, network, secret, needs…).
    Uses,
}

/// One node pointing at another.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub from: NodeId,
    pub to: NodeId,
    pub kind: EdgeKind,
    /// Where a `depends-on` entry names the target; `None` for implied uses.
    pub span: Option<Span>,
}

impl Manifest {
    /// Every reference, in declaration order. A node may reference another more than once
    /// (`depends-on` and a mount of the same volume); the graph keeps the stronger edge.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        let mut uses = |from: &NodeId, to: NodeId| {
            out.push(Reference {
                from: from.clone(),
                to,
                kind: EdgeKind::Uses,
                span: None,
            })
        };
        let image = |r: &ImageRef| match r {
            ImageRef::Declared(n) => Some(NodeId::new(Kind::Image, n.clone())),
            ImageRef::External(_) => None,
        };
        let mut declared: Vec<Reference> = Vec::new();
        let mut depends = |from: &NodeId, deps: &[Dependency]| {
            declared.extend(deps.iter().map(|d| Reference {
                from: from.clone(),
                to: d.node.clone(),
                kind: EdgeKind::DependsOn(d.condition),
                span: Some(d.span),
            }))
        };

        for i in self.images.values() {
            depends(&NodeId::new(Kind::Image, &i.name), &i.depends_on);
        }
        for s in self.services.values() {
            let me = NodeId::new(Kind::Service, &s.name);
            depends(&me, &s.depends_on);
            if let Some(img) = image(&s.image) {
                uses(&me, img);
            }
            for mnt in &s.mounts {
                if let MountSource::Volume(v) = &mnt.source {
                    uses(&me, NodeId::new(Kind::Volume, v));
                }
            }
            for n in &s.networks {
                uses(&me, NodeId::new(Kind::Network, &n.network));
            }
            for se in &s.secret_env {
                uses(&me, NodeId::new(Kind::Secret, &se.secret));
            }
            for sf in &s.secret_files {
                uses(&me, NodeId::new(Kind::Secret, &sf.secret));
            }
        }
        for t in self.tasks.values() {
            let me = NodeId::new(Kind::Task, &t.name);
            depends(&me, &t.depends_on);
            if let Some(img) = t.image.as_ref().and_then(image) {
                uses(&me, img);
            }
            for se in &t.secret_env {
                uses(&me, NodeId::new(Kind::Secret, &se.secret));
            }
            for sf in &t.secret_files {
                uses(&me, NodeId::new(Kind::Secret, &sf.secret));
            }
        }
        for t in self.tests.values() {
            let me = NodeId::new(Kind::Test, &t.name);
            depends(&me, &t.depends_on);
            for sf in &t.secret_files {
                uses(&me, NodeId::new(Kind::Secret, &sf.secret));
            }
            match &t.check {
                TestCheck::Command {
                    image: Some(img), ..
                } => {
                    if let Some(img) = image(img) {
                        uses(&me, img);
                    }
                }
                TestCheck::Exec { service, .. } => {
                    uses(&me, NodeId::new(Kind::Service, service));
                }
                _ => {}
            }
        }
        for b in self.backups.values() {
            let me = NodeId::new(Kind::Backup, &b.name);
            depends(&me, &b.depends_on);
            if let BackupSource::Volume(v) = &b.source {
                uses(&me, NodeId::new(Kind::Volume, v));
            }
        }
        for s in self.syncs.values() {
            let me = NodeId::new(Kind::Sync, &s.name);
            depends(&me, &s.depends_on);
            match &s.target {
                SyncTarget::Volume { name, .. } => uses(&me, NodeId::new(Kind::Volume, name)),
                SyncTarget::Service { name, .. } => uses(&me, NodeId::new(Kind::Service, name)),
            }
        }
        // `needs` is a declared wait for a started service, written without `depends-on`.
        for t in self.tests.values() {
            let me = NodeId::new(Kind::Test, &t.name);
            for n in &t.needs {
                declared.push(Reference {
                    from: me.clone(),
                    to: NodeId::new(Kind::Service, n),
                    kind: EdgeKind::DependsOn(Condition::Started),
                    span: None,
                });
            }
        }
        declared.extend(out);
        declared
    }
}
