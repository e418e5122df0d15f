//! The run lock: `lock` in the state directory, holding `{pid, since, command, host}` of the
//! process that owns it, so two applies cannot interleave.
//!
//! The lock is created exclusively: the holder's JSON is written completely to a temporary
//! file which is then hard-linked to `lock`; `link(2)` fails if `lock` exists, exactly like
//! `O_EXCL`, and a competitor never sees a half-written lock. A lock whose pid is dead on
//! this host is stale and is taken over by renaming a complete new lock over it, after
//! re-checking that it is still the same stale lock, then reading it back to confirm the
//! takeover won. A lock from another host is never assumed stale. The lock is removed on drop,
//! only if it is still ours.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::fsutil::{commit_atomic, temp_beside};

/// The lock's file name inside the state directory.
const LOCK_FILE_NAME: &str = "lock";

/// How many times to retry when the lock changes under us while we look at it.
const ATTEMPTS: usize = 5;

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id of the holder.
    pub pid: u32,
    /// When it took the lock.
    pub since: DateTime<Utc>,
    /// What it is doing, e.g. `sanctuary apply`.
    pub command: String,
    /// The host it runs on; its pid means nothing elsewhere.
    pub host: String,
    /// Taken for a moment (a supervisor's restart, one pass of a sync watch): whoever finds
    /// it held waits for it, up to [`BRIEF_PATIENCE`], instead of failing at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub brief: bool,
}

/// How long an acquire waits for a brief holder to let go.
pub const BRIEF_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create the state directory {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another sanctuary is running: pid {} on {} since {} (`{}`); wait for it, or stop it (lock file {})",
        holder.pid, holder.host, holder.since.to_rfc3339(), holder.command, path.display()
    )]
    Held { path: PathBuf, holder: Holder },
    #[error("cannot read the lock file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lock file {} is not a sanctuary lock; remove it if no sanctuary is running", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the lock file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the lock file {} kept changing while being taken over; try again", path.display())]
    Contended { path: PathBuf },
}

/// A held run lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    holder: Holder,
    bytes: Vec<u8>,
}

impl Lock {
    /// Takes the lock in state directory `dir` for `command` (shown to anyone who finds it
    /// held). Fails at once, naming the holder, if a live process holds it — unless that
    /// holder took it briefly, which is waited for.
    pub fn acquire(dir: &Path, command: &str) -> Result<Lock, LockError> {
        Self::take(dir, command, false)
    }

    /// Takes the lock for a short change, so that an `apply` that meets it waits rather
    /// than fails (see [`Holder::brief`]).
    pub fn acquire_brief(dir: &Path, command: &str) -> Result<Lock, LockError> {
        Self::take(dir, command, true)
    }

