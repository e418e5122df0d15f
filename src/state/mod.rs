//! The local state store under a directory (normally `.sanctuary/`): what sanctuary last
//! did to each node ([`StateFile`], `state.json`, written atomically; [`StateStore`] pairs
//! it with its path) and the lock that keeps two runs from interleaving ([`Lock`], `lock`).

mod lock;
mod state_file;
pub mod stopped;
mod store;

pub use lock::{Holder, Lock, LockError};
pub use state_file::{
    NodeRecord, RecordResult, StateError, StateFile, STATE_FILE_NAME, STATE_SCHEMA_VERSION,
};
pub use store::StateStore;
