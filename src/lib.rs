//! sanctuary: one KDL manifest declares a project's images, volumes, networks, services,
//! tasks, tests, backups and sync rules; a DAG engine plans and runs them idempotently.
//!
//! Data flows one way through the modules: `manifest` (read, decode, validate) → `graph`
//! (nodes, edges, order) → `fingerprint` (content hashes) → `plan` → `exec` (scheduler)
//! → `backend` (Docker). `cache` and `state` are side stores under `.sanctuary/`.

pub mod backup;
pub mod fsutil;

pub fn run() -> i32 {
    0
}
