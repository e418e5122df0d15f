//! Single-file passes between two real temporary directories: the host file `.claude.json`
//! and a "container" file of another name, `claude.json`, in a second directory, with path
//! rewriting applied exactly as for a container.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::base_store::BaseStore;
use super::engine::{sync_pass, Report, SyncError, SyncOptions};
use super::file_side::FileSide;
use super::host_side::HostSide;
use super::model::{ConflictPolicy, Mode, RelPath, RootKind};
use super::reconcile::Op;
use super::rewrite::{Rule, RuleSet};
use super::side::{HashCache, Side};

struct Fixture {
    _tmp: tempfile::TempDir,
    host_dir: PathBuf,
    cont_dir: PathBuf,
    host: FileSide<HostSide>,
    cont: FileSide<HostSide>,
    store: BaseStore,
    opts: SyncOptions,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let host_dir = tmp.path().join("home");
        let cont_dir = tmp.path().join("container");
        fs::create_dir_all(&host_dir).unwrap();
        fs::create_dir_all(&cont_dir).unwrap();
        let host = FileSide::host(&host_dir.join(".claude.json")).unwrap();
        let cont = FileSide::new(
            HostSide::new(&cont_dir),
            RelPath::new(".claude.json").unwrap(),
            RelPath::new("claude.json").unwrap(),
            "container file",
        );
        let opts = SyncOptions {
            rules: RuleSet::new(vec![Rule::new("/Users/alice/", "/home/node/")]).unwrap(),
            quiet_period: Duration::ZERO,
            root: RootKind::File,
            ..SyncOptions::default()
        };
        Fixture {
            host,
            cont,
            store: BaseStore::new(&tmp.path().join("state"), "claude-json"),
            host_dir,
            cont_dir,
            opts,
            _tmp: tmp,
        }
    }

    fn pass(&self) -> Result<Report, SyncError> {
        sync_pass(&self.host, &self.cont, &self.store, &self.opts)
    }

    fn ok(&self) -> Report {
        let r = self.pass().unwrap();
        assert!(r.failed.is_empty(), "failed: {:#?}", r.failed);
        assert!(r.deferred.is_empty(), "deferred: {:#?}", r.deferred);
        r
    }

    fn host_file(&self) -> PathBuf {
        self.host_dir.join(".claude.json")
    }

    fn cont_file(&self) -> PathBuf {
        self.cont_dir.join("claude.json")
    }

    fn json(path: &std::path::Path) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }
}

const HOST_JSON: &str = r#"{"mcpServers": {"fs": {"command": "/Users/alice/bin/fs", "args": ["/Users/alice/work"]}}, "theme": "dark"}"#;

#[test]
fn a_host_file_alone_syncs_under_the_container_name_rewritten_and_back() {
    let f = Fixture::new();
    fs::write(f.host_file(), HOST_JSON).unwrap();
    // Neighbours of the file are never looked at, on either side.
    fs::write(f.host_dir.join("other.txt"), "x").unwrap();
    fs::create_dir(f.host_dir.join("big")).unwrap();
    f.ok();
    let c = Fixture::json(&f.cont_file());
    assert_eq!(c["mcpServers"]["fs"]["command"], "/home/node/bin/fs");
    assert_eq!(c["mcpServers"]["fs"]["args"][0], "/home/node/work");
    let names: Vec<String> = fs::read_dir(&f.cont_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["claude.json"]);
    assert_eq!(f.store.load().unwrap().root, RootKind::File);
    assert!(f.ok().plan.actions.is_empty(), "second pass is a no-op");

    // A container edit comes back in host form.
    fs::write(
        f.cont_file(),
        r#"{"mcpServers": {"fs": {"command": "/home/node/bin/fs2"}}, "theme": "dark"}"#,
    )
    .unwrap();
    f.ok();
    let h = Fixture::json(&f.host_file());
    assert_eq!(h["mcpServers"]["fs"]["command"], "/Users/alice/bin/fs2");
}

