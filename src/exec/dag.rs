//! A validated dependency graph over caller-defined nodes.
//!
//! [`Dag::new`] takes the nodes and, for each, the indices of the nodes it depends on. It
//! rejects out-of-range indices, self-dependencies and cycles up front, so the scheduler can
//! walk any `Dag` it is given without further checks. The graph knows nothing about what a
//! node is beyond its [`NodeLabel`].

use std::collections::BTreeSet;

/// How a node is named in progress output, summaries and error messages.
pub trait NodeLabel {
    /// A short, human-readable, unique name such as `task/build` or `service omega`.
    fn label(&self) -> String;
}

impl NodeLabel for String {
    fn label(&self) -> String {
        self.clone()
    }
}

impl NodeLabel for &str {
    fn label(&self) -> String {
        (*self).to_string()
    }
}

/// Why a set of nodes and dependency indices is not a DAG.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DagError {
    /// The dependency lists do not line up with the nodes.
    #[error("dependency table has {deps} entries for {nodes} nodes")]
    LengthMismatch { nodes: usize, deps: usize },
    /// A dependency index points past the last node.
    #[error("node `{node}` depends on index {index}, but there are only {len} nodes")]
    BadIndex {
        node: String,
        index: usize,
        len: usize,
    },
    /// A node lists itself as a dependency.
    #[error("node `{node}` depends on itself")]
    SelfDependency { node: String },
    /// The dependencies form a cycle; `path` lists it starting and ending at the same node.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
}

/// Nodes plus dependency edges, known to be acyclic.
#[derive(Debug)]
pub struct Dag<N> {
    nodes: Vec<N>,
    labels: Vec<String>,
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl<N: NodeLabel> Dag<N> {
    /// Builds a DAG where `deps[i]` lists the indices of the nodes node `i` depends on.
    /// Duplicate entries in a dependency list are merged.
    pub fn new(nodes: Vec<N>, deps: Vec<Vec<usize>>) -> Result<Self, DagError> {
        if nodes.len() != deps.len() {
            return Err(DagError::LengthMismatch {
                nodes: nodes.len(),
                deps: deps.len(),
            });
        }
        let labels: Vec<String> = nodes.iter().map(NodeLabel::label).collect();
        let len = nodes.len();
        let mut clean = Vec::with_capacity(len);
        for (i, list) in deps.into_iter().enumerate() {
            let mut set = BTreeSet::new();
            for d in list {
                if d >= len {
                    return Err(DagError::BadIndex {
                        node: labels[i].clone(),
                        index: d,
                        len,
                    });
                }
                if d == i {
                    return Err(DagError::SelfDependency {
                        node: labels[i].clone(),
                    });
                }
                set.insert(d);
            }
            clean.push(set.into_iter().collect::<Vec<_>>());
        }
        let mut dependents = vec![Vec::new(); len];
        for (i, list) in clean.iter().enumerate() {
            for &d in list {
                dependents[d].push(i);
            }
        }
        if let Some(cycle) = crate::topo::find_cycle(&clean) {
            return Err(DagError::Cycle {
                path: cycle.into_iter().map(|i| labels[i].clone()).collect(),
            });
        }
        Ok(Dag {
            nodes,
            labels,
            deps: clean,
            dependents,
        })
    }
}

impl<N> Dag<N> {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes, in the order they were given.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// The label of node `i`, computed once at construction.
    pub fn label(&self, i: usize) -> &str {
        &self.labels[i]
    }

    /// Indices node `i` depends on, ascending.
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// Indices of the nodes that depend directly on node `i`, ascending.
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn builds_dependents_from_deps() {
        let dag = Dag::new(names(3), vec![vec![], vec![0], vec![0, 1, 1]]).unwrap();
        assert_eq!(dag.dependents(0), &[1, 2]);
        assert_eq!(dag.dependents(1), &[2]);
        assert_eq!(dag.deps(2), &[0, 1], "duplicates merged");
        assert_eq!(dag.label(2), "n2");
    }

    #[test]
    fn rejects_a_cycle_and_names_it() {
        let err = Dag::new(names(3), vec![vec![2], vec![0], vec![1]]).unwrap_err();
        match &err {
            DagError::Cycle { path } => {
                assert_eq!(path.first(), path.last());
                assert_eq!(path.len(), 4);
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        assert!(err.to_string().starts_with("dependency cycle: n"));
    }

    #[test]
    fn rejects_bad_index_self_dependency_and_length_mismatch() {
        assert_eq!(
            Dag::new(names(2), vec![vec![], vec![5]]).unwrap_err(),
            DagError::BadIndex {
                node: "n1".into(),
                index: 5,
                len: 2
            }
        );
        assert_eq!(
            Dag::new(names(1), vec![vec![0]]).unwrap_err(),
            DagError::SelfDependency { node: "n0".into() }
        );
        assert!(matches!(
            Dag::new(names(2), vec![vec![]]).unwrap_err(),
            DagError::LengthMismatch { nodes: 2, deps: 1 }
        ));
    }

    #[test]
    fn a_long_chain_is_accepted_without_recursion() {
        let n = 100_000;
        let deps = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(Dag::new(names(n), deps).unwrap().len(), n);
    }
}
