use super::*;

fn generation(fps: &[(&str, &str)]) -> Generation {
    Generation {
        number: 0,
        time: Utc::now(),
        who: "ada@example.com".into(),
        command: "apply".into(),
        manifest: "project \"p\"\n".into(),
        manifest_sha256: "0".repeat(64),
        git: None,
        images: BTreeMap::from([("web".to_string(), "sha256:abc".to_string())]),
        containers: BTreeMap::new(),
        fingerprints: fps
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        outcome: Outcome::Applied,
        backups: Vec::new(),
        duration_ms: 12,
        rollback_of: None,
    }
}

#[test]
fn generations_are_numbered_in_order_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::in_state_dir(dir.path());
    assert_eq!(h.last().unwrap(), None);
    let mut a = generation(&[("service.web", "f1")]);
    let mut b = generation(&[("service.web", "f2")]);
    assert_eq!(h.record(&mut a).unwrap(), 1);
    assert_eq!(h.record(&mut b).unwrap(), 2);
    assert_eq!(h.numbers().unwrap(), vec![1, 2]);
    assert_eq!(h.get(2).unwrap(), b);
    assert_eq!(h.all().unwrap(), vec![a, b]);
    // No temporary is left beside the records.
    let names: Vec<String> = fs::read_dir(h.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_taken_number_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::in_state_dir(dir.path());
    let mut first = generation(&[]);
    h.record(&mut first).unwrap();
    // Another writer took number 2 between our listing and our link.
    fs::write(h.path_of(2), serde_json::to_vec(&generation(&[])).unwrap()).unwrap();
    let before = fs::read(h.path_of(2)).unwrap();
    let mut next = generation(&[("task.t", "x")]);
    assert_eq!(h.record(&mut next).unwrap(), 3);
    assert_eq!(fs::read(h.path_of(2)).unwrap(), before);
}

#[test]
fn a_missing_generation_says_which_is_last_and_a_corrupt_one_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::in_state_dir(dir.path());
    let e = h.get(4).unwrap_err().to_string();
    assert_eq!(e, "there is no generation 4 (nothing has been applied yet)");
    h.record(&mut generation(&[])).unwrap();
    let e = h.get(4).unwrap_err().to_string();
    assert_eq!(e, "there is no generation 4 (the last is 1)");
    fs::write(h.path_of(1), b"{ half").unwrap();
    let e = h.get(1).unwrap_err().to_string();
    assert!(
        e.contains("000001.json") && e.contains("not a generation record"),
        "{e}"
    );
}

#[test]
fn names_that_are_not_records_are_not_generations() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::in_state_dir(dir.path());
    fs::create_dir_all(h.dir()).unwrap();
    for name in [
        "notes.json",
        "12.json",
        ".sanctuary-tmp-1-x",
        "000007.json.bak",
    ] {
        fs::write(h.dir().join(name), b"").unwrap();
    }
    assert_eq!(h.numbers().unwrap(), Vec::<u64>::new());
}

#[test]
fn changed_nodes_lists_added_removed_and_changed() {
    let old = generation(&[("service.a", "1"), ("service.b", "1"), ("service.c", "1")]);
    let new = generation(&[("service.a", "1"), ("service.b", "2"), ("service.d", "1")]);
    assert_eq!(
        changed_nodes(&old, &new),
        vec!["service.b", "service.c", "service.d"]
    );
}

#[test]
fn the_manifest_diff_is_unified_and_absent_when_equal() {
    assert_eq!(manifest_diff("a\n", "a\n", "1", "2"), None);
    let d = manifest_diff("a\nb\n", "a\nc\n", "generation 1", "generation 2").unwrap();
    assert!(
        d.contains("--- generation 1") && d.contains("+++ generation 2"),
        "{d}"
    );
    assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
}

#[test]
fn git_info_reads_the_commit_branch_and_dirtiness() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "git {args:?}");
    };
    if std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("git is required for this test");
    }
    assert_eq!(git_info(dir.path()), None);
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.email", "ada@example.com"]);
    git(&["config", "user.name", "Ada"]);
    fs::write(dir.path().join("Sanctuary.kdl"), "project \"p\"\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    let info = git_info(dir.path()).unwrap();
    assert_eq!(info.reference.as_deref(), Some("main"));
    assert_eq!(info.commit.len(), 40);
    assert!(!info.dirty);
    assert_eq!(who(dir.path()), "ada@example.com");
    fs::write(dir.path().join("untracked.txt"), "x").unwrap();
    assert!(
        !git_info(dir.path()).unwrap().dirty,
        "untracked files do not count"
    );
    fs::write(dir.path().join("Sanctuary.kdl"), "project \"q\"\n").unwrap();
    assert!(git_info(dir.path()).unwrap().dirty);
}
