//! The services the user stopped on purpose (`sanctuary stop`), kept in
//! `<state>/stopped.json`, so that nothing watching the stack starts them again behind the
//! user's back. `start`, `restart` and an apply that starts the container clear the mark.

use std::collections::BTreeSet;
use std::path::Path;

/// The services the user stopped on purpose, as `stop` recorded them.
pub fn stopped_on_purpose(state_dir: &Path) -> BTreeSet<String> {
    std::fs::read(state_dir.join(STOPPED))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The file under the state directory.
const STOPPED: &str = "stopped.json";

/// Records `services` as stopped on purpose (`stopped`) or not.
pub fn mark_stopped(state_dir: &Path, services: &[String], stopped: bool) -> std::io::Result<()> {
    let mut set = stopped_on_purpose(state_dir);
    let before = set.clone();
    for s in services {
        if stopped {
            set.insert(s.clone());
        } else {
            set.remove(s);
        }
    }
    if set == before {
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(&set).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&state_dir.join(STOPPED), &bytes)
}
