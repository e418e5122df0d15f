//! The dependency graph of a manifest: every declared node, the edges from `depends-on`, and
//! the implicit edges of references (a service uses its image, volumes, networks and secrets; a
//! test needs services; a backup reads a volume; a sync writes into a volume or service).
//!
//! Pure: it reads a resolved [`Manifest`] and answers questions about order and selection.

mod render;

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

pub use crate::manifest::EdgeKind;
use crate::manifest::{Manifest, NodeId};

pub use render::Format;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub to: usize,
    pub kind: EdgeKind,
}

/// Nodes and their dependencies. Indices are stable for the life of the graph.
#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    deps: Vec<Vec<Edge>>,
}

impl Graph {
    /// Builds the graph of every node the manifest declares.
    pub fn from_manifest(m: &Manifest) -> Graph {
        let nodes = m.node_ids();
        let index: HashMap<NodeId, usize> = nodes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        let mut deps: Vec<BTreeSet<Edge>> = vec![BTreeSet::new(); nodes.len()];
        for r in m.references() {
            let (Some(&f), Some(&t)) = (index.get(&r.from), index.get(&r.to)) else {
                continue;
            };
            // A declared condition is stronger than the implied edge to the same node.
            if r.kind == EdgeKind::Uses && deps[f].iter().any(|e| e.to == t) {
                continue;
            }
            deps[f].retain(|e| !(e.to == t && e.kind == EdgeKind::Uses));
            deps[f].insert(Edge {
                to: t,
                kind: r.kind,
            });
        }
        Graph {
            nodes,
            index,
            deps: deps.into_iter().map(|s| s.into_iter().collect()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> &NodeId {
        &self.nodes[i]
    }

    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// What node `i` depends on.
    pub fn dependencies(&self, i: usize) -> &[Edge] {
        &self.deps[i]
    }

    /// Every cycle, as the nodes of each strongly connected component that has one.
    pub fn cycles(&self) -> Vec<Vec<NodeId>> {
        crate::topo::cycles(&self.adjacency())
            .into_iter()
            .map(|c| c.into_iter().map(|i| self.nodes[i].clone()).collect())
            .collect()
    }

    /// Dependencies before dependents; ties broken by declaration order, so output is stable.
    /// `None` when the graph has a cycle (the manifest validator reports those first).
    pub fn topo_order(&self) -> Option<Vec<usize>> {
        crate::topo::order(&self.adjacency())
    }

    /// The dependency indices of every node, without edge kinds.
    pub fn adjacency(&self) -> Vec<Vec<usize>> {
        self.deps
            .iter()
            .map(|edges| edges.iter().map(|e| e.to).collect())
            .collect()
    }

    /// The subgraph that `targets` need: the targets and everything they depend on,
    /// transitively. An empty target list selects the whole graph.
    pub fn select(&self, targets: &[NodeId]) -> Graph {
        if targets.is_empty() {
            return self.clone();
        }
        self.select_following(targets, |_, _| true)
    }

    /// The targets and what they depend on through the edges `follow` accepts (given the
    /// node an edge leaves and the edge). Edges between selected nodes are kept whether
    /// followed or not, so order still holds among them.
    pub fn select_following(
        &self,
        targets: &[NodeId],
        follow: impl Fn(&NodeId, &Edge) -> bool,
    ) -> Graph {
        let mut keep = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = targets.iter().filter_map(|t| self.index_of(t)).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut keep[i], true) {
                stack.extend(
                    self.deps[i]
                        .iter()
                        .filter(|e| follow(&self.nodes[i], e))
                        .map(|e| e.to),
                );
            }
        }
        let old_to_new: HashMap<usize, usize> = (0..self.nodes.len())
            .filter(|&i| keep[i])
            .enumerate()
            .map(|(new, old)| (old, new))
            .collect();
        let mut nodes = Vec::new();
        let mut deps = Vec::new();
        for (old, node) in self.nodes.iter().enumerate() {
            if keep[old] {
                nodes.push(node.clone());
                deps.push(
                    self.deps[old]
                        .iter()
                        .filter_map(|e| old_to_new.get(&e.to).map(|&to| Edge { to, kind: e.kind }))
                        .collect(),
                );
            }
        }
        let index = nodes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        Graph { nodes, index, deps }
    }

    /// Keeps only nodes for which `keep` holds, with edges between kept nodes; an edge through
    /// a dropped node is bridged so order is preserved (a task behind an image behind a task).
    pub fn filter(&self, keep: impl Fn(&NodeId) -> bool) -> Graph {
        let n = self.nodes.len();
        let kept: Vec<bool> = self.nodes.iter().map(&keep).collect();
        let mut nodes = Vec::new();
        let mut new_index = vec![usize::MAX; n];
        for i in 0..n {
            if kept[i] {
                new_index[i] = nodes.len();
                nodes.push(self.nodes[i].clone());
            }
        }
        let mut deps = Vec::new();
        for i in (0..n).filter(|&i| kept[i]) {
            let mut out = BTreeSet::new();
            let mut seen = vec![false; n];
            let mut stack: Vec<Edge> = self.deps[i].clone();
            while let Some(e) = stack.pop() {
                if std::mem::replace(&mut seen[e.to], true) {
                    continue;
                }
                if kept[e.to] {
                    out.insert(Edge {
                        to: new_index[e.to],
                        kind: e.kind,
                    });
                } else {
                    stack.extend(self.deps[e.to].iter().cloned());
                }
            }
            deps.push(out.into_iter().collect());
        }
        let index = nodes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        Graph { nodes, index, deps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;

    fn edges(list: &[&[usize]]) -> Vec<Vec<Edge>> {
        list.iter()
            .map(|l| {
                l.iter()
                    .map(|&to| Edge {
                        to,
                        kind: EdgeKind::Uses,
                    })
                    .collect()
            })
            .collect()
    }

    fn graph(list: &[&[usize]]) -> Graph {
        let nodes: Vec<NodeId> = (0..list.len())
            .map(|i| NodeId::new(Kind::Task, format!("t{i}")))
            .collect();
        let index = nodes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        Graph {
            nodes,
            index,
            deps: edges(list),
        }
    }

    #[test]
    fn topo_order_puts_dependencies_first() {
        // 0 <- 1 <- 3, 0 <- 2 <- 3 (a diamond)
        let g = graph(&[&[], &[0], &[0], &[1, 2]]);
        assert_eq!(g.topo_order().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn cycles_are_found_with_every_member() {
        let g = graph(&[&[2], &[0], &[1], &[]]);
        assert!(g.topo_order().is_none());
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 3);
        let self_loop = graph(&[&[0]]);
        assert_eq!(self_loop.cycles().len(), 1);
    }

    #[test]
    fn select_takes_the_transitive_dependencies_only() {
        let g = graph(&[&[], &[0], &[], &[1]]);
        let sub = g.select(&[NodeId::new(Kind::Task, "t3")]);
        let names: Vec<_> = sub.nodes().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["t0", "t1", "t3"]);
        assert_eq!(sub.topo_order().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn filter_bridges_dropped_nodes() {
        // t2 -> t1 -> t0; dropping t1 keeps t2 after t0.
        let g = graph(&[&[], &[0], &[1]]);
        let f = g.filter(|n| n.name != "t1");
        assert_eq!(f.len(), 2);
        assert_eq!(
            f.dependencies(1).iter().map(|e| e.to).collect::<Vec<_>>(),
            vec![0]
        );
    }
}
