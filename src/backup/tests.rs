//! End-to-end tests of the backup module over real directories, GNU tar and (when
//! installed) rclone.

use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::backup::hashing::hash_reader;

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::days(i64::from(day))
        + chrono::Duration::hours(i64::from(hour))
}

fn set_mtime(path: &Path, secs: u64) {
    let when = UNIX_EPOCH + Duration::from_secs(secs);
    File::options()
        .write(true)
        .open(path)
        .or_else(|_| File::open(path))
        .unwrap()
        .set_times(FileTimes::new().set_modified(when))
        .unwrap();
}

/// A tree with nested dirs, modes, an empty file and dir, a symlink, a long path and a
/// larger file.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("a.txt"), b"alpha\n").unwrap();
    fs::write(root.join("sub/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("sub/secret"), b"s3cret").unwrap();
    fs::set_permissions(root.join("sub/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("sub/deeper/empty-file"), b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("big.bin"), big).unwrap();
    let long = "x".repeat(120);
    fs::write(root.join("sub").join(&long), b"long name").unwrap();
    symlink("sub/run.sh", root.join("link-to-run")).unwrap();
    symlink("../a.txt", root.join("sub/up-link")).unwrap();
    set_mtime(&root.join("a.txt"), 1_600_000_000);
    set_mtime(&root.join("sub/deeper"), 1_500_000_000);
}

fn snapshot(primary: &DirStore, name: &str, src: &Path, now: DateTime<Utc>) -> BackupReport {
    create_snapshot(
        primary,
        name,
        Source::from_dir(src),
        &ArchiveOptions::default(),
        now,
    )
    .unwrap()
}

fn created(report: &BackupReport) -> &SnapshotManifest {
    match &report.outcome {
        BackupOutcome::Created(m) => m,
        other => panic!("expected a new snapshot, got {other:?}"),
    }
}

fn only_snapshot(store: &dyn Store) -> SnapshotInfo {
    let c = list_snapshots(store, t(400, 0)).unwrap();
    assert_eq!(c.snapshots.len(), 1, "{:?}", c.snapshots);
    c.snapshots[0].clone()
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    let i = (at as usize).min(bytes.len() - 1);
    bytes[i] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

fn sha_of(path: &Path) -> String {
    hash_reader(File::open(path).unwrap()).unwrap().0
}

/// Checks that `dir` holds exactly the manifest's entries with their metadata.
fn assert_tree_matches(dir: &Path, m: &SnapshotManifest) {
    use std::os::unix::fs::MetadataExt;
    for e in &m.entries {
        let p = dir.join(&e.path);
        let meta = fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        match e.kind {
            EntryKind::File => {
                assert!(meta.is_file(), "{}", e.path);
                assert_eq!(Some(sha_of(&p)), e.sha256, "content of {}", e.path);
                assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    e.mode,
                    "mode of {}",
                    e.path
                );
            }
            EntryKind::Dir => {
                assert!(meta.is_dir(), "{}", e.path);
                assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    e.mode,
                    "mode of {}",
                    e.path
                );
            }
            EntryKind::Symlink | EntryKind::Hardlink => {
                assert!(meta.file_type().is_symlink(), "{}", e.path);
                assert_eq!(
                    fs::read_link(&p).unwrap().to_str(),
                    e.target.as_deref(),
                    "target of {}",
                    e.path
                );
            }
        }
        assert_eq!(meta.mtime() as u64, e.mtime, "mtime of {}", e.path);
        assert_eq!(
            (u64::from(meta.uid()), u64::from(meta.gid())),
            (e.uid, e.gid),
            "owner of {}",
            e.path
        );
    }
    let count = walk_count(dir);
    assert_eq!(
        count,
        m.entries.len(),
        "no extra entries in {}",
        dir.display()
    );
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    for de in fs::read_dir(dir).unwrap() {
        let de = de.unwrap();
        n += 1;
        if de.file_type().unwrap().is_dir() {
            n += walk_count(&de.path());
        }
    }
    n
}

#[test]
fn gnu_tar_extracts_our_archive_with_every_hash_mode_mtime_and_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let report = snapshot(&primary, "data", &src, t(0, 0));
    let m = created(&report).clone();
    assert!(
        m.entries.windows(2).all(|w| w[0].path < w[1].path),
        "sorted entries"
    );
    assert_eq!(
        m.archive.size,
        fs::metadata(primary.path_of(&m.archive.file))
            .unwrap()
            .len()
    );
    assert_eq!(m.archive.sha256, sha_of(&primary.path_of(&m.archive.file)));
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let status = Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(primary.path_of(&m.archive.file))
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_tree_matches(&out, &m);
    // The manifest also describes the source exactly.
    assert_tree_matches(&src, &m);
}

#[test]
fn unchanged_source_writes_nothing_and_a_change_makes_a_new_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let first = snapshot(&primary, "data", &src, t(0, 0));
    let files_before = primary.list().unwrap();
    let second = snapshot(&primary, "data", &src, t(0, 1));
    assert!(matches!(second.outcome, BackupOutcome::Unchanged(_)));
    assert_eq!(second.id(), first.id());
    assert_eq!(
        second.summary(),
        format!("unchanged, snapshot {} already exists", &first.id()[..12])
    );
    assert_eq!(
        primary.list().unwrap(),
        files_before,
        "no new or temp files"
    );
    fs::set_permissions(src.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let third = snapshot(&primary, "data", &src, t(0, 2));
    assert_ne!(created(&third).id, first.id(), "a mode change is a change");
    assert_eq!(
        list_snapshots(&primary, t(1, 0)).unwrap().snapshots.len(),
        2
    );
}

fn snapshot_with_cache(
    primary: &DirStore,
    src: &Path,
    cache: &Path,
    now: DateTime<Utc>,
) -> BackupReport {
    let opts = ArchiveOptions {
        stat_cache: Some(cache.to_path_buf()),
        ..Default::default()
    };
    create_snapshot(primary, "data", Source::from_dir(src), &opts, now).unwrap()
}

/// Moves every file's mtime out of the stat cache's racy window.
fn age_tree(root: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for entry in walkdir(root) {
        if fs::symlink_metadata(&entry).unwrap().is_file() {
            fs::File::options()
                .write(true)
                .open(&entry)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn unchanged_directory_with_a_stat_cache_is_not_read_and_a_change_is_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    age_tree(&src);
    let cache = tmp.path().join("state/data.statcache");
    let primary = DirStore::new(tmp.path().join("backups"));
    let first = snapshot_with_cache(&primary, &src, &cache, t(0, 0));
    assert!(first.archived);
    assert!(cache.is_file(), "the cache is kept");
    let second = snapshot_with_cache(&primary, &src, &cache, t(0, 1));
    assert!(matches!(second.outcome, BackupOutcome::Unchanged(_)));
    assert_eq!(second.id(), first.id());
    assert!(!second.archived, "answered from the cache, nothing read");
    // Rewritten with the same bytes and mtime (as `rsync -a` may): the cache cannot answer
    // for it (its ctime moved), so it alone is hashed, and the tree is recognised without
    // compressing it.
    let a = src.join("a.txt");
    let old_mtime = fs::metadata(&a).unwrap().modified().unwrap();
    fs::write(&a, fs::read(&a).unwrap()).unwrap();
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    let touched = snapshot_with_cache(&primary, &src, &cache, t(0, 1));
    assert_eq!(touched.id(), first.id());
    assert!(!touched.archived, "only the touched file was read");
    // Same size, mtime put back: the cache must not hide the new content.
    let meta = fs::metadata(&a).unwrap();
    let mut content = fs::read(&a).unwrap();
    content[0] ^= 0x20;
    fs::write(&a, &content).unwrap();
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    let third = snapshot_with_cache(&primary, &src, &cache, t(0, 2));
    assert!(third.archived);
    let m = created(&third);
    assert_ne!(m.id, first.id());
    assert_tree_matches(&src, m);
    // Without the cache the same content is recognised after compressing.
    let fourth = snapshot(&primary, "data", &src, t(0, 3));
    assert_eq!(fourth.id(), third.id());
    assert!(fourth.archived && matches!(fourth.outcome, BackupOutcome::Unchanged(_)));
}

#[test]
fn tar_stream_source_gives_the_same_snapshot_as_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("vol");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let from_dir = snapshot(&primary, "data", &src, t(0, 0));
    // Like Docker's archive API: entries prefixed with the directory's base name.
    let out = Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .args(["-cf", "-", "vol"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let source = Source::TarStream {
        reader: Box::new(std::io::Cursor::new(out.stdout)),
        strip_components: 1,
    };
    let from_stream = create_snapshot(
        &primary,
        "data",
        source,
        &ArchiveOptions::default(),
        t(0, 1),
    )
    .unwrap();
    assert!(
        matches!(from_stream.outcome, BackupOutcome::Unchanged(_)),
        "same content, same id: {:?}",
        from_stream.summary()
    );
    assert_eq!(from_stream.id(), from_dir.id());
    assert!(
        !from_stream.archived,
        "a spooled stream is hashed on the way in: no compression to learn its id"
    );
}

#[test]
fn tar_stream_with_hard_links_and_escaping_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"shared").unwrap();
    fs::hard_link(src.join("f"), src.join("g")).unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    let primary = DirStore::new(tmp.path().join("b"));
    let r = create_snapshot(
        &primary,
        "hl",
        Source::from_tar_stream(std::io::Cursor::new(out.stdout)),
        &ArchiveOptions::default(),
        t(0, 0),
    )
    .unwrap();
    let m = created(&r);
    let g = m.entries.iter().find(|e| e.path == "g").unwrap();
    assert_eq!(g.kind, EntryKind::File, "hard links become plain files");
    assert_eq!(
        g.sha256,
        m.entries.iter().find(|e| e.path == "f").unwrap().sha256
    );

    let evil = malicious_tar(&[Evil::File("../escape")]);
    let err = create_snapshot(
        &primary,
        "hl",
        Source::from_tar_stream(std::io::Cursor::new(evil)),
        &ArchiveOptions::default(),
        t(0, 1),
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::BadSourceEntry { .. }), "{err}");
}

#[test]
fn flipped_byte_is_caught_by_quick_and_full_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let info = only_snapshot(&primary);
    for level in [VerifyLevel::Quick, VerifyLevel::Full] {
        assert!(verify_snapshot(&primary, &info, level, t(0, 1))
            .unwrap()
            .ok());
    }
    assert!(only_snapshot(&primary).verified_ok(), "a pass is recorded");
    let archive = primary.path_of(&info.archive_name);
    flip_byte(&archive, fs::metadata(&archive).unwrap().len() / 2);
    let quick = verify_snapshot(&primary, &info, VerifyLevel::Quick, t(0, 2)).unwrap();
    assert!(
        matches!(quick.problems[..], [Problem::ArchiveHash { .. }]),
        "{:?}",
        quick.problems
    );
    let full = verify_snapshot(&primary, &info, VerifyLevel::Full, t(0, 2)).unwrap();
    assert!(!full.ok());
    assert!(full
        .problems
        .iter()
        .any(|p| matches!(p, Problem::ArchiveHash { .. })));
    let listed = only_snapshot(&primary);
    assert!(!listed.verified_ok(), "the failure is recorded");
    assert!(listed.verified.is_some());
}