    fn take(dir: &Path, command: &str, brief: bool) -> Result<Lock, LockError> {
        fs::create_dir_all(dir).map_err(|source| LockError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(LOCK_FILE_NAME);
        let holder = Holder {
            pid: std::process::id(),
            since: Utc::now(),
            command: command.to_string(),
            host: hostname(),
            brief,
        };
        // `since` has nanoseconds and `pid` is ours, so these bytes identify this lock.
        let bytes = serde_json::to_vec(&holder).map_err(|source| LockError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let write_err = |source| LockError::Write {
            path: path.clone(),
            source,
        };

        let patience = std::time::Instant::now() + BRIEF_PATIENCE;
        let mut attempts = 0;
        while attempts < ATTEMPTS {
            attempts += 1;
            let mut tmp = temp_beside(&path).map_err(write_err)?;
            // No fsync: a lock only matters while its holder runs, and a crash that could
            // lose the write also ends the holder.
            tmp.write_all(&bytes).map_err(write_err)?;
            match fs::hard_link(tmp.path(), &path) {
                Ok(()) => {
                    return Ok(Lock {
                        path,
                        holder,
                        bytes,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(write_err(source)),
            }

            let Some(seen) = read_lock(&path)? else {
                continue; // released between our link and our read: try again
            };
            let current: Holder =
                serde_json::from_slice(&seen).map_err(|source| LockError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            if is_alive(&current) {
                if current.brief && std::time::Instant::now() < patience {
                    // It lets go in a moment; this wait is not a contended takeover.
                    attempts -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                return Err(LockError::Held {
                    path,
                    holder: current,
                });
            }
            // Stale. Only replace the exact lock we judged dead: another process may have
            // taken it over in the meantime.
            if read_lock(&path)?.as_deref() != Some(&seen[..]) {
                continue;
            }
            commit_atomic(tmp, &path).map_err(write_err)?;
            if read_lock(&path)?.as_deref() == Some(&bytes[..]) {
                return Ok(Lock {
                    path,
                    holder,
                    bytes,
                });
            }
        }
        Err(LockError::Contended { path })
    }

    /// Who holds this lock (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove only our own lock: if it was (wrongly) taken over, the new holder keeps it.
        if let Ok(Some(seen)) = read_lock(&self.path) {
            if seen == self.bytes {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// The lock file's bytes, or `None` if there is no lock file.
fn read_lock(path: &Path) -> Result<Option<Vec<u8>>, LockError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LockError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether the holder may still be running. Anything we cannot check counts as alive: a
/// wrong "alive" costs the user a message, a wrong "dead" costs interleaved applies.
fn is_alive(holder: &Holder) -> bool {
    if holder.host != hostname() {
        return true;
    }
    // pid 0 or one beyond i32 would address a process group or nothing: not a real holder.
    let Ok(pid) = i32::try_from(holder.pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true, // EPERM: it exists, under another user
    }
}

/// This machine's name, for telling whose pid a lock holds.
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_holder(dir: &Path, holder: &Holder) {
        fs::write(
            dir.join(LOCK_FILE_NAME),
            serde_json::to_vec(holder).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn a_second_acquire_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "sanctuary apply").unwrap();
        let err = Lock::acquire(dir.path(), "sanctuary destroy").unwrap_err();
        match &err {
            LockError::Held { holder, .. } => assert_eq!(holder, first.holder()),
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("`sanctuary apply`"), "{msg}");
        assert!(msg.contains(&first.holder().since.to_rfc3339()), "{msg}");
    }

    #[test]
    fn the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(dir.path(), "sanctuary apply").unwrap();
        let path = lock.path().to_path_buf();
        let on_disk: Holder = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(&on_disk, lock.holder());
        drop(lock);
        assert!(!path.exists());
        let again = Lock::acquire(dir.path(), "sanctuary apply").unwrap();
        drop(again);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary files left behind"
        );
    }

    #[test]
    fn a_brief_holder_is_waited_for_and_a_long_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let brief = Lock::acquire_brief(dir.path(), "supervise: restart web").unwrap();
        let started = std::time::Instant::now();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(brief);
        });
        let lock = Lock::acquire(dir.path(), "sanctuary apply").unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        release.join().unwrap();
        assert!(!lock.holder().brief);
        let err = Lock::acquire_brief(dir.path(), "supervise: restart web").unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
    }

    #[test]
    fn a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        write_holder(
            dir.path(),
            &Holder {
                pid: dead_pid,
                since: Utc::now(),
                command: "sanctuary apply".into(),
                host: hostname(),
                brief: false,
            },
        );
        let lock = Lock::acquire(dir.path(), "sanctuary run build").unwrap();
        let on_disk: Holder =
            serde_json::from_slice(&fs::read(dir.path().join(LOCK_FILE_NAME)).unwrap()).unwrap();
        assert_eq!(on_disk.pid, std::process::id());
        assert_eq!(on_disk.command, "sanctuary run build");
        drop(lock);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_lock_from_another_host_is_never_assumed_stale() {
        let dir = tempfile::tempdir().unwrap();
        write_holder(
            dir.path(),
            &Holder {
                pid: 1,
                since: Utc::now(),
                command: "sanctuary apply".into(),
                host: "some-other-machine.invalid".into(),
                brief: false,
            },
        );
        let err = Lock::acquire(dir.path(), "sanctuary apply").unwrap_err();
        assert!(matches!(err, LockError::Held { .. }));
    }

    #[test]
    fn a_corrupt_lock_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE_NAME), "not json").unwrap();
        let err = Lock::acquire(dir.path(), "sanctuary apply").unwrap_err();
        assert!(matches!(err, LockError::Corrupt { .. }));
        assert!(err.to_string().contains("lock"));
        assert_eq!(
            fs::read_to_string(dir.path().join(LOCK_FILE_NAME)).unwrap(),
            "not json",
            "left for the user to inspect"
        );
    }
}
