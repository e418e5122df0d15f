//! A reporter that passes everything on and gives each node a span in the command's trace
//! ([`crate::observe::traces`]), with the action the plan meant for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::exec::{Reporter, Status, Summary};
use crate::manifest::NodeId;
use crate::observe::traces::{self, NodeSpan};
use crate::plan::Plan;

pub struct Traced {
    inner: Arc<dyn Reporter>,
    /// Step label → what the plan meant for it, and the node it is of.
    steps: HashMap<String, (String, Option<NodeId>)>,
    started: Mutex<HashMap<String, SystemTime>>,
}

impl Traced {
    pub fn new(inner: Arc<dyn Reporter>, plan: &Plan) -> Self {
        Traced {
            inner,
            steps: plan
                .steps
                .iter()
                .map(|s| {
                    (
                        s.node.clone(),
                        (s.action.to_string(), s.subject.node().cloned()),
                    )
                })
                .collect(),
            started: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Traced {
    fn run_started(&self, total: usize) {
        self.inner.run_started(total);
    }

    fn node_started(&self, node: &str) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), SystemTime::now());
        self.inner.node_started(node);
    }

    fn output(&self, node: &str, line: &str) {
        self.inner.output(node, line);
    }

    fn node_finished(&self, node: &str, status: &Status, duration: Duration) {
        self.inner.node_finished(node, status, duration);
        let start = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node)
            .unwrap_or_else(|| SystemTime::now() - duration);
        let step = self.steps.get(node);
        traces::node(NodeSpan {
            node,
            id: step.and_then(|s| s.1.as_ref()),
            action: step.map(|s| s.0.as_str()),
            status,
            start,
            duration,
        });
    }

    fn run_finished(&self, summary: &Summary) {
        self.inner.run_finished(summary);
    }

    fn data(&self, node: &str, value: &serde_json::Value) {
        self.inner.data(node, value);
    }
}
