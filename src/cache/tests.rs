//! Behaviour of the cache store, end to end on real files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::fingerprint::{Key, Spec};

struct Fixture {
    project: tempfile::TempDir,
    state: tempfile::TempDir,
    cache: Cache,
}

fn fixture() -> Fixture {
    let project = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = Cache::in_state_dir(state.path());
    Fixture {
        project,
        state,
        cache,
    }
}

fn write(root: &Path, name: &str, content: &str) {
    let path = root.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn key(name: &str, outputs: &[&str]) -> Key {
    Key::new(
        "task",
        name,
        Spec {
            command: vec![format!("build {name}")],
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            ..Spec::default()
        },
    )
}

fn miss(cache: &Cache, key: &Key) -> Miss {
    match cache.lookup(&key.fingerprint()).unwrap() {
        Lookup::Miss(m) => m,
        other => panic!("expected a miss, got {other:?}"),
    }
}

fn save(f: &Fixture, key: &Key) -> Entry {
    let m = miss(&f.cache, key);
    f.cache
        .save(
            m,
            SaveRequest {
                key,
                root: f.project.path(),
                duration: Duration::from_millis(1500),
                log: "built\n",
            },
        )
        .unwrap()
}

fn hit(cache: &Cache, key: &Key) -> Entry {
    match cache.lookup(&key.fingerprint()).unwrap() {
        Lookup::Hit(e) => *e,
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn save_lookup_delete_restore() {
    let f = fixture();
    let root = f.project.path();
    write(root, "app", "binary");
    write(root, "dist/a.js", "a");
    write(root, "dist/sub/b.js", "b");
    fs::set_permissions(root.join("app"), fs::Permissions::from_mode(0o755)).unwrap();
    let k = key("build", &["app", "dist"]);
    let saved = save(&f, &k);
    assert_eq!(
        saved
            .outputs
            .iter()
            .map(|o| o.path.as_str())
            .collect::<Vec<_>>(),
        ["app", "dist/a.js", "dist/sub/b.js"]
    );

    let entry = hit(&f.cache, &k);
    assert_eq!(entry, saved);
    assert_eq!(entry.log, "built\n");
    assert_eq!(entry.duration_ms, 1500);
    assert_eq!(entry.key, k);

    fs::remove_file(root.join("app")).unwrap();
    fs::remove_dir_all(root.join("dist")).unwrap();
    let restored = f.cache.restore(&entry, root).unwrap();
    assert_eq!(restored, ["app", "dist/a.js", "dist/sub/b.js"]);
    assert_eq!(fs::read_to_string(root.join("dist/sub/b.js")).unwrap(), "b");
    let mode = fs::metadata(root.join("app")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "mode kept");

    assert!(
        f.cache.restore(&entry, root).unwrap().is_empty(),
        "nothing to do when outputs are current"
    );
}

#[test]
fn only_changed_outputs_are_restored() {
    let f = fixture();
    let root = f.project.path();
    write(root, "out/a", "a");
    write(root, "out/b", "b");
    let k = key("build", &["out/*"]);
    let entry = save(&f, &k);
    write(root, "out/b", "tampered");
    assert_eq!(f.cache.restore(&entry, root).unwrap(), ["out/b"]);
    assert_eq!(fs::read_to_string(root.join("out/b")).unwrap(), "b");
    // A changed mode alone also counts as a difference.
    fs::set_permissions(root.join("out/a"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(f.cache.restore(&entry, root).unwrap(), ["out/a"]);
}

#[test]
fn task_without_outputs_still_gets_an_entry() {
    let f = fixture();
    let k = key("lint", &[]);
    let entry = save(&f, &k);
    assert!(entry.outputs.is_empty());
    assert_eq!(hit(&f.cache, &k).log, "built\n");
    assert!(f
        .cache
        .restore(&entry, f.project.path())
        .unwrap()
        .is_empty());
}

fn corrupt_case(damage: impl Fn(&Fixture, &str)) -> (String, Fixture, Key) {
    let f = fixture();
    write(f.project.path(), "app", "binary content that compresses");
    let k = key("build", &["app"]);
    save(&f, &k);
    let fp = k.fingerprint();
    damage(&f, &fp);
    let reason = match f.cache.lookup(&fp).unwrap() {
        Lookup::Corrupt {
            fingerprint,
            reason,
            miss,
        } => {
            assert_eq!(fingerprint, fp);
            assert_eq!(miss.fingerprint(), fp);
            reason
        }
        other => panic!("expected corrupt, got {other:?}"),
    };
    // Discarded: the files are gone and the next lookup is a plain miss.
    assert!(!f.cache.archive_path(&fp).exists());
    assert!(!f.cache.metadata_path(&fp).exists());
    let _ = miss(&f.cache, &k);
    (reason, f, k)
}

#[test]
fn flipped_archive_byte_is_corrupt() {
    let (reason, _, _) = corrupt_case(|f, fp| {
        let path = f.cache.archive_path(fp);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
    });
    assert!(reason.contains("sha256"), "{reason}");
}

#[test]
fn truncated_archive_is_corrupt() {
    let (reason, _, _) = corrupt_case(|f, fp| {
        let path = f.cache.archive_path(fp);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(reason.contains("sha256"), "{reason}");
}

#[test]
fn unreadable_metadata_is_corrupt() {
    let (reason, _, _) = corrupt_case(|f, fp| {
        fs::write(f.cache.metadata_path(fp), "{ not json").unwrap();
    });
    assert!(reason.contains("metadata unreadable"), "{reason}");
}

#[test]
fn missing_archive_is_corrupt() {
    let (reason, _, _) = corrupt_case(|f, fp| {
        fs::remove_file(f.cache.archive_path(fp)).unwrap();
    });
    assert_eq!(reason, "archive missing");
}

#[test]
fn corrupt_entry_can_be_saved_again() {
    let (_, f, k) = corrupt_case(|f, fp| {
        fs::write(f.cache.archive_path(fp), "junk").unwrap();
    });
    save(&f, &k);
    hit(&f.cache, &k);
}

#[test]
fn restore_verifies_the_archive_before_touching_the_target() {
    let f = fixture();
    let root = f.project.path();
    write(root, "app", "good");
    let k = key("build", &["app"]);
    let entry = save(&f, &k);
    write(root, "app", "local edit");
    fs::write(f.cache.archive_path(&k.fingerprint()), "junk").unwrap();
    let err = f.cache.restore(&entry, root).unwrap_err();
    assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(root.join("app")).unwrap(), "local edit");
    // The corrupt entry is discarded, so the next lookup misses and the task runs again.
    let _ = miss(&f.cache, &k);
}

#[test]
fn restore_refuses_paths_escaping_the_root() {
    let f = fixture();
    write(f.project.path(), "app", "x");
    let k = key("build", &["app"]);
    let mut entry = save(&f, &k);
    entry.outputs[0].path = "../evil".into();
    let err = f.cache.restore(&entry, f.project.path()).unwrap_err();
    assert!(err.to_string().contains("escapes"), "{err}");
}

#[test]
fn missing_declared_output_is_an_error_naming_it_and_leaves_no_entry() {
    let f = fixture();
    write(f.project.path(), "app", "x");
    let k = key("build", &["app", "docs/index.html"]);
    let m = miss(&f.cache, &k);
    let err = f
        .cache
        .save(
            m,
            SaveRequest {
                key: &k,
                root: f.project.path(),
                duration: Duration::ZERO,
                log: "",
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "declared output 'docs/index.html' was not produced"
    );
    let _ = miss(&f.cache, &k);
    assert_eq!(f.cache.stats().unwrap().entries, 0);
}

#[test]
fn outputs_outside_the_project_are_refused() {
    let f = fixture();
    let k = key("build", &["../elsewhere"]);
    let m = miss(&f.cache, &k);
    let err = f
        .cache
        .save(
            m,
            SaveRequest {
                key: &k,
                root: f.project.path(),
                duration: Duration::ZERO,
                log: "",
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, CacheError::OutputOutsideRoot { .. }),
        "{err:?}"
    );
}

#[test]
fn save_refuses_a_key_other_than_the_one_looked_up() {
    let f = fixture();
    let m = miss(&f.cache, &key("a", &[]));
    let other = key("b", &[]);
    let err = f
        .cache
        .save(
            m,
            SaveRequest {
                key: &other,
                root: f.project.path(),
                duration: Duration::ZERO,
                log: "",
            },
        )
        .unwrap_err();
    assert!(matches!(err, CacheError::KeyMismatch { .. }));
}

#[test]
fn lookup_rejects_non_fingerprints() {
    let f = fixture();
    let err = f.cache.lookup("../../etc/passwd").unwrap_err();
    assert!(matches!(err, CacheError::InvalidFingerprint { .. }));
}

/// Rewrites an entry's creation time, standing in for the passage of time.
fn backdate(cache: &Cache, fp: &str, days: i64) {
    let path = cache.metadata_path(fp);
    let mut entry: Entry = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    entry.created -= chrono::Duration::days(days);
    fs::write(path, serde_json::to_vec(&entry).unwrap()).unwrap();
}

fn three_entries(f: &Fixture) -> Vec<Key> {
    let keys: Vec<Key> = ["one", "two", "three"]
        .iter()
        .map(|n| key(n, &["data"]))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        write(f.project.path(), "data", &"x".repeat(1000 * (i + 1)));
        save(f, k);
        backdate(&f.cache, &k.fingerprint(), 10 - i64::try_from(i).unwrap());
    }
    keys
}

#[test]
fn stats_count_entries_bytes_and_nodes() {
    let f = fixture();
    let keys = three_entries(&f);
    let stats = f.cache.stats().unwrap();
    assert_eq!(stats.entries, 3);
    assert_eq!(stats.per_node["task one"], 1);
    assert_eq!(stats.per_node.len(), 3);
    assert!(stats.oldest < stats.newest);
    let on_disk: u64 = keys
        .iter()
        .map(|k| {
            let fp = k.fingerprint();
            fs::metadata(f.cache.archive_path(&fp)).unwrap().len()
                + fs::metadata(f.cache.metadata_path(&fp)).unwrap().len()
        })
        .sum();
    assert_eq!(stats.total_bytes, on_disk);
}

#[test]
fn gc_by_age_removes_only_old_entries() {
    let f = fixture();
    let keys = three_entries(&f);
    // Entries are 10, 9 and 8 days old.
    let report = f
        .cache
        .gc(None, Some(Duration::from_secs(9 * 86400 + 3600)))
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].node, "task one");
    assert!(report.freed > 0);
    let _ = miss(&f.cache, &keys[0]);
    hit(&f.cache, &keys[1]);
    hit(&f.cache, &keys[2]);
}

#[test]
fn gc_by_size_removes_oldest_first() {
    let f = fixture();
    let keys = three_entries(&f);
    let newest = {
        let fp = keys[2].fingerprint();
        fs::metadata(f.cache.archive_path(&fp)).unwrap().len()
            + fs::metadata(f.cache.metadata_path(&fp)).unwrap().len()
    };
    let before = f.cache.stats().unwrap().total_bytes;
    let report = f.cache.gc(Some(newest), None).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(removed, ["task one", "task two"]);
    assert_eq!(report.freed, before - newest);
    hit(&f.cache, &keys[2]);
    assert_eq!(f.cache.stats().unwrap().total_bytes, newest);
    assert!(f.cache.gc(Some(newest), None).unwrap().removed.is_empty());
}

#[test]
fn leftovers_of_an_interrupted_save_are_never_entries() {
    let f = fixture();
    let k = key("build", &[]);
    let fp = k.fingerprint();
    // An archive whose metadata never landed, and a temp file beside it.
    let shard = f.cache.archive_path(&fp).parent().unwrap().to_path_buf();
    fs::create_dir_all(&shard).unwrap();
    fs::write(f.cache.archive_path(&fp), "partial").unwrap();
    let tmp = shard.join(".tmpAbC123");
    fs::write(&tmp, "partial").unwrap();
    let _ = miss(&f.cache, &k);
    assert_eq!(f.cache.stats().unwrap(), Stats::default());

    // Fresh strays are left alone (a save may be writing them); old ones are swept.
    assert_eq!(f.cache.gc(None, None).unwrap().strays, 0);
    let old = SystemTime::now() - Duration::from_secs(7200);
    for path in [&tmp, &f.cache.archive_path(&fp)] {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let report = f.cache.gc(None, None).unwrap();
    assert_eq!(report.strays, 2);
    assert!(!tmp.exists());
    // The save that was interrupted can still complete normally.
    save(&f, &k);
    hit(&f.cache, &k);
}

#[test]
fn last_success_records_round_trip_and_support_why() {
    let f = fixture();
    assert!(f.cache.last_success("task", "build").unwrap().is_none());
    let mut old = key("build", &[]);
    old.inputs.insert("src/a.rs".into(), "1".into());
    let record = f.cache.record_success(&old).unwrap();
    let back = f.cache.last_success("task", "build").unwrap().unwrap();
    assert_eq!(back, record);
    assert_eq!(back.fingerprint, old.fingerprint());
    let mut new = old.clone();
    new.inputs.insert("src/a.rs".into(), "2".into());
    let why: Vec<String> = Key::diff(&back.key, &new)
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(why, ["input src/a.rs changed"]);
    let path = f.state.path().join("cache/nodes/task.build.json");
    assert!(path.exists());
    // The up-to-date check reads only the fingerprint.
    assert_eq!(
        f.cache.last_fingerprint("task", "build"),
        Some(old.fingerprint())
    );
    assert_eq!(f.cache.last_fingerprint("task", "other"), None);
    fs::write(&path, b"{ not json").unwrap();
    assert_eq!(f.cache.last_fingerprint("task", "build"), None);
}

#[test]
fn saving_a_fingerprint_committed_meanwhile_keeps_the_existing_entry() {
    let f = fixture();
    write(f.project.path(), "app", "first");
    let k = key("build", &["app"]);
    let late = miss(&f.cache, &k);
    let first = save(&f, &k);
    write(f.project.path(), "app", "second");
    let again = f
        .cache
        .save(
            late,
            SaveRequest {
                key: &k,
                root: f.project.path(),
                duration: Duration::ZERO,
                log: "",
            },
        )
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(hit(&f.cache, &k), first);
}
