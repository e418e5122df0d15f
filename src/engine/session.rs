//! [`Session`]: what one invocation shares across planning and walking — the manifest,
//! loaded once; the project's salt; the engine connection, made on first use; the state
//! store; the task cache and the stat cache; the keys computed so far; the options.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OnceCell, Semaphore};

use crate::backend::{Backend, BackendError};
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::fingerprint::{Salt, StatCache};
use crate::manifest::{Manifest, NodeId};
use crate::state::{Lock, NodeRecord, StateFile};

pub type Connected = std::result::Result<Arc<dyn Backend>, BackendError>;

/// Readiness probes (an `exec` each) allowed in flight at once across every service, so a
/// large stack coming up does not flood the engine with them.
pub const PROBES_IN_FLIGHT: usize = 4;

/// Steps whose work is the engine's (creating, starting, removing containers, volumes,
/// networks) allowed at once. They do not take the walk's job slots: those bound the
/// machine's own work (`-j`, the CPUs by default), while the engine works on requests in
/// parallel — Compose sends up to 64 at once.
pub const ENGINE_STEPS_IN_FLIGHT: usize = 16;

/// Containers stopped and removed at once. Docker 20.10 removing many containers of one
/// network at the same time sometimes keeps an endpoint of a removed container, and the
/// network can then not be removed until the daemon restarts (seen at sixteen at a time,
/// never at four in the same runs).
pub const REMOVALS_IN_FLIGHT: usize = 4;

/// How a command wants its walk done.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Most nodes working at once; waits on the engine do not count.
    pub jobs: usize,
    /// Start nothing new after the first failure.
    pub fail_fast: bool,
    /// Run tasks even when up to date.
    pub force: bool,
    /// Run tests even when they passed before with nothing changed.
    pub no_cache: bool,
    /// Sync passes only say what they would do.
    pub dry_run: bool,
    /// Arguments given after `--`, for these tasks.
    pub task_args: Vec<String>,
    pub arg_targets: Vec<NodeId>,
    /// `--json`: machine-readable output.
    pub json: bool,
}

/// What a finished test left for the report: its output (empty when cached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOutput {
    pub output: String,
}

/// Everything one command invocation shares.
pub struct Session {
    pub manifest: Arc<Manifest>,
    pub salt: Salt,
    pub options: Options,
    pub cache: Cache,
    pub stat: Mutex<StatCache>,
    /// Fingerprints of tasks and tests computed in this invocation, for their dependents.
    pub fingerprints: Mutex<HashMap<NodeId, String>>,
    /// What each test printed, for failure reports and JUnit.
    pub test_outputs: Mutex<BTreeMap<String, TestOutput>>,
    /// Backup name → the snapshot each backup in this invocation left (created or unchanged).
    pub snapshots: Mutex<BTreeMap<String, String>>,
    pub probes: Semaphore,
    pub engine_steps: Semaphore,
    pub removals: Semaphore,
    backend: OnceCell<Arc<dyn Backend>>,
    /// A connection started early, while planning does its own work.
    connecting: Mutex<Option<tokio::task::JoinHandle<Connected>>>,
    state: Mutex<StateFile>,
    state_path: PathBuf,
}

impl Session {
    /// Opens the project's side stores, removing what killed commands left in them; nothing
    /// talks to the engine yet.
    pub fn new(manifest: Arc<Manifest>, options: Options) -> Result<Session> {
        let state_dir = manifest.project.state_dir.clone();
        // Only the files of dead processes go, so no lock is needed: a live command's stay.
        sweep_state_dir(&state_dir);
        let salt = Salt::load_or_create(&state_dir).map_err(|e| Error::Io {
            message: format!(
                "cannot read or create the project salt in {}",
                state_dir.display()
            ),
            source: std::io::Error::other(e.to_string()),
        })?;
        let state_path = StateFile::path_in(&state_dir);
        let state = StateFile::load(&state_path)?;
        Ok(Session {
            cache: Cache::in_state_dir(&state_dir),
            stat: Mutex::new(StatCache::in_state_dir(&state_dir)),
            salt,
            options,
            fingerprints: Mutex::new(HashMap::new()),
            test_outputs: Mutex::new(BTreeMap::new()),
            snapshots: Mutex::new(BTreeMap::new()),
            probes: Semaphore::new(PROBES_IN_FLIGHT),
            engine_steps: Semaphore::new(ENGINE_STEPS_IN_FLIGHT),
            removals: Semaphore::new(REMOVALS_IN_FLIGHT),
            backend: OnceCell::new(),
            connecting: Mutex::new(None),
            state: Mutex::new(state),
            state_path,
            manifest,
        })
    }

    /// Uses `backend` instead of connecting to Docker (tests use the fake engine).
    pub fn with_backend(self, backend: Arc<dyn Backend>) -> Self {
        let _ = self.backend.set(backend);
        self
    }

    /// Takes over a connection started before the manifest was even loaded (see
    /// [`super::connect_early`]).
    pub fn adopt(self, early: tokio::task::JoinHandle<Connected>) -> Self {
        *self.connecting.lock().unwrap_or_else(|e| e.into_inner()) = Some(early);
        self
    }

