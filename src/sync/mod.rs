//! Three-way file synchronisation between a host directory and a container directory, with
//! path rewriting between the two forms and key-wise merging of JSON files.
//!
//! The pipeline: each [`Side`] is scanned into a [`Snapshot`] in host form (container content
//! inverse-rewritten before hashing, so a rewrite alone is never a change); [`reconcile`]
//! compares both with the recorded base and plans actions; the [`engine`] checks the plan
//! against its safety rules, applies it through the sides, and records the new base. This
//! module knows nothing of the manifest or of Docker: a container side plugs in through the
//! [`Side`] trait.

mod json_strings;

pub mod base_store;
pub mod engine;
pub mod host_side;
pub mod json_merge;
pub mod model;
pub mod reconcile;
pub mod rewrite;
pub mod side;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod reconcile_tests;

pub use base_store::{BaseState, BaseStore};
pub use engine::{sync_pass, DeleteGuard, Report, SyncError, SyncOptions};
pub use host_side::HostSide;
pub use model::{ConflictPolicy, Entry, EntryKind, Mode, RelPath, SideName, Snapshot};
pub use reconcile::{reconcile, Action, Conflict, Op, Plan, Reason, Resolution};
pub use rewrite::{Direction, Rule, RuleSet};
pub use side::{Side, SideError};