#[test]
fn full_verify_checks_entries_that_quick_verify_cannot_see() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let info = only_snapshot(&primary);
    let mpath = primary.path_of(&info.manifest_name);
    let mut m = SnapshotManifest::from_json(&fs::read(&mpath).unwrap()).unwrap();
    let e = m.entries.iter_mut().find(|e| e.path == "a.txt").unwrap();
    e.sha256 = Some("0".repeat(64));
    fs::write(&mpath, m.to_json()).unwrap();
    assert!(
        verify_snapshot(&primary, &info, VerifyLevel::Quick, t(0, 1))
            .unwrap()
            .ok()
    );
    let full = verify_snapshot(&primary, &info, VerifyLevel::Full, t(0, 1)).unwrap();
    assert_eq!(
        full.problems,
        vec![Problem::EntryMismatch {
            path: "a.txt".into(),
            fields: vec!["sha256".into()]
        }]
    );
    // An entry the archive lacks is reported as missing.
    let mut extra = m.clone();
    let mut ghost = extra.entries.last().unwrap().clone();
    ghost.path = "zzz-ghost".into();
    extra.entries.push(ghost);
    fs::write(&mpath, extra.to_json()).unwrap();
    let full = verify_snapshot(&primary, &info, VerifyLevel::Full, t(0, 1)).unwrap();
    assert!(
        full.problems.contains(&Problem::Missing {
            paths: vec!["zzz-ghost".into()]
        }),
        "{:?}",
        full.problems
    );
}

#[test]
fn restore_replaces_the_target_and_preserves_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let target = tmp.path().join("restored");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("stale"), b"old").unwrap();
    let report = restore_into_dir(
        &[&primary],
        "data",
        &Selector::Latest,
        &target,
        t(0, 1),
        &Stop::never(),
    )
    .unwrap();
    assert!(report.verified);
    assert_eq!(report.snapshot.as_deref(), Some(m.id.as_str()));
    assert_eq!(report.leftover, None);
    assert_tree_matches(&target, &m);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        3,
        "no staging or old tree left beside the target"
    );
    // A restore into a path that does not exist yet, selected by id prefix.
    let fresh = tmp.path().join("fresh");
    restore_into_dir(
        &[&primary],
        "data",
        &Selector::Id(m.id[..8].into()),
        &fresh,
        t(0, 1),
        &Stop::never(),
    )
    .unwrap();
    assert_tree_matches(&fresh, &m);
}

