//! Fingerprints: what a node's result depends on, reduced to one sha256.
//!
//! [`inputs`] expands input globs the way git sees the tree and hashes every file, through
//! the [`statcache::StatCache`] so an unchanged tree is stat-ed but never re-read. [`key`]
//! gathers everything a node's result depends on (resolved spec, input hashes, dependency
//! fingerprints, keyed secret hashes) into a printable [`key::Key`] whose canonical
//! serialisation hashes to the fingerprint, and explains the difference between two keys.
//! Nothing here knows the manifest model: callers pass plain paths, strings and maps.

pub mod inputs;
pub mod key;
pub mod salt;
pub mod statcache;

pub use inputs::{expand, hash_inputs, ExpandOptions, InputError};
pub use key::{Change, Key, Spec, SCHEMA_VERSION};
pub use salt::{Salt, SaltError};
pub use statcache::{StatCache, StatCacheError};
