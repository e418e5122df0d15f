//! Which part of the graph a command walks. Every command is a selection — some roots and
//! everything they depend on — planned and walked by the same engine:
//!
//! | command | roots |
//! |---|---|
//! | `apply` | the named nodes; with none, every image, volume, network and service, the sync rules marked `on-apply`, and the removal of orphans |
//! | `run TASK…` | the tasks |
//! | `test [NAME…]` | the tests |
//! | `ci` | what `apply` selects, plus every test |
//! | `backup [NAME…]` | the backups |
//! | `sync [NAME…]` | the sync rules |
//! | `destroy` | not the manifest's nodes but what the engine holds for the project (see the planner) |
//!
//! Dependencies are followed along every edge but one kind: what a backup reads and what a
//! sync rule writes into are not brought up by them. A backup takes what exists (backing up
//! a volume nobody created would only make an empty snapshot); its `depends-on` still runs
//! first. Between selected nodes every edge orders the walk.

use crate::graph::{Edge, EdgeKind, Graph};
use crate::manifest::{Kind, Manifest, NodeId};

/// A command's part of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `apply [TARGET…]`; no targets means the whole stack.
    Apply { targets: Vec<NodeId> },
    /// `run TASK…`.
    Tasks { targets: Vec<NodeId> },
    /// `test [NAME…]`; with `stack`, the whole stack too (`ci`).
    Tests { tests: Vec<NodeId>, stack: bool },
    /// `backup [NAME…]`.
    Backups { targets: Vec<NodeId> },
    /// `sync [NAME…]`.
    Syncs { targets: Vec<NodeId> },
    /// One node and what it needs, for `why`.
    Node { target: NodeId },
    /// `destroy`: the project's containers and networks; its volumes (each backed up and
    /// verified first when a backup node reads it) with `volumes`; its images with `images`.
    Destroy { volumes: bool, images: bool },
}

impl Selection {
    /// The nodes whose selection brings up the whole stack.
    fn stack(m: &Manifest) -> Vec<NodeId> {
        m.node_ids()
            .into_iter()
            .filter(|n| {
                matches!(n.kind, Kind::Image | Kind::Volume | Kind::Network)
                    || (n.kind == Kind::Service && m.service_active(&n.name))
                    || (n.kind == Kind::Sync && m.syncs.get(&n.name).is_some_and(|s| s.on_apply))
            })
            .collect()
    }

    /// The nodes the walk starts from.
    pub fn roots(&self, m: &Manifest) -> Vec<NodeId> {
        match self {
            Selection::Apply { targets } if targets.is_empty() => Self::stack(m),
            Selection::Apply { targets }
            | Selection::Tasks { targets }
            | Selection::Backups { targets }
            | Selection::Syncs { targets } => targets.clone(),
            Selection::Tests { tests, stack } => {
                let mut roots = if *stack { Self::stack(m) } else { Vec::new() };
                roots.extend(tests.iter().cloned());
                roots
            }
            Selection::Node { target } => vec![target.clone()],
            Selection::Destroy { .. } => Vec::new(),
        }
    }

    /// Whether objects the manifest no longer declares are removed: only when the whole
    /// stack is applied, so applying one service never deletes another's container.
    pub fn removes_orphans(&self) -> bool {
        matches!(self, Selection::Apply { targets } if targets.is_empty())
            || matches!(self, Selection::Tests { stack: true, .. })
    }

    /// The selected part of `graph`: the roots, what they depend on, without secrets (they
    /// are resolved where they are used).
    pub fn subgraph(&self, m: &Manifest, graph: &Graph) -> Graph {
        let roots = self.roots(m);
        if roots.is_empty() {
            return graph.select_following(&[], |_, _| false);
        }
        graph
            .select_following(&roots, follows)
            .filter(|n| n.kind != Kind::Secret)
    }
}

/// Whether the walk brings up what `from` points at through `edge`.
fn follows(from: &NodeId, edge: &Edge) -> bool {
    !(matches!(from.kind, Kind::Backup | Kind::Sync) && edge.kind == EdgeKind::Uses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn manifest(text: &str) -> Manifest {
        let vars = crate::manifest::interpolate::Vars::new(HashMap::new(), HashMap::new());
        crate::manifest::load_str("m", text, Path::new("/p/m"), Path::new("/p"), &vars)
            .unwrap()
            .manifest
    }

    fn names(m: &Manifest, s: &Selection) -> Vec<String> {
        s.subgraph(m, &Graph::from_manifest(m))
            .nodes()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    const M: &str = r#"project "p"
task "dump" { run "true"; }
volume "data"
service "db" {
    image "busybox:1"
    mount "data" "/data"
}
backup "data" {
    volume "data"
    depends-on "dump"
}
test "t" { needs "db"; run "true"; }
sync "conf" {
    host "/tmp/x"
    volume "data" path="/conf"
    on-apply true
}
"#;

    #[test]
    fn a_backup_runs_what_it_depends_on_but_brings_up_nothing_it_reads() {
        let m = manifest(M);
        let b = Selection::Backups {
            targets: vec![NodeId::new(Kind::Backup, "data")],
        };
        assert_eq!(names(&m, &b), ["task.dump", "backup.data"]);
    }

    #[test]
    fn the_whole_stack_includes_on_apply_syncs_and_removes_orphans() {
        let m = manifest(M);
        let all = Selection::Apply { targets: vec![] };
        assert_eq!(names(&m, &all), ["volume.data", "service.db", "sync.conf"]);
        assert!(all.removes_orphans());
        let one = Selection::Apply {
            targets: vec![NodeId::new(Kind::Service, "db")],
        };
        assert!(!one.removes_orphans());
    }

    #[test]
    fn tests_bring_up_what_they_need() {
        let m = manifest(M);
        let t = Selection::Tests {
            tests: vec![NodeId::new(Kind::Test, "t")],
            stack: false,
        };
        assert_eq!(names(&m, &t), ["volume.data", "service.db", "test.t"]);
    }
}