#[test]
fn restore_falls_back_to_the_next_copy_when_one_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let info = only_snapshot(&primary);
    let usb = CopyTarget {
        name: "usb".into(),
        media: "usb".into(),
        offsite: false,
        store: Box::new(DirStore::new(tmp.path().join("usb"))),
    };
    assert_eq!(
        replicate(&primary, &info, &usb, t(0, 1), &Stop::never())
            .unwrap()
            .outcome,
        CopyOutcome::Copied
    );
    assert_eq!(
        replicate(&primary, &info, &usb, t(0, 1), &Stop::never())
            .unwrap()
            .outcome,
        CopyOutcome::AlreadyPresent
    );
    assert!(
        only_snapshot(usb.store.as_ref()).verified_ok(),
        "copy was hashed at the destination"
    );
    flip_byte(&primary.path_of(&info.archive_name), 200);
    let target = tmp.path().join("restored");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep-me"), b"precious").unwrap();
    let report = restore_into_dir(
        &[&primary, usb.store.as_ref()],
        "data",
        &Selector::Latest,
        &target,
        t(0, 2),
        &Stop::never(),
    )
    .unwrap();
    assert_eq!(report.from, usb.store.describe());
    assert_eq!(
        report.rejected_copies.len(),
        1,
        "{:?}",
        report.rejected_copies
    );
    assert!(report.rejected_copies[0].starts_with(&primary.describe()));
    assert_tree_matches(&target, &m);

    // With every copy corrupt, the target is left exactly as it was.
    flip_byte(&tmp.path().join("usb").join(&info.archive_name), 300);
    fs::write(target.join("keep-me"), b"precious").unwrap();
    let err = restore_into_dir(
        &[&primary, usb.store.as_ref()],
        "data",
        &Selector::Latest,
        &target,
        t(0, 3),
        &Stop::never(),
    )
    .unwrap_err();
    assert!(
        matches!(err, BackupError::NoUsableCopy { ref failures, .. } if failures.len() == 2),
        "{err}"
    );
    assert_eq!(fs::read(target.join("keep-me")).unwrap(), b"precious");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        4,
        "no staging left behind"
    );
}

#[test]
fn verified_tar_stream_unpacks_to_the_snapshot_and_skips_corrupt_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let info = only_snapshot(&primary);
    let second = DirStore::new(tmp.path().join("second"));
    let target = CopyTarget {
        name: "second".into(),
        media: "disk".into(),
        offsite: false,
        store: Box::new(second.clone()),
    };
    replicate(&primary, &info, &target, t(0, 1), &Stop::never()).unwrap();
    flip_byte(&primary.path_of(&info.archive_name), 100);
    let (mut stream, report) = restore_tar_stream(
        &[&primary, &second],
        "data",
        &Selector::Latest,
        tmp.path(),
        t(0, 2),
        &Stop::never(),
    )
    .unwrap();
    assert_eq!(report.from, second.describe());
    let mut tar_bytes = Vec::new();
    stream.read_to_end(&mut tar_bytes).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(&out)
        .args(["-xf", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar_bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_tree_matches(&out, &m);
}

/// Malicious entries, built with the tar crate's low-level header API.
enum Evil<'a> {
    File(&'a str),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn malicious_tar(entries: &[Evil<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            Evil::File(p) => {
                h.set_entry_type(tar::EntryType::Regular);
                (p, b"pwned")
            }
            Evil::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                (p, b"")
            }
            Evil::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                (p, b"")
            }
        };
        // Raw name bytes: the safe setters would refuse these paths.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn zstd_file(path: &Path, tar_bytes: &[u8]) {
    fs::write(path, zstd::encode_all(tar_bytes, 3).unwrap()).unwrap();
}

#[test]
fn escaping_archives_are_refused_and_write_nothing() {
    let cases: Vec<(&str, Vec<Evil<'_>>)> = vec![
        ("dot-dot", vec![Evil::File("ok"), Evil::File("../escaped")]),
        (
            "absolute",
            vec![Evil::File("/tmp/sanctuary-absolute-escape")],
        ),
        ("escaping symlink", vec![Evil::Symlink("out", "../../..")]),
        ("absolute symlink", vec![Evil::Symlink("etc", "/etc")]),
        (
            "through symlink",
            vec![
                Evil::Dir("real"),
                Evil::Symlink("via", "real"),
                Evil::File("via/x"),
            ],
        ),
        (
            "duplicate",
            vec![Evil::Dir("d"), Evil::Symlink("d", "."), Evil::File("d/x")],
        ),
    ];
    for (what, entries) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("evil.tar.zst");
        zstd_file(&archive, &malicious_tar(&entries));
        let work = tmp.path().join("work");
        let target = work.join("target");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("precious"), b"data").unwrap();
        let err = restore_foreign_archive(&archive, &target, SpecialBits::Clear, &Stop::never())
            .unwrap_err();
        assert!(
            matches!(err, BackupError::ForeignArchiveRejected { .. }),
            "{what}: {err}"
        );
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            1,
            "{what}: target untouched"
        );
        assert_eq!(
            fs::read_dir(&work).unwrap().count(),
            1,
            "{what}: no staging left"
        );
        assert!(!work.join("escaped").exists(), "{what}");
        assert!(
            !Path::new("/tmp/sanctuary-absolute-escape").exists(),
            "{what}"
        );
        // Verification of a snapshot holding such entries flags them too.
        let problems = scan::scan(
            File::open(&archive).unwrap(),
            None,
            &mut scan::Discard,
            false,
        )
        .unwrap()
        .problems;
        assert!(
            problems.iter().any(|p| matches!(p, Problem::Unsafe { .. })),
            "{what}: {problems:?}"
        );
    }
}

#[test]
fn archive_made_by_gnu_tar_restores_unverified() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let archive = tmp.path().join("gnu.tar.zst");
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let target = tmp.path().join("restored");
    let report =
        restore_foreign_archive(&archive, &target, SpecialBits::Clear, &Stop::never()).unwrap();
    assert!(!report.verified);
    assert_eq!(report.snapshot, None);
    // Our own manifest of the source describes the restored tree.
    let primary = DirStore::new(tmp.path().join("b"));
    let m = created(&snapshot(&primary, "x", &src, t(0, 0))).clone();
    assert_tree_matches(&target, &m);

    let broken = tmp.path().join("broken.tar.zst");
    let bytes = fs::read(&archive).unwrap();
    fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let err = restore_foreign_archive(
        &broken,
        &tmp.path().join("other"),
        SpecialBits::Clear,
        &Stop::never(),
    )
    .unwrap_err();
    assert!(
        matches!(err, BackupError::ForeignArchiveRejected { .. }),
        "{err}"
    );
    assert!(!tmp.path().join("other").exists());
}

