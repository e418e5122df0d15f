//! From the manifest's `backup` node to what the library works with: the copies as
//! [`CopyTarget`]s in restore-preference order, the `keep` block as a [`KeepPolicy`], and the
//! services that mount a volume (the ones a restore must stop). Pure: nothing is touched.

use super::copies::CopyTarget;
use super::rclone::RcloneStore;
use super::retention::KeepPolicy;
use super::stop::Stop;
use super::store::DirStore;
use crate::manifest::{self, Manifest, MountSource};

/// The copies of a backup, in manifest order: the first is where snapshots are made.
pub fn copy_targets(backup: &manifest::Backup) -> Vec<CopyTarget> {
    copy_targets_with(backup, &Stop::never())
}

/// [`copy_targets`], with uploads to remotes ended when `stop` is requested.
pub fn copy_targets_with(backup: &manifest::Backup, stop: &Stop) -> Vec<CopyTarget> {
    backup
        .copies
        .iter()
        .map(|c| CopyTarget {
            name: c.name.clone(),
            media: c.media.to_string(),
            offsite: c.offsite,
            store: match &c.target {
                manifest::CopyTarget::Dir(p) => Box::new(DirStore::new(p.clone())),
                manifest::CopyTarget::Rclone(r) => {
                    Box::new(RcloneStore::new(r.clone()).with_stop(stop))
                }
            },
        })
        .collect()
}

/// The directory of the first copy, where snapshots are created; `None` when the first copy
/// is a remote (a snapshot is always written locally first, then replicated).
pub fn primary_dir(backup: &manifest::Backup) -> Option<DirStore> {
    match &backup.copies.first()?.target {
        manifest::CopyTarget::Dir(p) => Some(DirStore::new(p.clone())),
        manifest::CopyTarget::Rclone(_) => None,
    }
}

/// The `keep` block as a retention policy; an unset bucket keeps nothing of its own.
pub fn keep_policy(keep: &manifest::Keep) -> KeepPolicy {
    KeepPolicy {
        last: keep.last.unwrap_or(0),
        hourly: keep.hourly.unwrap_or(0),
        daily: keep.daily.unwrap_or(0),
        weekly: keep.weekly.unwrap_or(0),
        monthly: keep.monthly.unwrap_or(0),
        yearly: keep.yearly.unwrap_or(0),
    }
}

/// The services that mount the manifest volume `volume`, in manifest order.
pub fn consumers(m: &Manifest, volume: &str) -> Vec<String> {
    m.services
        .values()
        .filter(|s| {
            s.mounts
                .iter()
                .any(|mt| matches!(&mt.source, MountSource::Volume(v) if v == volume))
        })
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Manifest {
        let dir = Path::new("/proj");
        manifest::load_str(
            "Sanctuary.kdl",
            text,
            &dir.join("Sanctuary.kdl"),
            dir,
            &Default::default(),
        )
        .map(|l| l.manifest)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
    }

    const TEXT: &str = r#"
project "p"
volume "data"
volume "other"
service "a" {
    image "busybox:x"
    mount "data" "/data"
}
service "b" {
    image "busybox:x"
    mount "other" "/other"
}
service "c" {
    image "busybox:x"
    mount "data" "/d" read-only=true
}
backup "data" {
    volume "data"
    copy "primary" path="./backups" media="disk"
    copy "remote" rclone="r:bucket" offsite=true
    keep last=3 weekly=2
}
"#;

    #[test]
    fn copies_keep_their_order_media_and_kind() {
        let m = load(TEXT);
        let b = &m.backups["data"];
        let copies = copy_targets(b);
        let names: Vec<_> = copies.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["primary", "remote"]);
        assert_eq!(copies[0].media, "disk");
        assert_eq!(copies[1].media, "cloud");
        assert!(copies[1].offsite);
        assert_eq!(
            primary_dir(b).unwrap().root(),
            Path::new("/proj/backups"),
            "relative copy paths resolve against the manifest's directory"
        );
    }

    #[test]
    fn keep_maps_each_bucket_and_unset_is_zero() {
        let m = load(TEXT);
        let p = keep_policy(&m.backups["data"].keep);
        assert_eq!((p.last, p.weekly, p.daily, p.monthly), (3, 2, 0, 0));
    }

    #[test]
    fn consumers_are_the_services_mounting_the_volume() {
        let m = load(TEXT);
        assert_eq!(consumers(&m, "data"), ["a", "c"]);
        assert_eq!(consumers(&m, "other"), ["b"]);
        assert!(consumers(&m, "none").is_empty());
    }
}
