//! Planning: for every node of a selection, an action and its reasons, decided by one
//! function ([`decide::decide`]) from what the manifest wants ([`desired`]), what exists and
//! what was recorded — as Terraform's plan does. `plan` prints the [`Plan`]; `apply` walks its
//! typed [`Step`]s, and each executor decides again with the same function from a fresh
//! observation, so the two can never disagree.
//!
//! The plan is for people (`render`), for machines (`--json`) and for `apply FILE`, which
//! plans again and refuses before changing anything when the steps differ from the saved ones
//! (reality moved).

pub mod decide;
pub mod desired;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Key;
use crate::manifest::{Kind, NodeId};

pub use decide::{decide, Case, Decision, Last};

/// What a step will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Build,
    Pull,
    Replace,
    Start,
    Run,
    /// A task whose result is cached: its outputs come back from the cache.
    Restore,
    /// Take a backup and verify it in full before what it protects is deleted.
    VerifiedBackup,
    Delete,
    UpToDate,
    /// Something stands in the way that sanctuary will not touch; the reason says what.
    Blocked,
}

impl Action {
    pub fn is_change(self) -> bool {
        !matches!(self, Action::UpToDate)
    }

    fn symbol(self) -> &'static str {
        match self {
            Action::Create | Action::Build | Action::Pull => "+",
            Action::Replace => "~",
            Action::Start | Action::Run | Action::Restore | Action::VerifiedBackup => ">",
            Action::Delete => "-",
            Action::UpToDate => "=",
            Action::Blocked => "!",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Build => "build",
            Action::Pull => "pull",
            Action::Replace => "replace",
            Action::Start => "start",
            Action::Run => "run",
            Action::Restore => "restore",
            Action::VerifiedBackup => "back up and verify",
            Action::Delete => "delete",
            Action::UpToDate => "up to date",
            Action::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A Docker object a step acts on without a node declaring it: an orphan, or what teardown
/// removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    Container,
    Network,
    Volume,
    Image,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Container => "container",
            ObjectKind::Network => "network",
            ObjectKind::Volume => "volume",
            ObjectKind::Image => "image",
        }
    }
}

/// What a step acts on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Subject {
    /// A node of the manifest.
    Node { id: NodeId },
    /// An object found by label: `name` is its Docker name (an id for images), `node` the
    /// node its labels say it realised, if any.
    Object {
        kind: ObjectKind,
        name: String,
        node: Option<String>,
    },
}

impl Subject {
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Subject::Node { id } => Some(id),
            Subject::Object { .. } => None,
        }
    }

    /// How the step is named in plans, progress and summaries: `service.omega`, a task by
    /// its bare name (what users type), `container voidcat-old`.
    pub fn label(&self) -> String {
        match self {
            Subject::Node { id } if id.kind == Kind::Task => id.name.clone(),
            Subject::Node { id } => id.to_string(),
            Subject::Object { kind, name, .. } => format!("{} {name}", kind.as_str()),
        }
    }
}

/// One line of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The label people read (see [`Subject::label`]).
    pub node: String,
    pub subject: Subject,
    pub action: Action,
    pub reasons: Vec<String>,
    /// The Docker object's name, when there is one.
    pub object: String,
    /// The fingerprint the step realises (empty where there is none).
    pub fingerprint: String,
    /// Indices of the steps this one waits for.
    pub waits_for: Vec<usize>,
}

impl crate::exec::NodeLabel for Step {
    fn label(&self) -> String {
        self.node.clone()
    }
}

/// What planning computed for a step that executing it needs again: kept in memory only,
/// because a container spec holds secret values.
#[derive(Clone, Debug, Default)]
pub enum Prepared {
    #[default]
    Nothing,
    Image(Box<desired::DesiredImage>),
    Service(Box<desired::DesiredContainer>),
    /// The key of a task or test, computed from its inputs as they were when planned.
    Key(Box<Key>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub project: String,
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub prepared: Vec<Prepared>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Desired(#[from] desired::DesiredError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("{0}")]
    Task(String),
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.action.is_change())
    }

    /// Counts per action, in a fixed order.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut c = BTreeMap::new();
        for s in &self.steps {
            *c.entry(s.action).or_insert(0) += 1;
        }
        c
    }

    /// `Plan: 1 to create, 2 to replace, 5 up to date.`
    pub fn summary_line(&self) -> String {
        let counts = self.counts();
        if !self.has_changes() {
            return format!(
                "No changes: {} up to date.",
                counts.get(&Action::UpToDate).unwrap_or(&0)
            );
        }
        let parts: Vec<String> = counts
            .iter()
            .map(|(a, n)| match a {
                Action::UpToDate => format!("{n} up to date"),
                Action::Run => format!("{n} to run"),
                Action::Blocked => format!("{n} blocked"),
                Action::VerifiedBackup => format!("{n} to back up and verify"),
                other => format!("{n} to {}", other.word()),
            })
            .collect();
        format!("Plan: {}.", parts.join(", "))
    }

    /// The plan for people: one line per step, reasons indented below.
    pub fn render(&self, show_up_to_date: bool) -> String {
        let width = self.steps.iter().map(|s| s.node.len()).max().unwrap_or(0);
        let mut out = String::new();
        for s in &self.steps {
            if !show_up_to_date && !s.action.is_change() {
                continue;
            }
            let first = s
                .reasons
                .first()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if s.reasons.len() <= 1 {
                out.push_str(&format!(
                    "  {} {:<width$}  {}{first}\n",
                    s.action.symbol(),
                    s.node,
                    s.action
                ));
            } else {
                out.push_str(&format!(
                    "  {} {:<width$}  {}\n",
                    s.action.symbol(),
                    s.node,
                    s.action
                ));
                for r in &s.reasons {
                    out.push_str(&format!("  {:<width$}      · {r}\n", ""));
                }
            }
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// The changes only, for comparing a saved plan with a fresh one.
    pub fn changes(&self) -> Vec<(&Subject, Action, &str)> {
        self.steps
            .iter()
            .filter(|s| s.action.is_change())
            .map(|s| (&s.subject, s.action, s.fingerprint.as_str()))
            .collect()
    }

    /// Whether walking this plan changes the stack or the project's data (and so must hold
    /// the project's lock): anything but running tasks and tests.
    pub fn changes_the_stack(&self) -> bool {
        self.steps.iter().any(|s| {
            s.action.is_change()
                && !matches!(
                    s.subject.node().map(|n| n.kind),
                    Some(Kind::Task | Kind::Test)
                )
        })
    }

    /// The index of the step acting on `id`.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.steps.iter().position(|s| s.subject.node() == Some(id))
    }
}