#[test]
fn archive_without_manifest_is_not_listed_and_prune_cleans_it_when_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let info = only_snapshot(&primary);
    // Simulate a crash between committing the archive and writing the manifest.
    fs::remove_file(primary.path_of(&info.manifest_name)).unwrap();
    fs::write(primary.path_of("notes.txt"), b"not ours").unwrap();
    let now = Utc::now();
    let catalog = list_snapshots(&primary, now).unwrap();
    assert!(catalog.snapshots.is_empty(), "not a complete snapshot");
    assert!(
        catalog.orphans.is_empty(),
        "too fresh to be called an orphan"
    );
    set_mtime(&primary.path_of(&info.archive_name), 1_000_000_000);
    let catalog = list_snapshots(&primary, now).unwrap();
    assert_eq!(catalog.orphans.len(), 1);
    assert_eq!(catalog.orphans[0].name, info.archive_name);
    let report = prune(
        &primary,
        "data",
        &KeepPolicy {
            last: 1,
            ..Default::default()
        },
        &Default::default(),
        now,
        false,
    )
    .unwrap();
    assert_eq!(report.deleted_files, vec![info.archive_name.clone()]);
    let names: Vec<_> = primary
        .list()
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["notes.txt"], "only our orphan was deleted");
    // The next backup commits a complete snapshot again.
    snapshot(&primary, "data", &src, t(0, 1));
    assert_eq!(list_snapshots(&primary, now).unwrap().snapshots.len(), 1);
}

#[test]
fn prune_keeps_the_policy_and_the_newest_verified_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let primary = DirStore::new(tmp.path().join("backups"));
    for day in 0..5u32 {
        fs::write(src.join("f"), format!("version {day}")).unwrap();
        snapshot(&primary, "data", &src, t(day, 0));
    }
    // Another backup in the same directory is never touched by pruning "data".
    snapshot(&primary, "other", &src, t(0, 0));
    let all = list_snapshots(&primary, t(10, 0)).unwrap();
    let oldest = all.of_backup("data").next().unwrap().clone();
    assert!(
        verify_snapshot(&primary, &oldest, VerifyLevel::Quick, t(10, 0))
            .unwrap()
            .ok()
    );
    let policy = KeepPolicy {
        last: 2,
        ..Default::default()
    };
    let dry = prune(
        &primary,
        "data",
        &policy,
        &Default::default(),
        t(10, 0),
        true,
    )
    .unwrap();
    assert_eq!(
        list_snapshots(&primary, t(10, 0)).unwrap().snapshots.len(),
        6,
        "dry run"
    );
    let report = prune(
        &primary,
        "data",
        &policy,
        &Default::default(),
        t(10, 0),
        false,
    )
    .unwrap();
    assert_eq!(dry, report);
    let left = list_snapshots(&primary, t(10, 0)).unwrap();
    let days: Vec<_> = left.of_backup("data").map(|s| s.created).collect();
    assert_eq!(
        days,
        vec![t(0, 0), t(3, 0), t(4, 0)],
        "last 2 + the newest verified"
    );
    assert_eq!(left.of_backup("other").count(), 1);
    assert!(left.orphans.is_empty());
    assert_eq!(
        primary.list().unwrap().len(),
        3 * 2 + 1 + 2,
        "manifests, archives, record"
    );
}

#[test]
fn prune_keeps_a_pinned_snapshot_the_policy_would_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let primary = DirStore::new(tmp.path().join("backups"));
    for day in 0..4u32 {
        fs::write(src.join("f"), format!("version {day}")).unwrap();
        snapshot(&primary, "data", &src, t(day, 0));
    }
    let all = list_snapshots(&primary, t(10, 0)).unwrap();
    let second = all
        .of_backup("data")
        .find(|s| s.created == t(1, 0))
        .unwrap()
        .id
        .clone();
    let policy = KeepPolicy {
        last: 1,
        ..Default::default()
    };
    let pinned = std::collections::BTreeMap::from([(second.clone(), "generation 7".to_string())]);
    let report = prune(&primary, "data", &policy, &pinned, t(10, 0), false).unwrap();
    let kept = report.decisions.iter().find(|d| d.id == second).unwrap();
    assert!(kept.keep && kept.reasons.contains(&"generation 7".to_string()));
    let days: Vec<_> = list_snapshots(&primary, t(10, 0))
        .unwrap()
        .of_backup("data")
        .map(|s| s.created)
        .collect();
    assert_eq!(
        days,
        vec![t(1, 0), t(3, 0)],
        "the newest and the pinned one"
    );
}

fn candidates(times: &[DateTime<Utc>]) -> Vec<Candidate> {
    times
        .iter()
        .enumerate()
        .map(|(i, c)| Candidate {
            id: format!("{i:04}"),
            created: *c,
            verified: false,
        })
        .collect()
}

fn kept(decisions: &[KeepDecision]) -> Vec<DateTime<Utc>> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.created)
        .collect()
}

#[test]
fn retention_keeps_the_newest_snapshot_of_each_recent_period() {
    // Every 6 hours for 400 days.
    let times: Vec<_> = (0..400 * 4)
        .map(|i| t(0, 0) + chrono::Duration::hours(6 * i))
        .collect();
    let now = t(400, 0);
    let policy = KeepPolicy {
        last: 3,
        daily: 7,
        weekly: 4,
        monthly: 6,
        yearly: 2,
        hourly: 0,
    };
    let decisions = select_keep(&candidates(&times), &policy, now);
    let keep = kept(&decisions);
    let newest = *times.last().unwrap();
    // last 3: the three newest.
    for i in 0..3 {
        assert!(keep.contains(&(newest - chrono::Duration::hours(6 * i))));
    }
    // daily 7: the 18:00 snapshot of each of the 7 newest days.
    for d in 0..7 {
        assert!(
            keep.contains(&(newest - chrono::Duration::days(d))),
            "day {d}"
        );
    }
    // monthly: the last snapshot of each month, e.g. 2026-12-31 18:00.
    assert!(keep.contains(&Utc.with_ymd_and_hms(2026, 12, 31, 18, 0, 0).unwrap()));
    assert!(keep.contains(&Utc.with_ymd_and_hms(2026, 9, 30, 18, 0, 0).unwrap()));
    assert!(
        !keep.contains(&Utc.with_ymd_and_hms(2026, 6, 30, 18, 0, 0).unwrap()),
        "7th month back"
    );
    // yearly 2: newest of 2027 (already kept) and of 2026.
    let y2026 = decisions
        .iter()
        .find(|d| d.created == Utc.with_ymd_and_hms(2026, 12, 31, 18, 0, 0).unwrap())
        .unwrap();
    assert!(
        y2026.reasons.iter().any(|r| r == "yearly 2026"),
        "{:?}",
        y2026.reasons
    );
    // Buckets overlap, so the total is at most the sum of the counts.
    assert!(keep.len() <= 3 + 7 + 4 + 6 + 2);
    assert!(keep.len() >= 7 + 6, "{}", keep.len());
    assert_eq!(decisions.len(), times.len());
}

#[test]
fn retention_periods_count_only_periods_that_have_snapshots() {
    // Days 0 (two), 1, 4: daily=2 keeps day 4 and day 1, the newest of each.
    let times = [t(0, 1), t(0, 5), t(1, 3), t(4, 2)];
    let policy = KeepPolicy {
        daily: 2,
        ..Default::default()
    };
    assert_eq!(
        kept(&select_keep(&candidates(&times), &policy, t(10, 0))),
        vec![t(4, 2), t(1, 3)]
    );
    let hourly = KeepPolicy {
        hourly: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(&select_keep(&candidates(&times), &hourly, t(10, 0))),
        vec![t(4, 2), t(1, 3), t(0, 5)]
    );
}

