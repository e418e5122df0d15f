//! What interrupted backups and restores leave in a copy, and removing it.
//!
//! A file in a copy is *debris* when it is a temporary nobody will finish:
//! - a name carrying a writer's mark ([`crate::debris`]): in a copy whose writers run on this
//!   machine ([`Store::writers_are_local`]), as soon as that process is gone; in a remote, once
//!   it is older than [`TEMP_GRACE`], since a pid there says nothing;
//! - a `.tmp…` name (what earlier versions named their temporaries) or an rclone partial
//!   upload of one of our files (`NAME.XXXXXXXX.partial`), once older than [`TEMP_GRACE`].
//!
//! A live writer's temporaries are never debris. An archive whose manifest was never written
//! is not debris either but an uncommitted snapshot ([`Orphan`](super::catalog::Orphan)),
//! which prune removes after the same grace: its name says nothing about its writer.
//!
//! `backups list` reports debris ([`debris_in`]); `backup`, `restore` and `backups prune`
//! remove it ([`sweep_listed`]).

use chrono::{DateTime, Utc};

use super::catalog::TEMP_GRACE;
use super::error::BackupError;
use super::naming::SnapshotStem;
use super::store::{Store, StoredFile};
use crate::debris::{self, Debris};

/// The suffix rclone gives an upload in progress (after a dot and 8 random characters).
const RCLONE_PARTIAL: &str = ".partial";

/// Whether `f`, listed at `now` in a copy whose writers are local when `local`, is debris.
pub fn is_debris(local: bool, f: &StoredFile, now: DateTime<Utc>) -> bool {
    let stale = || {
        f.modified
            .is_none_or(|m| now - DateTime::<Utc>::from(m) > TEMP_GRACE)
    };
    match debris::owner(&f.name) {
        Some(pid) if local => !debris::alive(pid),
        Some(_) => stale(),
        None => (f.name.starts_with(".tmp") || is_rclone_partial(&f.name)) && stale(),
    }
}

/// Whether `name` is rclone's temporary name for an upload of one of our files.
fn is_rclone_partial(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(RCLONE_PARTIAL) else {
        return false;
    };
    rest.rsplit_once('.')
        .is_some_and(|(base, _)| SnapshotStem::parse_file_name(base).is_some())
}

/// The debris among `files`, listed in `store` at `now`.
pub fn debris_in<'a>(
    store: &dyn Store,
    files: &'a [StoredFile],
    now: DateTime<Utc>,
) -> Vec<&'a StoredFile> {
    let local = store.writers_are_local();
    files.iter().filter(|f| is_debris(local, f, now)).collect()
}

/// How many files and bytes `files` hold.
pub fn total<'a>(files: impl IntoIterator<Item = &'a StoredFile>) -> Debris {
    let mut sum = Debris::default();
    for f in files {
        sum.entries += 1;
        sum.bytes += f.size;
    }
    sum
}

/// Removes the debris among `files` (a listing of `store` made at `now`); what it removed.
/// A file already gone counts as removed.
pub fn sweep_listed(
    store: &dyn Store,
    files: &[StoredFile],
    now: DateTime<Utc>,
) -> Result<Debris, BackupError> {
    let found = debris_in(store, files, now);
    for f in &found {
        store.remove(&f.name)?;
    }
    Ok(total(found))
}

/// Lists `store` and removes its debris.
pub fn sweep_copy(store: &dyn Store, now: DateTime<Utc>) -> Result<Debris, BackupError> {
    sweep_listed(store, &store.list()?, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn file(name: &str, age_secs: u64) -> StoredFile {
        StoredFile {
            name: name.into(),
            size: 10,
            modified: Some(SystemTime::now() - std::time::Duration::from_secs(age_secs)),
        }
    }

    fn dead_pid() -> u32 {
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        assert!(!debris::alive(max));
        max
    }

    #[test]
    fn a_dead_writers_temporary_is_debris_at_once_only_where_its_pid_means_something() {
        let now = Utc::now();
        let dead = file(&format!(".x{}{}-abc", debris::MARK, dead_pid()), 0);
        let live = file(&format!(".x{}abc", debris::own_prefix()), 7200);
        assert!(is_debris(true, &dead, now));
        assert!(!is_debris(true, &live, now), "a live writer is never swept");
        assert!(!is_debris(false, &dead, now), "remote: too fresh");
        assert!(
            is_debris(false, &live, now),
            "remote: old enough, whoever wrote it"
        );
    }

    #[test]
    fn old_style_and_partial_temporaries_wait_for_the_grace_period() {
        let now = Utc::now();
        let partial = "data-20260101T000000Z-0123456789ab.tar.zst.Ab3dEf9h.partial";
        for name in [".tmpAbC123", partial] {
            assert!(!is_debris(true, &file(name, 60), now), "{name}");
            assert!(is_debris(true, &file(name, 7200), now), "{name}");
            assert!(is_debris(false, &file(name, 7200), now), "{name}");
        }
        assert!(
            !is_debris(false, &file("notes.txt.Ab3dEf9h.partial", 7200), now),
            "not one of ours"
        );
        assert!(!is_debris(true, &file("notes.txt", 7200), now));
    }

    #[test]
    fn a_sweep_removes_debris_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::store::DirStore::new(dir.path());
        let dead = format!(".a{}{}-1", debris::MARK, dead_pid());
        std::fs::write(dir.path().join(&dead), b"12345").unwrap();
        let mine = format!(".b{}1", debris::own_prefix());
        std::fs::write(dir.path().join(&mine), b"live").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"user").unwrap();
        let now = Utc::now();
        let files = store.list().unwrap();
        assert_eq!(
            total(debris_in(&store, &files, now)),
            Debris {
                entries: 1,
                bytes: 5
            }
        );
        assert_eq!(sweep_copy(&store, now).unwrap().entries, 1);
        let left: Vec<_> = store.list().unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&mine) && left.contains(&"keep.txt".to_string()));
    }
}
