//! sanctuary: one KDL manifest declares a project's images, volumes, networks, services,
//! tasks, tests, backups and sync rules; a DAG engine plans and runs them idempotently.
//!
//! Data flows one way through the modules: `manifest` (read, decode, validate) → `graph`
//! (nodes, edges, order) → `fingerprint` (content hashes) → `plan` (one decision per node)
//! → `exec` (the scheduler's walk) → `executors` (one per kind) → `backend` (Docker).
//! `engine` ties them together for every command; `cli` only loads, selects, walks and
//! renders. `cache` and `state` are side stores under `.sanctuary/`; `backup` and `sync` are
//! the libraries their executors use; `observe` reads the stack for `status` and `logs`;
//! `proxy` is the TCP proxy in front of blue-green services.

pub mod backend;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod debris;
pub mod engine;
pub mod error;
pub mod exec;
pub mod executors;
pub mod fingerprint;
pub mod fsutil;
pub mod graph;
pub mod history;
pub mod manifest;
pub mod observe;
pub mod plan;
pub mod proxy;
pub mod secrets;
pub mod state;
pub mod supervise;
pub mod sync;
pub mod testing;
pub mod topo;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    cli::run()
}