#[test]
fn retention_safety_rules() {
    let times = [t(0, 0), t(1, 0), t(2, 0), t(30, 0)];
    let mut c = candidates(&times);
    c[1].verified = true;
    let last1 = KeepPolicy {
        last: 1,
        ..Default::default()
    };
    // t(30) is in the future relative to now = t(5): kept, and not counted.
    let d = select_keep(&c, &last1, t(5, 0));
    assert_eq!(kept(&d), vec![t(30, 0), t(2, 0), t(1, 0)]);
    assert!(d[2]
        .reasons
        .contains(&"newest verified snapshot".to_string()));
    // Empty policy keeps everything.
    assert_eq!(
        kept(&select_keep(&c, &KeepPolicy::default(), t(40, 0))).len(),
        4
    );
    // No verified snapshot: the newest is still protected even with a bucket that skips it.
    let none_verified = candidates(&times[..3]);
    let yearly_only = KeepPolicy {
        yearly: 1,
        ..Default::default()
    };
    assert_eq!(
        kept(&select_keep(&none_verified, &yearly_only, t(40, 0))),
        vec![t(2, 0)]
    );
}

/// Whether rclone can run; skips loudly when not, unless `SANCTUARY_REQUIRE_SFTP=1` (the
/// sftp tests need rclone too), where a missing rclone fails the test.
fn rclone_or_skip() -> bool {
    if RcloneStore::available() {
        return true;
    }
    if std::env::var("SANCTUARY_REQUIRE_SFTP").as_deref() == Ok("1") {
        panic!("rclone is required (SANCTUARY_REQUIRE_SFTP=1) but cannot be run");
    }
    // The real stderr: the harness would hide `eprintln!` of a passing test.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"SKIPPED: rclone is not installed; the rclone copy target is untested\n",
    );
    false
}

#[test]
fn rclone_copy_target_round_trips() {
    if !rclone_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let info = only_snapshot(&primary);
    let remote = format!(":local:{}", tmp.path().join("remote").display());
    let offsite = CopyTarget {
        name: "offsite".into(),
        media: "cloud".into(),
        offsite: true,
        store: Box::new(RcloneStore::new(remote)),
    };
    assert!(
        offsite.store.list().unwrap().is_empty(),
        "missing remote dir lists empty"
    );
    assert_eq!(
        replicate(&primary, &info, &offsite, t(0, 1), &Stop::never())
            .unwrap()
            .outcome,
        CopyOutcome::Copied
    );
    let listed = only_snapshot(offsite.store.as_ref());
    assert!(listed.verified_ok());
    assert!(
        verify_snapshot(offsite.store.as_ref(), &listed, VerifyLevel::Full, t(0, 2))
            .unwrap()
            .ok()
    );
    let err = offsite.store.read_all("missing-file").unwrap_err();
    assert!(matches!(err, BackupError::ReadCopy { .. }), "{err}");
    fs::remove_dir_all(primary.root()).unwrap();
    let target = tmp.path().join("restored");
    let report = restore_into_dir(
        &[&primary, offsite.store.as_ref()],
        "data",
        &Selector::Latest,
        &target,
        t(0, 3),
        &Stop::never(),
    )
    .unwrap();
    assert!(report.from.starts_with("rclone:"));
    assert_tree_matches(&target, &m);
    let pruned = prune(
        offsite.store.as_ref(),
        "data",
        &KeepPolicy {
            last: 1,
            ..Default::default()
        },
        &Default::default(),
        t(0, 4),
        false,
    )
    .unwrap();
    assert!(pruned.deleted_files.is_empty());
}

#[test]
fn invalid_backup_names_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = DirStore::new(tmp.path().join("b"));
    let err = create_snapshot(
        &primary,
        "../x",
        Source::from_dir(tmp.path()),
        &ArchiveOptions::default(),
        t(0, 0),
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::InvalidName { .. }));
    assert!(!primary.root().exists());
}

/// Throughput against `tar -c | zstd -3` single-threaded on a mixed tree. Run with
/// `cargo test --release --lib backup::tests::throughput -- --ignored --nocapture`;
/// `SANCTUARY_BENCH_MB` sets the tree size (default 300).
#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn throughput_beats_single_threaded_tar_and_zstd() {
    use std::time::Instant;
    let mb: usize = std::env::var("SANCTUARY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Mixed: a few large semi-compressible files and many small text files.
    let mut written = 0usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut i = 0;
    while written < mb << 20 {
        let dir = src.join(format!("d{}", i % 50));
        fs::create_dir_all(&dir).unwrap();
        let size = if i % 100 == 0 {
            8 << 20
        } else {
            4096 + (i * 37) % 60_000
        };
        let data: Vec<u8> = (0..size)
            .map(|j| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if j % 4 == 0 {
                    (state & 0xff) as u8
                } else {
                    b'a' + (j % 23) as u8
                }
            })
            .collect();
        fs::write(dir.join(format!("f{i}")), data).unwrap();
        written += size;
        i += 1;
    }
    // Warm the page cache for both contenders alike.
    Command::new("tar")
        .arg("-cf")
        .arg("/dev/null")
        .arg(&src)
        .status()
        .unwrap();
    let start = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -cf - . | zstd -3 -T1 -q -o {}",
            src.display(),
            tmp.path().join("ref.tar.zst").display()
        ))
        .status()
        .unwrap();
    assert!(out.success());
    let reference = start.elapsed();
    let start = Instant::now();
    let mut n = 0u64;
    for d in fs::read_dir(&src).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            n += hash_reader(File::open(f.unwrap().path()).unwrap())
                .unwrap()
                .1;
        }
    }
    eprintln!("hash only ({n} bytes): {:?}", start.elapsed());
    let start = Instant::now();
    let mut enc = zstd::stream::write::Encoder::new(std::io::sink(), 3).unwrap();
    for d in fs::read_dir(&src).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            std::io::copy(&mut File::open(f.unwrap().path()).unwrap(), &mut enc).unwrap();
        }
    }
    enc.finish().unwrap();
    eprintln!("zstd only, no workers: {:?}", start.elapsed());
    let start = Instant::now();
    write_archive(
        Source::from_dir(&src),
        std::io::sink(),
        Path::new("sink"),
        &ArchiveOptions::default(),
    )
    .unwrap();
    eprintln!("archive to sink: {:?}", start.elapsed());
    let start = Instant::now();
    write_archive(
        Source::from_dir(&src),
        std::io::sink(),
        Path::new("sink"),
        &ArchiveOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("archive to sink, 1 worker: {:?}", start.elapsed());
    let primary = DirStore::new(tmp.path().join("b"));
    let start = Instant::now();
    snapshot(&primary, "bench", &src, t(0, 0));
    let ours = start.elapsed();
    let ratio = reference.as_secs_f64() / ours.as_secs_f64();
    eprintln!("{mb} MB: tar|zstd -3 -T1 {reference:?}, sanctuary {ours:?}, speed-up {ratio:.2}x");
    assert!(ratio > 1.0, "slower than tar | zstd -3 single-threaded");
}

