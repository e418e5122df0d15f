//! The one decision: what to do to a node, from what the manifest wants, what exists, and
//! what sanctuary recorded last time. `plan` calls it to show the action; each executor calls
//! it again on a fresh observation right before acting, so a plan and the apply that follows
//! cannot decide differently.

use crate::backend::{names, ContainerInfo, ContainerState};
use crate::fingerprint::Key;
use crate::state::{NodeRecord, RecordResult};

use super::desired::{DesiredContainer, DesiredImage};
use super::Action;

/// An action and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reasons: Vec<String>,
}

impl Decision {
    fn new(action: Action, reasons: Vec<String>) -> Self {
        Decision { action, reasons }
    }

    fn up_to_date() -> Self {
        Decision::new(Action::UpToDate, Vec::new())
    }
}

/// A node's last success: its fingerprint, cheap to read, and a way to load its whole key,
/// which only a changed node needs (for its reasons) — a task's key may name ten thousand
/// inputs.
pub struct Last<'a> {
    pub fingerprint: Option<String>,
    pub load: Box<dyn Fn() -> Option<Key> + Sync + 'a>,
}

impl std::fmt::Debug for Last<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Last")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Last<'_> {
    /// What changed from the last success to `new`, in words; never empty.
    fn changes(&self, new: &Key) -> Vec<String> {
        match (self.load)() {
            Some(old) => changes(&old, new),
            None => vec!["configuration changed".to_string()],
        }
    }
}

/// Everything one decision looks at, per kind of node.
#[derive(Debug)]
pub enum Case<'a> {
    /// An image: built or pulled unless its tag is present.
    Image {
        desired: &'a DesiredImage,
        present: bool,
    },
    /// A volume or network, identified by its name alone.
    Named { exists: bool },
    /// A service's container, as observed by its name; the state record and the key of
    /// its last success, for reasons and retries.
    Service {
        desired: &'a DesiredContainer,
        observed: Option<&'a ContainerInfo>,
        record: Option<&'a NodeRecord>,
        last: Last<'a>,
    },
    /// A task: runs unless its key matches its last success; a match with missing outputs is
    /// a restore from the cache.
    Task {
        key: &'a Key,
        /// `key`'s fingerprint, computed once by the caller.
        fingerprint: &'a str,
        last: Last<'a>,
        missing_outputs: Vec<String>,
        force: bool,
    },
    /// A test: runs unless a passing run had the same key.
    Test {
        key: &'a Key,
        fingerprint: &'a str,
        last: Last<'a>,
        no_cache: bool,
    },
    /// Work that runs whenever it is selected (a backup, a sync pass), or that was decided
    /// by what was found (an orphan to delete).
    Always {
        action: Action,
        reasons: Vec<String>,
    },
}

/// Decides the action for one node.
pub fn decide(case: Case<'_>) -> Decision {
    match case {
        Case::Image { desired, present } => match (&desired.build, present) {
            (_, true) => Decision::up_to_date(),
            (Some(_), false) => {
                Decision::new(Action::Build, vec![format!("no image {}", desired.tag)])
            }
            (None, false) => Decision::new(
                Action::Pull,
                vec![format!("{} is not present locally", desired.tag)],
            ),
        },
        Case::Named { exists: true } => Decision::up_to_date(),
        Case::Named { exists: false } => Decision::new(Action::Create, Vec::new()),
        Case::Service {
            desired,
            observed,
            record,
            last,
        } => service(desired, observed, record, last),
        Case::Task {
            key,
            fingerprint,
            last,
            missing_outputs,
            force,
        } => match last.fingerprint.as_deref() {
            _ if force => Decision::new(Action::Run, vec!["--force".to_string()]),
            None => Decision::new(Action::Run, vec!["never ran".to_string()]),
            Some(fp) if fp == fingerprint && missing_outputs.is_empty() => Decision::up_to_date(),
            Some(fp) if fp == fingerprint => Decision::new(
                Action::Restore,
                missing_outputs
                    .into_iter()
                    .map(|o| format!("output {o} missing (restored from the cache)"))
                    .collect(),
            ),
            Some(_) => Decision::new(Action::Run, last.changes(key)),
        },
        Case::Test {
            key,
            fingerprint,
            last,
            no_cache,
        } => match last.fingerprint.as_deref() {
            _ if no_cache => Decision::new(Action::Run, vec!["--no-cache".to_string()]),
            None => Decision::new(Action::Run, vec!["never passed".to_string()]),
            Some(fp) if fp == fingerprint => Decision::up_to_date(),
            Some(_) => Decision::new(Action::Run, last.changes(key)),
        },
        Case::Always { action, reasons } => Decision::new(action, reasons),
    }
}

