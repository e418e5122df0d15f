//! Sync passes between two real temporary directories (the "container" side is a second host
//! directory, with path rewriting applied exactly as for a container).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::base_store::BaseStore;
use super::engine::{sync_pass, DeleteGuard, Report, SyncError, SyncOptions};
use super::host_side::HostSide;
use super::model::RelPath;
use super::model::{ConflictPolicy, Mode};
use super::reconcile::{Op, Resolution};
use super::rewrite::{Rule, RuleSet};
use super::side::{HashCache, Side, SideError, Stat};

struct Fixture {
    _tmp: tempfile::TempDir,
    host_root: PathBuf,
    cont_root: PathBuf,
    host: HostSide,
    cont: HostSide,
    store: BaseStore,
    opts: SyncOptions,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let host_root = tmp.path().join("host");
        let cont_root = tmp.path().join("container");
        fs::create_dir_all(&host_root).unwrap();
        fs::create_dir_all(&cont_root).unwrap();
        let opts = SyncOptions {
            rules: RuleSet::new(vec![Rule::new("/Users/alice/", "/home/node/")]).unwrap(),
            quiet_period: Duration::ZERO,
            ignore: vec!["*.log".into(), "statsig/".into()],
            ..SyncOptions::default()
        };
        Fixture {
            host: HostSide::new(&host_root),
            cont: HostSide::new(&cont_root),
            store: BaseStore::new(&tmp.path().join("state"), "claude"),
            host_root,
            cont_root,
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
        r
    }

    fn h(&self, rel: &str) -> PathBuf {
        self.host_root.join(rel)
    }