#[test]
fn newest_good_passes_over_a_snapshot_damaged_in_every_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    let older = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    fs::write(src.join("a.txt"), b"newer content").unwrap();
    let newer = created(&snapshot(&primary, "data", &src, t(1, 0))).clone();
    flip_byte(&primary.path_of(&newer.archive.file), 100);

    // The newest snapshot, asked for by name or as "latest", is refused outright.
    let target = tmp.path().join("restored");
    let err = restore_into_dir(
        &[&primary],
        "data",
        &Selector::Latest,
        &target,
        t(2, 0),
        &Stop::never(),
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::NoUsableCopy { .. }), "{err}");
    assert!(!target.exists(), "nothing written");

    // Disaster recovery takes the newest snapshot that verifies, and says what it skipped.
    let report = restore_into_dir(
        &[&primary],
        "data",
        &Selector::NewestGood,
        &target,
        t(2, 0),
        &Stop::never(),
    )
    .unwrap();
    assert_eq!(report.snapshot.as_deref(), Some(older.id.as_str()));
    assert_eq!(report.passed_over, vec![newer.id.clone()]);
    assert_tree_matches(&target, &older);

    // The same through the stream a volume restore uses.
    let spool = tempfile::tempdir().unwrap();
    let (mut stream, report) = restore_tar_stream(
        &[&primary],
        "data",
        &Selector::NewestGood,
        spool.path(),
        t(2, 0),
        &Stop::never(),
    )
    .unwrap();
    assert_eq!(report.snapshot.as_deref(), Some(older.id.as_str()));
    assert_eq!(report.passed_over, vec![newer.id]);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut tar).unwrap();
    assert!(!tar.is_empty());
}

/// A tar stream written header by header, for archives no well-behaved tool would make:
/// device nodes without root, setuid files, unsafe and very long names (as GNU long-name
/// entries, which the tar crate's safe setters would refuse to write for such names).
#[derive(Default)]
struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    fn raw(&mut self, kind: tar::EntryType, name: &str, link: &str, mode: u32, data: &[u8]) {
        if name.len() >= 100 {
            let mut body = name.as_bytes().to_vec();
            body.push(0);
            self.raw(
                tar::EntryType::GNULongName,
                "././@LongLink",
                "",
                0o644,
                &body,
            );
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.bytes.extend_from_slice(h.as_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().div_ceil(512) * 512, 0);
    }

    fn dir(mut self, name: &str, mode: u32) -> Self {
        self.raw(tar::EntryType::Directory, name, "", mode, b"");
        self
    }

    fn file(mut self, name: &str, mode: u32) -> Self {
        self.raw(tar::EntryType::Regular, name, "", mode, name.as_bytes());
        self
    }

    fn special(mut self, kind: tar::EntryType, name: &str) -> Self {
        self.raw(kind, name, "", 0o644, b"");
        self
    }

    fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Link, name, target, 0o644, b"");
        self
    }

    /// Ends the stream and writes it compressed to `path`.
    fn write(mut self, path: &Path) {
        self.bytes.resize(self.bytes.len() + 1024, 0);
        zstd_file(path, &self.bytes);
    }
}

/// A foreign archive with every kind of entry a restore skips, a hard link to one of them,
/// setuid and setgid files, and a sticky directory.
fn special_archive(path: &Path) {
    RawTar::default()
        .dir("shared", 0o1777)
        .file("shared/tool", 0o4755)
        .file("group-tool", 0o2750)
        .file("plain", 0o644)
        .special(tar::EntryType::Fifo, "pipe")
        .special(tar::EntryType::Char, "dev/null")
        .special(tar::EntryType::Fifo, "shared/pipe2")
        .special(tar::EntryType::Block, "dev/sda")
        .hardlink("pipe-again", "pipe")
        .write(path);
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn skipped_paths(report: &RestoreReport) -> Vec<(&str, SkippedKind)> {
    report
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.kind))
        .collect()
}

#[test]
fn foreign_archive_skips_fifos_and_devices_and_clears_setid_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("special.tar.zst");
    special_archive(&archive);

    let target = tmp.path().join("cleared");
    let report =
        restore_foreign_archive(&archive, &target, SpecialBits::Clear, &Stop::never()).unwrap();
    assert_eq!(
        skipped_paths(&report),
        vec![
            ("pipe", SkippedKind::Fifo),
            ("dev/null", SkippedKind::CharDevice),
            ("shared/pipe2", SkippedKind::Fifo),
            ("dev/sda", SkippedKind::BlockDevice),
            ("pipe-again", SkippedKind::Fifo),
        ]
    );
    assert_eq!(
        skipped::summary(&report.skipped).unwrap(),
        "skipped 5 entries: 3 fifo, 1 character device, 1 block device"
    );
    for gone in ["pipe", "dev/null", "shared/pipe2", "dev/sda", "pipe-again"] {
        assert!(
            fs::symlink_metadata(target.join(gone)).is_err(),
            "{gone} is not restored"
        );
    }
    assert_eq!(report.entries, 4, "the dir and three files");
    assert_eq!(
        report.special_bits_cleared,
        vec!["shared/tool", "group-tool"]
    );
    assert_eq!(mode_of(&target.join("shared/tool")), 0o755);
    assert_eq!(mode_of(&target.join("group-tool")), 0o750);
    assert_eq!(mode_of(&target.join("plain")), 0o644);
    assert_eq!(mode_of(&target.join("shared")), 0o1777, "sticky bit kept");

    let target = tmp.path().join("kept");
    let report =
        restore_foreign_archive(&archive, &target, SpecialBits::Keep, &Stop::never()).unwrap();
    assert!(report.special_bits_cleared.is_empty());
    assert_eq!(report.skipped.len(), 5);
    assert_eq!(mode_of(&target.join("shared/tool")), 0o4755);
    assert_eq!(mode_of(&target.join("group-tool")), 0o2750);
}

/// Path, type and mode of every entry of an uncompressed tar stream.
fn tar_listing(stream: impl Read) -> Vec<(String, tar::EntryType, u32)> {
    let mut archive = tar::Archive::new(stream);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().entry_type(), e.header().mode().unwrap())
        })
        .collect()
}

#[test]
fn foreign_tar_stream_for_a_volume_holds_only_what_a_restore_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("special.tar.zst");
    special_archive(&archive);
    let spool = tempfile::tempdir().unwrap();

    let (stream, report) =
        restore::foreign_tar_stream(&archive, spool.path(), SpecialBits::Clear, &Stop::never())
            .unwrap();
    assert!(!report.verified);
    assert_eq!(report.skipped.len(), 5);
    assert_eq!(
        report.special_bits_cleared,
        vec!["shared/tool", "group-tool"]
    );
    use tar::EntryType as T;
    assert_eq!(
        tar_listing(stream),
        vec![
            ("shared".to_string(), T::Directory, 0o1777),
            ("shared/tool".to_string(), T::Regular, 0o755),
            ("group-tool".to_string(), T::Regular, 0o750),
            ("plain".to_string(), T::Regular, 0o644),
        ]
    );

    let (stream, report) =
        restore::foreign_tar_stream(&archive, spool.path(), SpecialBits::Keep, &Stop::never())
            .unwrap();
    assert!(report.special_bits_cleared.is_empty());
    let modes: Vec<u32> = tar_listing(stream).into_iter().map(|(_, _, m)| m).collect();
    assert_eq!(modes, vec![0o1777, 0o4755, 0o2750, 0o644]);
}

