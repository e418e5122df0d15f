//! How sanctuary names and labels the Docker objects it owns. Objects are found again by
//! label, never by name alone, so a name clash with a foreign object is detected, not adopted.

use std::collections::BTreeMap;

use crate::manifest::NodeId;

pub const LABEL_PROJECT: &str = "sanctuary.project";
pub const LABEL_NODE: &str = "sanctuary.node";
pub const LABEL_FINGERPRINT: &str = "sanctuary.fingerprint";
/// The pid of the process that made a short-lived object (a helper container, a staging
/// volume), so that one left by a killed process is recognised as debris.
pub const LABEL_PID: &str = "sanctuary.pid";
/// The machine that process runs on ([`crate::debris::host`]): a pid means nothing elsewhere.
pub const LABEL_HOST: &str = "sanctuary.host";

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

/// `labels` with this process named as the object's owner ([`LABEL_PID`], [`LABEL_HOST`]).
pub fn owned(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.insert(LABEL_PID.to_string(), std::process::id().to_string());
    labels.insert(LABEL_HOST.to_string(), crate::debris::host().to_string());
    labels
}

/// Whether an object with `labels` was made by a process of this machine that is gone.
/// Objects without an owner, or owned by another machine, never are.
pub fn owner_gone(labels: &BTreeMap<String, String>) -> bool {
    let pid = labels.get(LABEL_PID).and_then(|p| p.parse().ok());
    match (pid, labels.get(LABEL_HOST)) {
        (Some(pid), Some(host)) => crate::debris::gone(host, pid),
        _ => false,
    }
}

/// Whether the object's labels name an owner ([`owned`]) that still runs on this machine
/// (or on another, where it cannot be checked).
pub fn owner_alive(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key(LABEL_PID) && !owner_gone(labels)
}

/// The node an object's labels say it realises.
pub fn node_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_NODE).map(String::as_str)
}

/// Formats a node id the way labels store it.
pub fn node_label(id: &NodeId) -> String {
    id.to_string()
}