#[test]
fn different_keys_edited_on_both_sides_merge() {
    let f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1, "b": 1}"#).unwrap();
    f.ok();
    fs::write(f.host_file(), r#"{"a": 2, "b": 1}"#).unwrap();
    fs::write(f.cont_file(), r#"{"a": 1, "b": 3}"#).unwrap();
    let r = f.ok();
    assert_eq!(r.merged, [RelPath::new(".claude.json").unwrap()]);
    let want = serde_json::json!({"a": 2, "b": 3});
    assert_eq!(Fixture::json(&f.host_file()), want);
    assert_eq!(Fixture::json(&f.cont_file()), want);
}

#[test]
fn half_written_json_is_not_propagated() {
    let f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    fs::write(f.host_file(), r#"{"a": "#).unwrap();
    let r = f.pass().unwrap();
    assert_eq!(r.deferred.len(), 1, "{r:#?}");
    assert_eq!(Fixture::json(&f.cont_file()), serde_json::json!({"a": 1}));
}

#[test]
fn keep_both_copies_sit_beside_each_file_and_are_not_tracked() {
    let mut f = Fixture::new();
    f.opts.policy = ConflictPolicy::KeepBoth;
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    fs::write(f.host_file(), r#"{"a": 2}"#).unwrap();
    fs::write(f.cont_file(), r#"{"a": 3}"#).unwrap();
    let r = f.ok();
    assert_eq!(r.plan.conflicts.len(), 1, "{r:#?}");
    let listing = |dir: &PathBuf, prefix: &str| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    assert_eq!(listing(&f.host_dir, ".claude.json.conflict-").len(), 1);
    assert_eq!(listing(&f.cont_dir, "claude.json.conflict-").len(), 1);
    assert_eq!(
        fs::read_to_string(f.host_file()).unwrap(),
        fs::read_to_string(f.cont_file()).unwrap()
    );
    let base = f.store.load().unwrap();
    let tracked: Vec<String> = base.entries.keys().map(|p| p.to_string()).collect();
    assert_eq!(tracked, [".claude.json"]);
    assert!(f.ok().plan.actions.is_empty(), "the copies are left alone");
}

#[test]
fn a_deleted_host_file_is_a_deletion_judged_against_the_base() {
    let f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    fs::remove_file(f.host_file()).unwrap();
    let r = f.ok();
    assert!(
        matches!(r.applied.as_slice(), [a] if matches!(a.op, Op::Delete { .. })),
        "{r:#?}"
    );
    assert!(!f.cont_file().exists());
    // The deletion is now the agreed state: the emptied parent is not an error.
    assert!(f.ok().plan.actions.is_empty());
}

#[test]
fn without_a_base_a_container_only_file_is_created_on_the_host() {
    let f = Fixture::new();
    fs::write(f.cont_file(), r#"{"p": "/home/node/x"}"#).unwrap();
    f.ok();
    assert_eq!(
        Fixture::json(&f.host_file()),
        serde_json::json!({"p": "/Users/alice/x"})
    );
}

#[test]
fn one_way_modes_restore_or_mirror_a_deleted_host_file() {
    let mut f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    fs::remove_file(f.host_file()).unwrap();
    f.opts.mode = Mode::ToHost;
    f.ok();
    assert!(f.host_file().exists(), "to-host: the container's copy wins");
    fs::remove_file(f.host_file()).unwrap();
    f.opts.mode = Mode::ToContainer;
    f.ok();
    assert!(!f.cont_file().exists(), "to-container: mirrored");
}

#[test]
fn a_missing_host_parent_halts_and_deletes_nothing() {
    let f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    fs::remove_dir_all(&f.host_dir).unwrap();
    let err = f.pass().unwrap_err();
    assert!(matches!(err, SyncError::RootMissing { .. }), "{err}");
    assert!(err.to_string().contains("host file"), "{err}");
    assert!(f.cont_file().exists());
}

#[test]
fn a_base_of_the_other_kind_halts() {
    let mut f = Fixture::new();
    fs::write(f.host_file(), r#"{"a": 1}"#).unwrap();
    f.ok();
    f.opts.root = RootKind::Dir;
    let err = sync_pass(
        &HostSide::new(&f.host_dir),
        &HostSide::new(&f.cont_dir),
        &f.store,
        &f.opts,
    )
    .unwrap_err();
    assert!(matches!(err, SyncError::RootKindChanged { .. }), "{err}");
    assert!(f.cont_file().exists());
}

#[test]
fn the_scan_shows_one_entry_and_a_host_link_as_a_link() {
    let f = Fixture::new();
    let outside = f.host_dir.join("target.json");
    fs::write(&outside, "{}").unwrap();
    std::os::unix::fs::symlink(&outside, f.host_file()).unwrap();
    let snap = f
        .host
        .scan(
            &ignore::gitignore::Gitignore::empty(),
            None,
            &mut HashCache::new(),
        )
        .unwrap();
    let names: Vec<String> = snap.keys().map(|p| p.to_string()).collect();
    assert_eq!(names, [".claude.json"]);
    assert_eq!(
        snap.values().next().unwrap().kind,
        super::EntryKind::Symlink
    );
    // Ignored: nothing at all.
    let mut b = ignore::gitignore::GitignoreBuilder::new("/");
    b.add_line(None, "*.json").unwrap();
    let snap = f
        .host
        .scan(&b.build().unwrap(), None, &mut HashCache::new())
        .unwrap();
    assert!(snap.is_empty());
}