#[test]
fn verified_snapshot_keeps_the_setid_bits_its_backup_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("shared")).unwrap();
    for (rel, mode) in [("shared/tool", 0o4755), ("group-tool", 0o2750)] {
        fs::write(src.join(rel), rel).unwrap();
        fs::set_permissions(src.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(src.join("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    // The owner may set setgid only for a group it is in: the file's own group is.
    assert_eq!(mode_of(&src.join("group-tool")), 0o2750, "test setup");
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let recorded = |p: &str| m.entries.iter().find(|e| e.path == p).unwrap().mode;
    assert_eq!(recorded("shared/tool"), 0o4755);

    let target = tmp.path().join("restored");
    let report = restore_into_dir(
        &[&primary],
        "data",
        &Selector::Latest,
        &target,
        t(0, 1),
        &Stop::never(),
    )
    .unwrap();
    assert!(report.verified);
    assert!(report.special_bits_cleared.is_empty());
    assert!(report.skipped.is_empty());
    assert_eq!(mode_of(&target.join("shared/tool")), 0o4755);
    assert_eq!(mode_of(&target.join("group-tool")), 0o2750);
    assert_eq!(mode_of(&target.join("shared")), 0o1777);

    let spool = tempfile::tempdir().unwrap();
    let (stream, _) = restore_tar_stream(
        &[&primary],
        "data",
        &Selector::Latest,
        spool.path(),
        t(0, 1),
        &Stop::never(),
    )
    .unwrap();
    let tool = tar_listing(stream)
        .into_iter()
        .find(|(p, _, _)| p == "shared/tool")
        .unwrap();
    assert_eq!(tool.2, 0o4755);
}

#[test]
fn a_fifo_in_an_archive_checked_against_a_manifest_is_a_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let primary = DirStore::new(tmp.path().join("backups"));
    let m = created(&snapshot(&primary, "data", &src, t(0, 0))).clone();
    let archive = tmp.path().join("fifo.tar.zst");
    RawTar::default()
        .special(tar::EntryType::Fifo, "pipe")
        .write(&archive);
    let result = scan::scan(
        File::open(&archive).unwrap(),
        Some(&m),
        &mut scan::Discard,
        false,
    )
    .unwrap();
    assert!(
        result.problems.contains(&Problem::Unexpected {
            path: "pipe".into()
        }),
        "{:?}",
        result.problems
    );
    assert!(result.skipped.is_empty());
}

#[test]
fn hard_link_errors_name_the_target_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    for (what, target) in [
        ("not an earlier file", "missing/file"),
        ("escaping", "../../etc/passwd"),
        ("absolute", "/etc/shadow"),
    ] {
        let archive = tmp.path().join("link.tar.zst");
        RawTar::default()
            .file("f", 0o644)
            .hardlink("h", target)
            .write(&archive);
        let err = restore_foreign_archive(
            &archive,
            &tmp.path().join("out"),
            SpecialBits::Clear,
            &Stop::never(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("h: refused"), "{what}: {err}");
        assert!(err.contains(target), "{what}: {err}");
        assert!(
            !err.contains("Some(") && !err.contains('"'),
            "{what}: {err}"
        );
    }

    // A tar stream backed up: a hard link to a file the stream has not had.
    let mut raw = RawTar::default()
        .file("f", 0o644)
        .hardlink("h", "missing/file");
    raw.bytes.resize(raw.bytes.len() + 1024, 0);
    let err = create_snapshot(
        &DirStore::new(tmp.path().join("b")),
        "hl",
        Source::from_tar_stream(std::io::Cursor::new(raw.bytes)),
        &ArchiveOptions::default(),
        t(0, 0),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("h cannot be archived: hard link to missing/file, which is not an earlier"),
        "{err}"
    );
    assert!(!err.contains("Some(") && !err.contains('"'), "{err}");
}

#[test]
fn a_refused_long_entry_name_is_cut_in_the_middle() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("long.tar.zst");
    let name = format!("../{}/end-of-name", "x".repeat(5_000));
    RawTar::default().file(&name, 0o644).write(&archive);
    let err = restore_foreign_archive(
        &archive,
        &tmp.path().join("out"),
        SpecialBits::Clear,
        &Stop::never(),
    )
    .unwrap_err()
    .to_string();
    // The archive's own path is the caller's, not the archive's: only the rest is bounded.
    let rest = err.replace(&archive.display().to_string(), "");
    assert!(rest.chars().count() < 200, "{} chars: {err}", rest.len());
    assert!(
        err.contains("../xxx") && err.contains("x/end-of-name"),
        "{err}"
    );
    assert!(err.contains('…'), "{err}");

    // The same name in a tar stream given to a backup.
    let mut raw = RawTar::default().file(&name, 0o644);
    raw.bytes.resize(raw.bytes.len() + 1024, 0);
    let err = create_snapshot(
        &DirStore::new(tmp.path().join("b")),
        "long",
        Source::from_tar_stream(std::io::Cursor::new(raw.bytes)),
        &ArchiveOptions::default(),
        t(0, 0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.chars().count() < 200, "{err}");
    assert!(err.contains('…'), "{err}");
}

// Stopping and sweeping.

/// A pid that does not run: the highest the kernel hands out.
fn dead_pid() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!crate::debris::alive(max));
    max
}

/// Every name directly in `dir` (none when it is missing).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Serves `inner` and cancels `token` once `after` bytes went out: a stop arriving in the
/// middle of a stream. `served` counts what went out.
struct CancelAfter<R> {
    inner: R,
    after: usize,
    token: tokio_util::sync::CancellationToken,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<R: Read> Read for CancelAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.served
            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.after = self.after.saturating_sub(n);
        if self.after == 0 {
            self.token.cancel();
        }
        Ok(n)
    }
}

/// A tar stream of `files` files of 1 MiB each, for a tar-stream source.
fn tar_of(files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let data: Vec<u8> = (0..1u32 << 20).map(|j| (j * 7 + i as u32) as u8).collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, format!("f{i}"), &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_stop_while_a_stream_is_archived_leaves_nothing_in_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = DirStore::new(tmp.path().join("backups"));
    let token = tokio_util::sync::CancellationToken::new();
    let stream = tar_of(8);
    let served = std::sync::Arc::default();
    let reader = CancelAfter {
        inner: std::io::Cursor::new(stream.clone()),
        after: 3 << 20,
        token: token.clone(),
        served: std::sync::Arc::clone(&served),
    };
    let opts = ArchiveOptions {
        stop: Stop::on(token.clone()),
        ..Default::default()
    };
    let err = create_snapshot(
        &primary,
        "data",
        Source::from_tar_stream(reader),
        &opts,
        t(0, 0),
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::Stopped), "{err}");
    let read = served.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        read < stream.len() / 2,
        "the stream was cut, {read} bytes read"
    );
    assert_eq!(names_in(primary.root()), Vec::<String>::new());

    // Stopped before it starts: nothing is read or written either.
    let src = tmp.path().join("src");
    sample_tree(&src);
    let err =
        create_snapshot(&primary, "data", Source::from_dir(&src), &opts, t(0, 0)).unwrap_err();
    assert!(matches!(err, BackupError::Stopped), "{err}");
    assert_eq!(names_in(primary.root()), Vec::<String>::new());
}

