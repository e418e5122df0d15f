//! A reporter that passes everything on with secret values masked (see
//! [`crate::secrets::mask`]): what a task printed, failure messages, details, JSON results.

use std::sync::Arc;
use std::time::Duration;

use crate::exec::{NodeResult, Reporter, Status, Summary};
use crate::secrets::{mask, mask_json};

pub struct Masked(pub Arc<dyn Reporter>);

fn status(s: &Status) -> Status {
    let m = |t: &str| mask(t).into_owned();
    match s {
        Status::Ran { detail } => Status::Ran {
            detail: detail.as_deref().map(m),
        },
        Status::Cached { detail } => Status::Cached {
            detail: detail.as_deref().map(m),
        },
        Status::UpToDate { detail } => Status::UpToDate {
            detail: detail.as_deref().map(m),
        },
        Status::Failed { class, message } => Status::Failed {
            class: *class,
            message: m(message),
        },
        other => other.clone(),
    }
}

/// The summary with every status masked.
pub fn summary(s: &Summary) -> Summary {
    Summary {
        nodes: s
            .nodes
            .iter()
            .map(|n| NodeResult {
                status: status(&n.status),
                ..n.clone()
            })
            .collect(),
        ..s.clone()
    }
}

impl Reporter for Masked {
    fn run_started(&self, total: usize) {
        self.0.run_started(total)
    }

    fn node_started(&self, node: &str) {
        self.0.node_started(node)
    }

    fn output(&self, node: &str, line: &str) {
        self.0.output(node, &mask(line))
    }

    fn node_finished(&self, node: &str, s: &Status, duration: Duration) {
        self.0.node_finished(node, &status(s), duration)
    }

    fn run_finished(&self, s: &Summary) {
        self.0.run_finished(&summary(s))
    }

    fn data(&self, node: &str, value: &serde_json::Value) {
        self.0.data(node, &mask_json(value))
    }
}
