//! How sanctuary names and labels the Docker objects it owns. Objects are found again by
//! label, never by name alone, so a name clash with a foreign object is detected, not adopted.

use std::collections::BTreeMap;

use crate::manifest::NodeId;

pub const LABEL_PROJECT: &str = "sanctuary.project";
pub const LABEL_NODE: &str = "sanctuary.node";
pub const LABEL_FINGERPRINT: &str = "sanctuary.fingerprint";

pub fn container(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

pub fn volume(project: &str, volume: &str) -> String {
    format!("{project}-{volume}")
}

pub fn network(project: &str, network: &str) -> String {
    format!("{project}-{network}")
}

/// The network services join when they declare none, as Docker Compose does.
pub fn default_network(project: &str) -> String {
    format!("{project}-default")
}

pub fn image_repo(project: &str, image: &str) -> String {
    format!("{project}-{image}")
}

/// Labels for an object realising `node`; the fingerprint is left out for objects whose
/// identity is their name (volumes, networks).
pub fn labels(project: &str, node: &str, fingerprint: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_NODE.to_string(), node.to_string()),
    ]);
    if let Some(fp) = fingerprint {
        l.insert(LABEL_FINGERPRINT.to_string(), fp.to_string());
    }
    l
}

/// The node an object's labels say it realises.
pub fn node_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_NODE).map(String::as_str)
}

/// Formats a node id the way labels store it.
pub fn node_label(id: &NodeId) -> String {
    id.to_string()
}
