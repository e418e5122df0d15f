//! `<state>/supervisor.json`: that a supervisor runs, where, since when and whether it is
//! degraded, rewritten at every reconcile and removed when it stops; `status` reads it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const FILE: &str = "supervisor.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub pid: u32,
    pub host: String,
    pub started: DateTime<Utc>,
    /// The last reconcile.
    pub heartbeat: DateTime<Utc>,
    pub interval_ms: u64,
    /// Why it cannot do all its work, while it cannot.
    pub degraded: Option<String>,
    /// Where it serves metrics.
    pub metrics: Option<String>,
}

/// What `status` says about the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// None ran since the state directory was made, or the last one stopped cleanly.
    None,
    Running(SupervisorStatus),
    /// Its record is there but it stopped answering (killed, or the machine slept).
    Silent(SupervisorStatus),
}

pub fn write(state_dir: &Path, status: &SupervisorStatus) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&state_dir.join(FILE), &bytes)
}

pub fn remove(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(FILE));
}

/// The supervisor as its record shows it now: running when its process lives and its last
/// reconcile is no older than three intervals.
pub fn read(state_dir: &Path) -> Seen {
    let Some(status) = std::fs::read(state_dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<SupervisorStatus>(&b).ok())
    else {
        return Seen::None;
    };
    let gone = crate::debris::gone(&status.host, status.pid);
    let late = Utc::now() - status.heartbeat
        > chrono::Duration::milliseconds((status.interval_ms * 3 + 5000) as i64);
    if gone || late {
        Seen::Silent(status)
    } else {
        Seen::Running(status)
    }
}