    fn c(&self, rel: &str) -> PathBuf {
        self.cont_root.join(rel)
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn tree(root: &Path) -> Vec<String> {
    let side = HostSide::new(root);
    let snap = super::side::Side::scan(
        &side,
        &ignore::gitignore::Gitignore::empty(),
        None,
        &mut Default::default(),
    )
    .unwrap();
    snap.keys().map(|p| p.to_string()).collect()
}

const CLAUDE_JSON: &str = r#"{
  "theme": "dark",
  "mcpServers": {
    "files": { "command": "/Users/alice/bin/mcp", "args": ["--root", "/Users/alice/work"] }
  },
  "/Users/alice/keyed": 1
}
"#;

fn seeded() -> Fixture {
    let fx = Fixture::new();
    write(&fx.h(".claude.json"), CLAUDE_JSON);
    write(&fx.h("settings/notes.md"), "see /Users/alice/work\n");
    write(&fx.h("bin.dat"), "\0/Users/alice/");
    write(&fx.h("debug.log"), "ignored");
    write(&fx.h("statsig/x"), "ignored");
    std::os::unix::fs::symlink("/Users/alice/work", fx.h("work-link")).unwrap();
    fx.ok();
    fx
}

#[test]
fn first_sync_fills_an_empty_side_with_rewritten_paths() {
    let fx = seeded();
    assert_eq!(
        tree(&fx.cont_root),
        [
            ".claude.json",
            "bin.dat",
            "settings",
            "settings/notes.md",
            "work-link"
        ]
    );
    let json = read(&fx.c(".claude.json"));
    assert!(
        json.contains(r#""command": "/home/node/bin/mcp""#),
        "{json}"
    );
    assert!(json.contains(r#""/home/node/work""#), "{json}");
    assert!(
        json.contains(r#""/Users/alice/keyed": 1"#),
        "keys untouched: {json}"
    );
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
    assert_eq!(fs::read(fx.c("bin.dat")).unwrap(), b"\0/Users/alice/");
    assert_eq!(
        fs::read_link(fx.c("work-link")).unwrap(),
        Path::new("/home/node/work")
    );
    // Nothing changed since: the next pass does nothing, and the rewrite is not a change.
    let again = fx.ok();
    assert!(again.plan.is_empty(), "{:#?}", again.plan);
}

#[test]
fn edits_on_each_side_propagate() {
    let fx = seeded();
    write(&fx.h("settings/notes.md"), "host edit /Users/alice/a\n");
    write(&fx.c("new-in-container.txt"), "made in /home/node/x\n");
    fs::remove_file(fx.c("bin.dat")).unwrap();
    let r = fx.ok();
    let reasons: Vec<String> = r
        .plan
        .actions
        .iter()
        .map(|a| format!("{} {}", a.path, a.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            "bin.dat deleted in container",
            "new-in-container.txt created in container",
            "settings/notes.md changed on host"
        ]
    );
    assert_eq!(read(&fx.c("settings/notes.md")), "host edit /home/node/a\n");
    assert_eq!(
        read(&fx.h("new-in-container.txt")),
        "made in /Users/alice/x\n"
    );
    assert!(!fx.h("bin.dat").exists());
    assert!(fx.ok().plan.is_empty());
}

#[test]
fn json_paths_are_rewritten_container_to_host() {
    let fx = seeded();
    let edited = read(&fx.c(".claude.json")).replace("/home/node/bin/mcp", "/home/node/bin/mcp2");
    write(&fx.c(".claude.json"), &edited);
    fx.ok();
    let host = read(&fx.h(".claude.json"));
    assert_eq!(
        host,
        CLAUDE_JSON.replace("/Users/alice/bin/mcp", "/Users/alice/bin/mcp2")
    );
}

#[test]
fn concurrent_edits_to_different_json_keys_merge() {
    let fx = seeded();
    let host = CLAUDE_JSON.replace("\"dark\"", "\"light\"");
    write(&fx.h(".claude.json"), &host);
    let cont = read(&fx.c(".claude.json")).replace(
        "\"mcpServers\": {",
        "\"mcpServers\": {\n    \"git\": { \"command\": \"/home/node/bin/git-mcp\" },",
    );
    write(&fx.c(".claude.json"), &cont);
    let r = fx.ok();
    assert_eq!(r.merged.len(), 1, "{r:#?}");
    assert!(r.plan.conflicts.is_empty());
    let on_host: serde_json::Value = serde_json::from_str(&read(&fx.h(".claude.json"))).unwrap();
    assert_eq!(on_host["theme"], "light");
    assert_eq!(
        on_host["mcpServers"]["git"]["command"],
        "/Users/alice/bin/git-mcp"
    );
    assert_eq!(
        on_host["mcpServers"]["files"]["command"],
        "/Users/alice/bin/mcp"
    );
    let in_cont: serde_json::Value = serde_json::from_str(&read(&fx.c(".claude.json"))).unwrap();
    assert_eq!(
        in_cont["mcpServers"]["git"]["command"],
        "/home/node/bin/git-mcp"
    );
    assert_eq!(in_cont["theme"], "light");
    assert!(fx.ok().plan.is_empty(), "merged state is stable");
}

fn conflicting(policy: ConflictPolicy) -> (Fixture, Result<Report, SyncError>) {
    let mut fx = seeded();
    fx.opts.policy = policy;
    write(&fx.h("settings/notes.md"), "host version\n");
    write(&fx.c("settings/notes.md"), "container version\n");
    set_mtime(&fx.h("settings/notes.md"), 60);
    set_mtime(&fx.c("settings/notes.md"), 30);
    let r = fx.pass();
    (fx, r)
}

#[test]
fn conflict_policy_fail_changes_nothing() {
    let (fx, r) = conflicting(ConflictPolicy::Fail);
    let err = r.unwrap_err();
    assert!(matches!(err, SyncError::Conflicts { .. }));
    assert!(err.to_string().contains("settings/notes.md"), "{err}");
    assert_eq!(read(&fx.h("settings/notes.md")), "host version\n");
    assert_eq!(read(&fx.c("settings/notes.md")), "container version\n");
}

#[test]
fn conflict_policy_prefer_host_and_prefer_container() {
    let (fx, r) = conflicting(ConflictPolicy::PreferHost);
    r.unwrap();
    assert_eq!(read(&fx.c("settings/notes.md")), "host version\n");
    let (fx, r) = conflicting(ConflictPolicy::PreferContainer);
    r.unwrap();
    assert_eq!(read(&fx.h("settings/notes.md")), "container version\n");
}

#[test]
fn conflict_policy_keep_both_keeps_the_older_as_a_copy() {
    let (fx, r) = conflicting(ConflictPolicy::KeepBoth);
    let r = r.unwrap();
    let Resolution::KeptBoth {
        side,
        copy: Some(copy),
    } = &r.plan.conflicts[0].resolution
    else {
        panic!("{:#?}", r.plan.conflicts);
    };
    assert_eq!(side.to_string(), "container", "the newer version wins");
    assert!(
        copy.as_str()
            .starts_with("settings/notes.md.conflict-host-"),
        "{copy}"
    );
    for root in [&fx.host_root, &fx.cont_root] {
        assert_eq!(read(&root.join("settings/notes.md")), "container version\n");
        assert_eq!(read(&root.join(copy.as_str())), "host version\n");
    }
    assert!(fx.ok().plan.is_empty());
}

#[test]
fn json_key_conflict_falls_back_to_the_policy() {
    let mut fx = seeded();
    fx.opts.policy = ConflictPolicy::KeepBoth;
    write(
        &fx.h(".claude.json"),
        &CLAUDE_JSON.replace("\"dark\"", "\"light\""),
    );
    write(
        &fx.c(".claude.json"),
        &read(&fx.c(".claude.json")).replace("\"dark\"", "\"solar\""),
    );
    set_mtime(&fx.c(".claude.json"), 60);
    let r = fx.ok();
    assert!(r.merged.is_empty());
    assert_eq!(r.plan.conflicts.len(), 1);
    assert_eq!(r.plan.conflicts[0].keys, ["/theme"]);
    assert!(read(&fx.c(".claude.json")).contains("\"light\""));
    let copies: Vec<String> = tree(&fx.host_root)
        .into_iter()
        .filter(|p| p.starts_with(".claude.json.conflict-container-"))
        .collect();
    assert_eq!(copies.len(), 1);
    assert!(read(&fx.h(&copies[0])).contains("\"solar\""));
}

#[test]
fn json_key_conflict_under_fail_changes_nothing() {
    let mut fx = seeded();
    fx.opts.policy = ConflictPolicy::Fail;
    let host = CLAUDE_JSON.replace("\"dark\"", "\"light\"");
    let cont = read(&fx.c(".claude.json")).replace("\"dark\"", "\"solar\"");
    write(&fx.h(".claude.json"), &host);
    write(&fx.c(".claude.json"), &cont);
    write(&fx.h("settings/notes.md"), "unrelated edit\n");
    let err = fx.pass().unwrap_err();
    assert!(
        err.to_string().contains(".claude.json (keys /theme)"),
        "{err}"
    );
    assert_eq!(read(&fx.h(".claude.json")), host);
    assert_eq!(read(&fx.c(".claude.json")), cont);
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
}

#[test]
fn unparsable_json_is_not_propagated_until_whole() {
    let fx = seeded();
    write(&fx.h(".claude.json"), "{\"theme\": \"li");
    let r = fx.ok();
    assert_eq!(r.deferred.len(), 1, "{r:#?}");
    assert!(
        r.deferred[0].why.contains("does not parse"),
        "{}",
        r.deferred[0].why
    );
    assert!(read(&fx.c(".claude.json")).contains("dark"));
    write(&fx.h(".claude.json"), "{\"theme\": \"light\"}\n");
    let r = fx.ok();
    assert!(r.deferred.is_empty());
    assert_eq!(read(&fx.c(".claude.json")), "{\"theme\": \"light\"}\n");
}

#[test]
fn files_still_changing_wait_for_the_quiet_period() {
    let mut fx = seeded();
    fx.opts.quiet_period = Duration::from_secs(30);
    write(&fx.h("settings/notes.md"), "fresh\n");
    let r = fx.ok();
    assert!(r.deferred[0].why.contains("still changing"), "{r:#?}");
    assert_ne!(read(&fx.c("settings/notes.md")), "fresh\n");
    set_mtime(&fx.h("settings/notes.md"), 60);
    fx.ok();
    assert_eq!(read(&fx.c("settings/notes.md")), "fresh\n");
}

#[test]
fn missing_or_emptied_root_halts_and_deletes_nothing() {
    let fx = seeded();
    let moved = fx.cont_root.with_file_name("moved");
    fs::rename(&fx.cont_root, &moved).unwrap();
    let err = fx.pass().unwrap_err();
    assert!(matches!(err, SyncError::RootMissing { .. }), "{err}");
    assert!(fx.h(".claude.json").exists());
    fs::create_dir(&fx.cont_root).unwrap();
    let err = fx.pass().unwrap_err();
    assert!(matches!(err, SyncError::RootEmptied { .. }), "{err}");
    // Everything is still there, ignored files included.
    assert_eq!(tree(&fx.host_root).len(), 8);
}

#[test]
fn one_way_refills_an_emptied_destination_but_not_from_an_emptied_source() {
    let mut fx = seeded();
    fx.opts.mode = Mode::ToContainer;
    fs::remove_dir_all(&fx.cont_root).unwrap();
    fs::create_dir(&fx.cont_root).unwrap();
    fx.ok();
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
    fx.opts.mode = Mode::ToHost;
    fs::remove_dir_all(&fx.cont_root).unwrap();
    fs::create_dir(&fx.cont_root).unwrap();
    assert!(matches!(fx.pass(), Err(SyncError::RootEmptied { .. })));
    assert!(fx.h("settings/notes.md").exists());
}

#[test]
fn mass_deletion_halts_above_the_threshold() {
    let mut fx = Fixture::new();
    for i in 0..30 {
        write(&fx.h(&format!("f{i:02}")), "x");
    }
    fx.ok();
    for i in 0..20 {
        fs::remove_file(fx.c(&format!("f{i:02}"))).unwrap();
    }
    let err = fx.pass().unwrap_err();
    assert!(
        matches!(err, SyncError::TooManyDeletions { deletions: 20, .. }),
        "{err}"
    );
    assert_eq!(tree(&fx.host_root).len(), 30);
    fx.opts.delete_guard = DeleteGuard {
        max_fraction: 1.0,
        min_count: 10,
    };
    fx.ok();
    assert_eq!(tree(&fx.host_root).len(), 10);
}

#[test]
fn dry_run_reports_reasons_and_changes_nothing() {
    let mut fx = seeded();
    fx.opts.dry_run = true;
    write(&fx.h("settings/notes.md"), "edited\n");
    fs::remove_file(fx.c("bin.dat")).unwrap();
    let r = fx.ok();
    assert!(r.dry_run && r.applied.is_empty());
    let lines: Vec<String> = r
        .plan
        .actions
        .iter()
        .map(|a| format!("{}: {}", a.path, a.reason))
        .collect();
    assert_eq!(
        lines,
        [
            "bin.dat: deleted in container",
            "settings/notes.md: changed on host"
        ]
    );
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
    assert!(fx.h("bin.dat").exists());
}

#[test]
fn one_way_to_container_reverts_container_changes() {
    let mut fx = seeded();
    fx.opts.mode = Mode::ToContainer;
    write(&fx.c("settings/notes.md"), "container edit\n");
    write(&fx.c("extra"), "x");
    let r = fx.ok();
    assert!(r
        .plan
        .actions
        .iter()
        .any(|a| matches!(a.op, Op::Delete { .. })));
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
    assert!(!fx.c("extra").exists());
}

#[test]
fn directory_replaced_by_file_propagates() {
    let fx = seeded();
    fs::remove_dir_all(fx.h("settings")).unwrap();
    write(&fx.h("settings"), "now a file\n");
    fx.ok();
    assert_eq!(read(&fx.c("settings")), "now a file\n");
    fs::remove_file(fx.c("settings")).unwrap();
    write(&fx.c("settings/again.md"), "dir again\n");
    fx.ok();
    assert_eq!(read(&fx.h("settings/again.md")), "dir again\n");
}

#[test]
fn content_that_cannot_round_trip_is_held_back() {
    let fx = seeded();
    write(
        &fx.h("mixed.md"),
        "host /Users/alice/a and container /home/node/b\n",
    );
    let r = fx.pass().unwrap();
    assert!(!fx.c("mixed.md").exists());
    assert_eq!(r.failed.len(), 1, "{r:#?}");
    assert!(
        r.failed[0].why.contains("round-trip"),
        "{}",
        r.failed[0].why
    );
}

#[test]
fn identical_sides_without_a_base_are_adopted_without_copying() {
    let fx = Fixture::new();
    write(&fx.h("a/b.txt"), "at /Users/alice/x\n");
    write(&fx.c("a/b.txt"), "at /home/node/x\n");
    let r = fx.ok();
    assert!(r
        .plan
        .actions
        .iter()
        .all(|a| matches!(a.op, Op::RecordBase { .. })));
    assert_eq!(r.applied.len(), 2);
    assert!(fx.ok().plan.is_empty(), "the base was recorded");
}

#[test]
fn no_change_pass_over_ten_thousand_files() {
    let fx = Fixture::new();
    // Both sides start identical (in their own forms), so the first pass only records the
    // base; the copying path is covered by the other tests without 10,000 fsyncs.
    for d in 0..100 {
        for f in 0..100 {
            let rel = format!("d{d:03}/f{f:03}.txt");
            write(&fx.h(&rel), "content /Users/alice/x\n");
            write(&fx.c(&rel), "content /home/node/x\n");
            // Old enough to be cached: later passes need not re-read them.
            set_mtime(&fx.h(&rel), 60);
            set_mtime(&fx.c(&rel), 60);
        }
    }
    let t = Instant::now();
    let first = fx.ok();
    let adopt = t.elapsed();
    assert_eq!(first.applied.len(), 10_100);
    let t = Instant::now();
    let r = fx.ok();
    let noop = t.elapsed();
    assert!(r.plan.is_empty());
    eprintln!("10,000 files: adopting pass {adopt:?}, no-change pass {noop:?}");
    // Without the hash caches every file is read and hashed again.
    let mut state = fx.store.load().unwrap();
    assert_eq!(state.host_cache.len(), 10_000);
    state.host_cache.clear();
    state.container_cache.clear();
    fx.store.save(&state).unwrap();
    let t = Instant::now();
    assert!(fx.ok().plan.is_empty());
    eprintln!(
        "10,000 files: no-change pass without hash caches {:?}",
        t.elapsed()
    );
}

/// A side that runs a hook whenever a file is read, to stage edits that race with a pass.
struct Racing {
    inner: HostSide,
    on_read: Box<dyn Fn(&RelPath) + Send + Sync>,
}

impl Side for Racing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn root_exists(&self) -> Result<bool, SideError> {
        self.inner.root_exists()
    }
    fn scan(
        &self,
        ignore: &ignore::gitignore::Gitignore,
        to_host: Option<&RuleSet>,
        cache: &mut HashCache,
    ) -> Result<super::model::Snapshot, SideError> {
        self.inner.scan(ignore, to_host, cache)
    }
    fn stat(&self, path: &RelPath) -> Result<Option<Stat>, SideError> {
        self.inner.stat(path)
    }
    fn read(&self, path: &RelPath) -> Result<Vec<u8>, SideError> {
        (self.on_read)(path);
        self.inner.read(path)
    }
    fn read_link(&self, path: &RelPath) -> Result<String, SideError> {
        self.inner.read_link(path)
    }
    fn write_file(&self, path: &RelPath, bytes: &[u8], mode: u32) -> Result<(), SideError> {
        self.inner.write_file(path, bytes, mode)
    }
    fn delete(&self, path: &RelPath) -> Result<(), SideError> {
        self.inner.delete(path)
    }
    fn mkdir(&self, path: &RelPath, mode: u32) -> Result<(), SideError> {
        self.inner.mkdir(path, mode)
    }
    fn symlink(&self, path: &RelPath, target: &str) -> Result<(), SideError> {
        self.inner.symlink(path, target)
    }
}

#[test]
fn a_source_edited_during_the_pass_is_deferred_not_half_copied() {
    let fx = seeded();
    write(&fx.h("settings/notes.md"), "first edit\n");
    let path = fx.h("settings/notes.md");
    let host = Racing {
        inner: HostSide::new(&fx.host_root),
        on_read: Box::new(move |_| fs::write(&path, "second edit, longer\n").unwrap()),
    };
    let r = sync_pass(&host, &fx.cont, &fx.store, &fx.opts).unwrap();
    assert_eq!(r.deferred.len(), 1, "{r:#?}");
    assert!(r.deferred[0].why.contains("changed on host since the scan"));
    assert_eq!(read(&fx.c("settings/notes.md")), "see /home/node/work\n");
    // The next ordinary pass picks up the settled content.
    fx.ok();
    assert_eq!(read(&fx.c("settings/notes.md")), "second edit, longer\n");
}

#[test]
fn a_target_edited_during_the_pass_is_not_clobbered() {
    let fx = seeded();
    write(&fx.h("settings/notes.md"), "host edit\n");
    let target = fx.c("settings/notes.md");
    let host = Racing {
        inner: HostSide::new(&fx.host_root),
        on_read: Box::new(move |_| fs::write(&target, "container edit, just now\n").unwrap()),
    };
    let r = sync_pass(&host, &fx.cont, &fx.store, &fx.opts).unwrap();
    assert!(
        r.deferred[0]
            .why
            .contains("changed in container since the scan"),
        "{r:#?}"
    );
    assert_eq!(
        read(&fx.c("settings/notes.md")),
        "container edit, just now\n"
    );
}