    /// Starts connecting to the engine in the background, so the first round trip
    /// overlaps with hashing inputs; [`Session::backend`] then picks the connection up.
    pub fn preconnect(&self) {
        if self.backend.get().is_some() {
            return;
        }
        let mut slot = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(tokio::spawn(super::connect()));
        }
    }

    /// The engine, connected on first use (`DOCKER_HOST` or the default socket).
    pub async fn backend(&self) -> std::result::Result<Arc<dyn Backend>, BackendError> {
        let early = self
            .connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.backend
            .get_or_try_init(|| async {
                match early {
                    Some(handle) => match handle.await {
                        Ok(connected) => connected,
                        // The connecting task cannot panic short of a bug; connect again.
                        Err(_) => super::connect().await,
                    },
                    None => super::connect().await,
                }
            })
            .await
            .cloned()
    }

    /// Takes the project's lock for `command`, then reads the state again: another run may
    /// have recorded something since this one started.
    pub fn lock(&self, command: &str) -> Result<Lock> {
        let lock = Lock::acquire(&self.manifest.project.state_dir, command)?;
        let fresh = StateFile::load(&self.state_path)?;
        *self.state() = fresh;
        Ok(lock)
    }

    pub fn state(&self) -> MutexGuard<'_, StateFile> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state record of `kind/name`.
    pub fn record_of(&self, kind: &str, name: &str) -> Option<NodeRecord> {
        self.state().get(kind, name).cloned()
    }

    /// Records one finished node in the state store, at once.
    pub fn record(&self, record: NodeRecord) -> std::result::Result<(), String> {
        let what = format!("{}.{}", record.kind, record.name);
        self.state()
            .record(&self.state_path, record)
            .map_err(|e| format!("cannot record {what} in the state store: {e}"))
    }

    /// Forgets `kind/name` (destroyed) in the state store.
    pub fn forget(&self, kind: &str, name: &str) -> std::result::Result<(), String> {
        self.state()
            .forget(&self.state_path, kind, name)
            .map(|_| ())
            .map_err(|e| format!("cannot update the state store: {e}"))
    }

    /// After a teardown, forgets every service and network (and volume, with `volumes`), so
    /// the next plan does not compare against what no longer exists.
    pub fn forget_stack(&self, volumes: bool) {
        let mut state = self.state();
        let keys: Vec<(String, String)> = state
            .nodes
            .values()
            .filter(|r| {
                matches!(r.kind.as_str(), "service" | "network") || (volumes && r.kind == "volume")
            })
            .map(|r| (r.kind.clone(), r.name.clone()))
            .collect();
        for (kind, name) in keys {
            if let Err(e) = state.forget(&self.state_path, &kind, &name) {
                tracing::warn!("cannot update the state store: {e}");
            }
        }
    }

    /// Remembers a node's fingerprint for the keys of its dependents.
    pub fn note_fingerprint(&self, id: &NodeId, fp: String) {
        self.fingerprints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), fp);
    }

    pub fn fingerprint_of(&self, id: &NodeId) -> Option<String> {
        self.fingerprints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The key of `id`'s last success, read in full.
    pub fn last_key(&self, id: &NodeId) -> Option<crate::fingerprint::Key> {
        self.cache
            .last_success(id.kind.as_str(), &id.name)
            .ok()
            .flatten()
            .map(|r| r.key)
    }

    /// Only the fingerprint of `id`'s last success: all a node that did not change needs.
    pub fn last_fingerprint(&self, id: &NodeId) -> Option<String> {
        self.cache.last_fingerprint(id.kind.as_str(), &id.name)
    }

    /// `id`'s last success for a decision: its fingerprint now, its key when asked.
    pub fn last(&self, id: &NodeId) -> crate::plan::Last<'_> {
        let id = id.clone();
        crate::plan::Last {
            fingerprint: self.last_fingerprint(&id),
            load: Box::new(move || self.last_key(&id)),
        }
    }

    pub fn stat(&self) -> MutexGuard<'_, StatCache> {
        self.stat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps what a test printed, for the failure report and JUnit, with secrets masked.
    pub fn keep_test_output(&self, name: &str, output: String) {
        let output = crate::secrets::mask(&output).into_owned();
        self.test_outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), TestOutput { output });
    }

    pub fn test_outputs(&self) -> BTreeMap<String, TestOutput> {
        self.test_outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Saves what must outlive the invocation: the stat cache, and the records written with
    /// deferred durability (see [`crate::fsutil::write_atomic_deferred`]).
    pub fn finish(&self) {
        if let Err(e) = self.stat().save() {
            tracing::warn!("cannot save the stat cache: {e}");
        }
        crate::fsutil::flush_deferred();
    }
}

/// Removes the temporaries of dead processes ([`crate::debris`]) from the directories of the
/// state directory that every command writes in: the state and lock files', the node
/// records', the secret files', the sync rules' and the history's. The cache's object shards are swept as
/// they are written. A few directory reads: no command notices the cost.
fn sweep_state_dir(state_dir: &Path) {
    let cache = state_dir.join(crate::cache::DIR_NAME);
    for dir in [
        state_dir.to_path_buf(),
        cache.join("nodes"),
        state_dir.join("secrets"),
        state_dir.join("sync"),
        state_dir.join(crate::history::DIR_NAME),
    ] {
        if let Err(e) = crate::debris::sweep(&dir, true) {
            tracing::warn!("cannot sweep {}: {e}", dir.display());
        }
    }
}