/// What changed between two keys, in words; never empty.
fn changes(old: &Key, new: &Key) -> Vec<String> {
    let reasons: Vec<String> = Key::diff(old, new).iter().map(|c| c.to_string()).collect();
    if reasons.is_empty() {
        vec!["configuration changed".to_string()]
    } else {
        reasons
    }
}

fn service(
    desired: &DesiredContainer,
    observed: Option<&ContainerInfo>,
    record: Option<&NodeRecord>,
    last: Last<'_>,
) -> Decision {
    let name = &desired.spec.name;
    let project = desired.spec.labels.get(names::LABEL_PROJECT);
    let Some(c) = observed else {
        let reasons = match record {
            Some(r) if !matches!(r.result, RecordResult::Failed { .. }) => {
                vec![format!(
                    "container {name} is missing (removed outside sanctuary)"
                )]
            }
            _ => Vec::new(),
        };
        return Decision::new(Action::Create, reasons);
    };
    if c.labels.get(names::LABEL_PROJECT) != project {
        return Decision::new(
            Action::Blocked,
            vec![format!(
                "a container named {name} exists that this project does not own; remove or rename it"
            )],
        );
    }
    if c.labels.get(names::LABEL_FINGERPRINT) != Some(&desired.fingerprint) {
        return Decision::new(Action::Replace, last.changes(&desired.key));
    }
    let drift = drifted(c, desired);
    if !drift.is_empty() {
        return Decision::new(Action::Replace, drift);
    }
    if let Some(reason) = retry_reason(record, &desired.fingerprint) {
        return Decision::new(Action::Replace, vec![reason]);
    }
    match c.state {
        ContainerState::Running => Decision::up_to_date(),
        other => Decision::new(
            Action::Start,
            vec![format!("exists, {}", state_word(other))],
        ),
    }
}

/// How a container that carries the right fingerprint still differs from what sanctuary
/// would create: someone recreated it by hand with the labels copied. The image and every
/// variable sanctuary sets are compared; variables the image itself adds are not.
fn drifted(c: &ContainerInfo, desired: &DesiredContainer) -> Vec<String> {
    let mut out = Vec::new();
    if c.image != desired.spec.image {
        out.push(format!(
            "image changed outside sanctuary: {} → {}",
            c.image, desired.spec.image
        ));
    }
    let public_env = desired.public.get("env");
    for (k, want) in &desired.spec.env {
        if c.env.get(k) == Some(want) {
            continue;
        }
        // Secret values are never shown: the public spec holds their placeholders.
        let shown = public_env
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_default();
        let secret = shown.starts_with("<secret ");
        out.push(match c.env.get(k) {
            None => format!("env {k} removed outside sanctuary"),
            Some(_) if secret => format!("env {k} changed outside sanctuary"),
            Some(have) => format!("env {k} changed outside sanctuary: {have:?} → {shown:?}"),
        });
    }
    out
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
/// before recording it (the record still holds an older fingerprint). `None` when the state
/// store has nothing against it — a missing record is not a reason, so losing the state store
/// does not recreate every container.
pub fn retry_reason(record: Option<&NodeRecord>, fingerprint: &str) -> Option<String> {
    let record = record?;
    match &record.result {
        // A failure keeps the fingerprint realised before it, so it is not compared here.
        RecordResult::Failed { message } => {
            let first = message.lines().next().unwrap_or_default();
            Some(format!("the last apply failed: {first}"))
        }
        _ if record.fingerprint != fingerprint => {
            Some("the last apply was interrupted before it finished".to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