#[test]
fn a_stopped_replication_leaves_no_archive_and_a_copy_is_swept_on_the_way() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let info = only_snapshot(&primary);
    let usb_dir = tmp.path().join("usb");
    fs::create_dir(&usb_dir).unwrap();
    let debris = format!("{}{}-left", crate::debris::MARK, dead_pid());
    fs::write(usb_dir.join(&debris), b"12345").unwrap();
    let usb = CopyTarget {
        name: "usb".into(),
        media: "usb".into(),
        offsite: false,
        store: Box::new(DirStore::new(&usb_dir)),
    };
    let token = tokio_util::sync::CancellationToken::new();
    token.cancel();
    let err = replicate(&primary, &info, &usb, t(0, 1), &Stop::on(token)).unwrap_err();
    assert!(matches!(err, BackupError::Stopped), "{err}");
    assert_eq!(
        names_in(&usb_dir),
        Vec::<String>::new(),
        "swept, nothing sent"
    );

    fs::write(usb_dir.join(&debris), b"12345").unwrap();
    let done = replicate(&primary, &info, &usb, t(0, 1), &Stop::never()).unwrap();
    assert_eq!(done.outcome, CopyOutcome::Copied);
    assert_eq!(
        done.swept,
        crate::debris::Debris {
            entries: 1,
            bytes: 5
        }
    );
    assert!(!names_in(&usb_dir).contains(&debris));
}

/// A copy that cancels `token` when its archive is opened: a stop arriving while a restore
/// reads the snapshot.
struct StopOnOpen {
    inner: DirStore,
    token: tokio_util::sync::CancellationToken,
}

impl Store for StopOnOpen {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn list(&self) -> Result<Vec<StoredFile>, BackupError> {
        self.inner.list()
    }
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, BackupError> {
        if name.ends_with(naming::ARCHIVE_SUFFIX) {
            self.token.cancel();
        }
        self.inner.open(name)
    }
    fn put_file(&self, name: &str, local: &Path) -> Result<(), BackupError> {
        self.inner.put_file(name, local)
    }
    fn put_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        self.inner.put_bytes(name, bytes)
    }
    fn remove(&self, name: &str) -> Result<(), BackupError> {
        self.inner.remove(name)
    }
}

#[test]
fn a_stop_while_restoring_leaves_the_target_and_its_directory_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let parent = tmp.path().join("restore-here");
    let target = parent.join("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("keep-me"), b"precious").unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let store = StopOnOpen {
        inner: primary.clone(),
        token: token.clone(),
    };
    let stop = Stop::on(token);
    let err = restore_into_dir(
        &[&store],
        "data",
        &Selector::Latest,
        &target,
        t(0, 1),
        &stop,
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::Stopped), "{err}");
    assert_eq!(names_in(&target), vec!["keep-me"]);
    assert_eq!(
        names_in(&parent),
        vec!["target"],
        "no staging directory left"
    );

    let spool = tmp.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let err = restore_tar_stream(&[&store], "data", &Selector::Latest, &spool, t(0, 1), &stop)
        .err()
        .unwrap();
    assert!(matches!(err, BackupError::Stopped), "{err}");
    assert_eq!(
        names_in(&spool),
        Vec::<String>::new(),
        "spools have no name"
    );
}

#[test]
fn staging_left_by_dead_restores_is_swept_and_nothing_else_beside_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    let (mark, dead) = (crate::debris::MARK, dead_pid());
    let dead_staging = tmp.path().join(format!(".t.restore{mark}{dead}-Ab1"));
    fs::create_dir_all(dead_staging.join("sub")).unwrap();
    fs::write(dead_staging.join("sub/f"), b"1234").unwrap();
    let dead_aside = format!(".t.restore{mark}{dead}-Cd2.old");
    fs::create_dir(tmp.path().join(&dead_aside)).unwrap();
    let live = format!(".t.restore{}Ef3", crate::debris::own_prefix());
    fs::create_dir(tmp.path().join(&live)).unwrap();
    let other = format!(".u.restore{mark}{dead}-Gh4");
    fs::create_dir(tmp.path().join(&other)).unwrap();

    let seen = restore::sweep_staging(&target, false).unwrap();
    assert_eq!((seen.entries, seen.bytes), (2, 4));
    assert_eq!(restore::sweep_staging(&target, true).unwrap(), seen);
    assert_eq!(names_in(tmp.path()), vec![live, other]);
}

#[test]
fn debris_is_listed_apart_from_snapshots_and_pruned_while_live_temporaries_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let primary = DirStore::new(tmp.path().join("backups"));
    snapshot(&primary, "data", &src, t(0, 0));
    let dead = format!("{}{}-a", crate::debris::MARK, dead_pid());
    fs::write(primary.path_of(&dead), b"123").unwrap();
    let live = format!("{}b", crate::debris::own_prefix());
    fs::write(primary.path_of(&live), b"4567").unwrap();
    let old_style = ".tmpXyZ";
    fs::write(primary.path_of(old_style), b"89").unwrap();
    set_mtime(&primary.path_of(old_style), 1_000_000_000);
    let fresh_old_style = ".tmpFresh";
    fs::write(primary.path_of(fresh_old_style), b"0").unwrap();

    let catalog = list_snapshots(&primary, Utc::now()).unwrap();
    assert_eq!(catalog.snapshots.len(), 1);
    assert!(catalog.orphans.is_empty(), "{:?}", catalog.orphans);
    let mut names: Vec<_> = catalog.debris.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec![dead.as_str(), old_style]);
    assert_eq!(
        catalog.debris_total(),
        crate::debris::Debris {
            entries: 2,
            bytes: 5
        }
    );

    let policy = KeepPolicy {
        last: 1,
        ..Default::default()
    };
    let report = prune(
        &primary,
        "data",
        &policy,
        &Default::default(),
        Utc::now(),
        false,
    )
    .unwrap();
    assert_eq!(report.deleted_files.len(), 2, "{:?}", report.deleted_files);
    let left = names_in(primary.root());
    assert!(left.contains(&live) && left.contains(&fresh_old_style.to_string()));
    assert!(!left.contains(&dead) && !left.contains(&old_style.to_string()));
    assert_eq!(
        list_snapshots(&primary, Utc::now())
            .unwrap()
            .snapshots
            .len(),
        1
    );
}
