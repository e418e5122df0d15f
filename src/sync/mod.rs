//! Three-way file synchronisation between a host directory and a container directory, with
//! path rewriting between the two forms and key-wise merging of JSON files.
//!
//! The pipeline: each [`Side`] is scanned into a [`Snapshot`] in host form (container content
//! inverse-rewritten before hashing, so a rewrite alone is never a change); [`reconcile()`]
//! compares both with the recorded base and plans actions; the [`engine`] checks the plan
//! against its safety rules, applies it through the sides, and records the new base. This
//! library core knows nothing of the manifest or of Docker: a container side plugs in through
//! the [`Side`] trait. [`container_side`] is that side over the backend's archive API and
//! exec, and [`target`] turns a manifest `sync` rule into the two sides of a pass. A rule
//! may also sync a single file: [`file_side`] shows one file of a side rooted at its parent
//! directory, and the base records which kind of rule it was ([`RootKind`]).
//!
//! Decisions a user can rely on:
//! - **Comparison.** Entries compare by kind, content hash (host form) and executable bit;
//!   mtimes and other permission bits are side-local and never count as a change.
//! - **keep-both.** The version that keeps the name is a present one over a deletion (nothing
//!   is lost), a directory over a file (its contents stay reachable), otherwise the newer
//!   mtime, the host on a tie. The other is saved on both sides as
//!   `NAME.conflict-<side>-<UTC time>` and listed in the report.
//! - **JSON.** `.json` files changed on both sides merge key by key against the last agreed
//!   text (kept in the base); a merged file is written pretty-printed with keys in sorted
//!   order. Only if the same key changed differently does the policy decide for the whole
//!   file. A `.json` file is never propagated while it does not parse.
//! - **Rewriting.** Rule paths are absolute, made of letters, digits, `/` and `._-~+@%`
//!   (no spaces), and no rule string may occur inside another. A file that already mentions a
//!   destination-form path cannot round-trip and is not propagated (reported as failed). JSON
//!   strings that contain escapes are re-encoded canonically when rewritten.
//! - **Safety.** A missing root, an empty root whose state would be imposed on the other
//!   side (either side in two-way mode, the source in one-way mode; an emptied one-way
//!   destination is simply refilled), unresolved conflicts under `fail`, or mass
//!   deletion (more than 10 and more than half of the recorded entries, by default) stop the
//!   pass before anything changes. For a single-file rule the root is the file's parent
//!   directory and a missing file is an ordinary deletion. Directories are removed only
//!   when empty, so ignored files inside a deleted directory keep it (the failure is
//!   reported each pass).
//! - **Speed.** Each side keeps a hash cache (size, mtime, inode → host-form hash) in the base
//!   file; files modified within the last two seconds are always re-read.

mod apply;
mod batch;
mod json_strings;

pub mod base_store;
pub mod container_listing;
pub mod container_side;
pub mod container_tar;
pub mod engine;
pub mod file_side;
pub mod host_side;
pub mod json_merge;
pub mod last_pass;
pub mod model;
pub mod reconcile;
pub mod report;
pub mod rewrite;
pub mod side;
pub mod target;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod file_side_tests;
#[cfg(test)]
mod reconcile_tests;

pub use base_store::{BaseState, BaseStore};
pub use container_side::{ContainerSide, WriteAttrs};
pub use engine::{sync_pass, DeleteGuard, Report, SyncError, SyncOptions};
pub use file_side::{FileSide, ScanOne};
pub use host_side::HostSide;
pub use model::{ConflictPolicy, Entry, EntryKind, Mode, RelPath, RootKind, SideName, Snapshot};
pub use reconcile::{reconcile, Action, Conflict, Op, Plan, Reason, Resolution};
pub use rewrite::{Direction, Rule, RuleSet};
pub use side::{Side, SideError};
