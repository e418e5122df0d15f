//! `sanctuary sync` against a real Docker engine: a host directory synced with a directory in
//! a volume (through the helper container), observed and edited from a separate probe
//! container that mounts the same volume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use crate::docker_support::{docker_or_skip, test_image, TestProject, PROJECT_LABEL};

/// A project with a manifest, a host directory per rule, and a probe container that mounts
/// the project's `home` volume at `/v`.
struct SyncProject {
    project: TestProject,
    dir: tempfile::TempDir,
    probe: String,
}

/// Sends Ctrl-C to `child` and returns its exit code.
fn interrupt(mut child: std::process::Child) -> Option<i32> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    child.wait().unwrap().code()
}

impl SyncProject {
    /// Starts `sanctuary sync --watch` on the project.
    fn watch(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("-f")
            .arg(self.dir.path().join("Sanctuary.kdl"))
            .args(["sync", "--watch"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Whether `script` in the container prints `want` within 30 s.
    fn wait_for_probe(&self, script: &str, want: &str) -> bool {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.probe(script) == want {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }

    /// `rules` is KDL for the sync nodes; `{P}` is not needed: the volume is `home`.
    fn new(test: &str, rules: &str) -> Self {
        let project = TestProject::new(test);
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!("project \"{}\"\nvolume \"home\"\n{rules}\n", project.name);
        std::fs::write(dir.path().join("Sanctuary.kdl"), manifest).unwrap();
        let probe = project.object("probe");
        let volume = project.object("home");
        let label = format!("{PROJECT_LABEL}={}", project.name);
        // The volume is created labelled, as `apply` would, so cleanup finds it.
        let out = Command::new("docker")
            .args(["volume", "create", "--label", &label, &volume])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &probe, "--label", &label, "-v"])
            .arg(format!("{volume}:/v"))
            .args([test_image().as_str(), "sleep", "600"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SyncProject {
            project,
            dir,
            probe,
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write_host(&self, rel: &str, text: &str) {
        let p = self.host(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read_host(&self, rel: &str) -> String {
        std::fs::read_to_string(self.host(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Runs `sh -c script` in the probe; its stdout.
    fn probe(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.probe, "sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write_container(&self, path: &str, text: &str) {
        let out = Command::new("docker")
            .args(["exec", "-i", &self.probe, "sh", "-c"])
            .arg(format!("mkdir -p \"$(dirname {path})\" && cat > {path}"))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
    }

    fn sync(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("-f")
            .arg(self.dir.path().join("Sanctuary.kdl"))
            .arg("sync")
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    fn sync_ok(&self, args: &[&str]) -> String {
        let out = self.sync(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn name(&self) -> &str {
        &self.project.name
    }
}

fn rule(name: &str, extra: &str) -> String {
    format!(
        "sync \"{name}\" {{\n    host \"./{name}\"\n    volume \"home\" path=\"/{name}\"\n    quiet-period \"0s\"\n    {extra}\n}}\n"
    )
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn first_sync_edits_both_ways_rewrites_and_owner() {
    if docker_or_skip("sync_first_sync").await.is_none() {
        return;
    }
    let rules = rule(
        "cfg",
        "rewrite \"/Users/alice/\" \"/home/node/\"\n    owner \"1234:1234\"\n    file-mode \"0600\"\n    conflict \"keep-both\"",
    );
    let p = SyncProject::new("sync-first", &rules);
    p.write_host("cfg/a.txt", "one\n");
    p.write_host("cfg/sub/b.txt", "bee\n");
    p.write_host(
        "cfg/.claude.json",
        r#"{"mcpServers": {"fs": {"command": "/Users/alice/bin/fs", "args": ["/Users/alice/work"]}}}"#,
    );
    let out = p.sync_ok(&[]);
    assert!(out.contains("applied"), "{out}");
    assert_eq!(p.probe("cat /v/cfg/a.txt"), "one\n");
    assert_eq!(p.probe("cat /v/cfg/sub/b.txt"), "bee\n");
    let json = p.probe("cat /v/cfg/.claude.json");
    assert!(json.contains("/home/node/bin/fs"), "{json}");
    assert!(json.contains("/home/node/work"), "{json}");
    assert!(!json.contains("/Users/alice"), "{json}");
    assert_eq!(
        p.probe("stat -c '%u:%g %a' /v/cfg/a.txt").trim(),
        "1234:1234 600"
    );
    // The helper container is gone after the pass.
    let helper = format!("{}-sanctuary-sync-cfg", p.name());
    let ps = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={helper}")])
        .output()
        .unwrap();
    assert!(text(&ps.stdout).trim().is_empty(), "helper left behind");

    // Nothing changed: up to date.
    assert!(p.sync_ok(&[]).contains("up to date"));

    // A container edit reaches the host; a container-form path comes back in host form.
    p.write_container("/v/cfg/a.txt", "two\n");
    p.write_container(
        "/v/cfg/.claude.json",
        r#"{"mcpServers": {"fs": {"command": "/home/node/bin/fs2", "args": ["/home/node/work"]}}}"#,
    );
    p.sync_ok(&[]);
    assert_eq!(p.read_host("cfg/a.txt"), "two\n");
    let host_json = p.read_host("cfg/.claude.json");
    assert!(host_json.contains("/Users/alice/bin/fs2"), "{host_json}");
    assert!(!host_json.contains("/home/node"), "{host_json}");

    // A host edit reaches the container.
    p.write_host("cfg/sub/b.txt", "bee two\n");
    p.sync_ok(&[]);
    assert_eq!(p.probe("cat /v/cfg/sub/b.txt"), "bee two\n");

    // A dry run shows the move and changes nothing.
    p.write_host("cfg/new.txt", "n\n");
    let dry = p.sync_ok(&["--dry-run"]);
    assert!(
        dry.contains("new.txt: copy to container (created on host)"),
        "{dry}"
    );
    assert_eq!(p.probe("ls /v/cfg/new.txt 2>/dev/null"), "");

    // Status lists the last pass, the base and the pending change.
    let status = p.sync_ok(&["status"]);
    assert!(status.contains("last pass:"), "{status}");
    assert!(status.contains("in base:"), "{status}");
    assert!(status.contains("new.txt"), "{status}");
}

#[tokio::test]
async fn json_merges_by_key_and_conflicts_follow_each_policy() {
    if docker_or_skip("sync_conflicts").await.is_none() {
        return;
    }
    let rules: String = ["fail", "prefer-host", "prefer-container", "keep-both"]
        .iter()
        .map(|policy| rule(policy, &format!("conflict \"{policy}\"")))
        .collect();
    let p = SyncProject::new("sync-conflicts", &rules);
    let policies = ["fail", "prefer-host", "prefer-container", "keep-both"];
    for policy in policies {
        p.write_host(&format!("{policy}/s.json"), r#"{"a": 1, "b": 1}"#);
        p.write_host(&format!("{policy}/t.txt"), "base\n");
    }
    p.sync_ok(&[]);

    // Different keys on each side merge (under every policy; checked under `fail`).
    p.write_host("fail/s.json", r#"{"a": 2, "b": 1}"#);
    p.write_container("/v/fail/s.json", r#"{"a": 1, "b": 3}"#);
    p.sync_ok(&["fail"]);
    let merged: serde_json::Value = serde_json::from_str(&p.read_host("fail/s.json")).unwrap();
    assert_eq!(merged, serde_json::json!({"a": 2, "b": 3}));
    let merged_c: serde_json::Value = serde_json::from_str(&p.probe("cat /v/fail/s.json")).unwrap();
    assert_eq!(merged_c, merged);

    // The same file changed differently on both sides.
    for policy in policies {
        p.write_host(&format!("{policy}/t.txt"), "host\n");
        p.write_container(&format!("/v/{policy}/t.txt"), "container\n");
    }
    let out = p.sync(&[]);
    assert_eq!(code(&out), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("conflict"),
        "{}",
        text(&out.stderr)
    );
    // fail: nothing changed on either side.
    assert_eq!(p.read_host("fail/t.txt"), "host\n");
    assert_eq!(p.probe("cat /v/fail/t.txt"), "container\n");
    // prefer-host / prefer-container: the winner on both sides.
    assert_eq!(p.probe("cat /v/prefer-host/t.txt"), "host\n");
    assert_eq!(p.read_host("prefer-container/t.txt"), "container\n");
    // keep-both: the loser is kept under a conflict name on both sides.
    let copies: Vec<String> = std::fs::read_dir(p.host("keep-both"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("t.txt.conflict-"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let in_container = p.probe("ls /v/keep-both");
    assert!(in_container.contains(&copies[0]), "{in_container}");
}

#[tokio::test]
async fn half_written_json_waits_and_a_deleted_host_root_halts() {
    if docker_or_skip("sync_safety").await.is_none() {
        return;
    }
    let p = SyncProject::new("sync-safety", &rule("cfg", ""));
    p.write_host("cfg/s.json", r#"{"ok": true}"#);
    for i in 0..3 {
        p.write_host(&format!("cfg/f{i}.txt"), "x");
    }
    p.sync_ok(&[]);

    p.write_host("cfg/s.json", r#"{"ok": "#);
    let out = p.sync_ok(&[]);
    assert!(out.contains("does not parse as JSON"), "{out}");
    assert_eq!(p.probe("cat /v/cfg/s.json"), r#"{"ok": true}"#);
    p.write_host("cfg/s.json", r#"{"ok": false}"#);
    p.sync_ok(&[]);
    assert_eq!(p.probe("cat /v/cfg/s.json"), r#"{"ok": false}"#);

    std::fs::remove_dir_all(p.host("cfg")).unwrap();
    let out = p.sync(&[]);
    assert_eq!(code(&out), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("does not exist; nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.probe("ls /v/cfg | wc -l").trim(), "4");
}

/// Writes `n` small files under `root/dir` on the host, and the same as one tar archive.
fn many_files(root: &Path, dir: &str, n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let rel = format!("{dir}/d{}/f{i}.txt", i % 100);
        let body = format!("file {i}\n");
        let p = root.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &body).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, &rel, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test]
async fn a_no_change_sync_of_ten_thousand_files_completes() {
    if docker_or_skip("sync_10k").await.is_none() {
        return;
    }
    let p = SyncProject::new("sync-10k", &rule("big", ""));
    let archive = many_files(p.dir.path(), "big", 10_000);
    let mut child = Command::new("docker")
        .args(["cp", "-", &format!("{}:/v", p.probe)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&archive).unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(p.probe("find /v/big -type f | wc -l").trim(), "10000");

    let start = Instant::now();
    p.sync_ok(&[]);
    let first = start.elapsed();
    let start = Instant::now();
    let out = p.sync_ok(&[]);
    let second = start.elapsed();
    assert!(out.contains("up to date (10100 entries)"), "{out}");
    let line = format!(
        "sync of 10,000 identical files: first pass (records the base) {first:?}, no-change pass {second:?}\n"
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[tokio::test]
async fn watch_propagates_host_edits_until_interrupted() {
    if docker_or_skip("sync_watch").await.is_none() {
        return;
    }
    let p = SyncProject::new("sync-watch", &rule("cfg", ""));
    p.write_host("cfg/a.txt", "one\n");
    let child = p.watch();
    let wait_for = |script: &str, want: &str| p.wait_for_probe(script, want);
    assert!(wait_for("cat /v/cfg/a.txt 2>/dev/null", "one\n"));
    p.write_host("cfg/b.txt", "bee\n");
    assert!(wait_for("cat /v/cfg/b.txt 2>/dev/null", "bee\n"));
    // A container edit is picked up by the periodic rescan.
    p.write_container("/v/cfg/c.txt", "sea\n");
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !p.host("cfg/c.txt").exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(p.read_host("cfg/c.txt"), "sea\n");
    assert_eq!(interrupt(child), Some(0));
    let helper = format!("{}-sanctuary-sync-cfg", p.name());
    let ps = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={helper}")])
        .output()
        .unwrap();
    assert!(text(&ps.stdout).trim().is_empty(), "helper left behind");
}

#[test]
fn unknown_rules_and_manifests_without_rules_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let kdl = dir.path().join("Sanctuary.kdl");
    std::fs::write(
        &kdl,
        "project \"p\"\nvolume \"v\"\nsync \"cfg\" { host \"./h\"; volume \"v\"; }\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("-f")
            .arg(&kdl)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&["sync", "nope"]);
    assert_eq!(code(&out), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown sync rule `nope`") && err.contains("cfg"),
        "{err}"
    );
    std::fs::write(&kdl, "project \"p\"\n").unwrap();
    let out = run(&["sync", "status"]);
    assert_eq!(code(&out), Some(2));
    assert!(text(&out.stderr).contains("declares no sync rules"));
}

#[test]
fn local_dirs_sync_two_way_without_docker() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("sub/x.txt"), "x").unwrap();
    std::fs::write(b.join("y.txt"), "y").unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("sync")
            .arg("--local-dirs")
            .args([&a, &b])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(b.join("sub/x.txt")).unwrap(), "x");
    assert_eq!(std::fs::read_to_string(a.join("y.txt")).unwrap(), "y");
    assert!(dir.path().join(".a.sync-base.json").exists());
    assert!(text(&run().stdout).contains("up to date"));
}

#[tokio::test]
async fn rules_marked_on_apply_run_after_apply() {
    if docker_or_skip("sync_on_apply").await.is_none() {
        return;
    }
    let rules = format!("{}{}", rule("cfg", "on-apply true"), rule("manual", ""));
    let p = SyncProject::new("sync-on-apply", &rules);
    p.write_host("cfg/settings.json", "{\"theme\": \"dark\"}\n");
    p.write_host("manual/notes.txt", "by hand\n");
    let out = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .arg("-f")
        .arg(p.host("Sanctuary.kdl"))
        .args(["apply", "-y"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Apply removed the probe: it carries the project's label but the manifest does not
    // declare it. Look into the volume with a fresh container instead.
    let volume = p.project.object("home");
    let look = |script: &str| {
        let out = Command::new("docker")
            .args(["run", "--rm", "-v"])
            .arg(format!("{volume}:/v"))
            .args([test_image().as_str(), "sh", "-c", script])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert_eq!(
        look("cat /v/cfg/settings.json"),
        "{\"theme\": \"dark\"}\n",
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // A rule without on-apply waits for `sanctuary sync`.
    assert_eq!(
        look("test -e /v/manual/notes.txt && echo yes || echo no").trim(),
        "no"
    );
}

/// A service that mounts the `home` volume at `/home/node`, so a rule's `path=` is read as
/// that service sees it (`/home/node/.claude.json` is `/v/.claude.json` in the probe).
const HOME_SERVICE: &str = r#"image "node" { reference "busybox:latest"; }
service "agent" { image "node"; mount "home" "/home/node"; }
"#;

fn file_rule(name: &str, host: &str, path: &str, extra: &str) -> String {
    format!(
        "sync \"{name}\" {{\n    host \"./{host}\"\n    volume \"home\" path=\"{path}\"\n    quiet-period \"0s\"\n    rewrite \"/Users/alice/\" \"/home/node/\"\n    {extra}\n}}\n"
    )
}

#[tokio::test]
async fn a_single_host_file_syncs_with_a_file_in_a_volume() {
    if docker_or_skip("sync_single_file").await.is_none() {
        return;
    }
    let rules = format!(
        "{HOME_SERVICE}{}",
        file_rule(
            "claude-json",
            "home/.claude.json",
            "/home/node/.claude.json",
            "owner \"1000:1000\"\n    conflict \"keep-both\""
        )
    );
    let p = SyncProject::new("sync-single-file", &rules);
    p.write_host(
        "home/.claude.json",
        r#"{"mcpServers": {"fs": {"command": "/Users/alice/bin/fs", "args": ["/Users/alice/work"]}}, "theme": "dark"}"#,
    );
    // Neighbours on either side are not part of a file rule.
    p.write_host("home/.bashrc", "host only\n");
    p.write_container("/v/.profile", "container only\n");

    let dry = p.sync_ok(&["--dry-run"]);
    assert!(
        dry.contains(".claude.json: copy to container (created on host)"),
        "{dry}"
    );
    assert_eq!(p.probe("ls /v/.claude.json 2>/dev/null"), "");

    p.sync_ok(&[]);
    let json = p.probe("cat /v/.claude.json");
    assert!(json.contains("/home/node/bin/fs"), "{json}");
    assert!(json.contains("/home/node/work"), "{json}");
    assert!(!json.contains("/Users/alice"), "{json}");
    assert_eq!(
        p.probe("stat -c '%u:%g' /v/.claude.json").trim(),
        "1000:1000"
    );
    assert_eq!(p.probe("ls -A /v | sort"), ".claude.json\n.profile\n");
    assert!(!p.host("home/.profile").exists());
    assert!(p.sync_ok(&[]).contains("up to date (1 entries)"));

    // A container edit comes back to the host file, rewritten.
    p.write_container(
        "/v/.claude.json",
        r#"{"mcpServers": {"fs": {"command": "/home/node/bin/fs2", "args": ["/home/node/work"]}}, "theme": "dark"}"#,
    );
    p.sync_ok(&[]);
    let host = p.read_host("home/.claude.json");
    assert!(host.contains("/Users/alice/bin/fs2"), "{host}");
    assert!(!host.contains("/home/node"), "{host}");

    // Different keys edited on both sides merge.
    let mut h: serde_json::Value = serde_json::from_str(&host).unwrap();
    h["theme"] = "light".into();
    p.write_host("home/.claude.json", &h.to_string());
    let mut c: serde_json::Value = serde_json::from_str(&p.probe("cat /v/.claude.json")).unwrap();
    c["mcpServers"]["fs"]["command"] = "/home/node/bin/fs3".into();
    p.write_container("/v/.claude.json", &c.to_string());
    let out = p.sync_ok(&[]);
    assert!(out.contains("merge JSON keys"), "{out}");
    assert!(!out.contains("conflict: .claude.json"), "{out}");
    let merged: serde_json::Value =
        serde_json::from_str(&p.read_host("home/.claude.json")).unwrap();
    assert_eq!(merged["theme"], "light");
    assert_eq!(
        merged["mcpServers"]["fs"]["command"],
        "/Users/alice/bin/fs3"
    );
    let merged_c: serde_json::Value =
        serde_json::from_str(&p.probe("cat /v/.claude.json")).unwrap();
    assert_eq!(merged_c["theme"], "light");
    assert_eq!(
        merged_c["mcpServers"]["fs"]["command"],
        "/home/node/bin/fs3"
    );

    // The same key changed differently: keep-both saves the loser beside the file, both sides.
    p.write_host("home/.claude.json", r#"{"theme": "host"}"#);
    p.write_container("/v/.claude.json", r#"{"theme": "container"}"#);
    let out = p.sync_ok(&[]);
    assert!(out.contains("conflict: .claude.json"), "{out}");
    let copies = p.probe("ls -A /v | grep -c '^.claude.json.conflict-'");
    assert_eq!(copies.trim(), "1");
    let host_copies = std::fs::read_dir(p.host("home"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with(".claude.json.conflict-")
        })
        .count();
    assert_eq!(host_copies, 1);
    assert!(p.sync_ok(&[]).contains("up to date (1 entries)"));

    // Status describes the file rule.
    let status = p.sync_ok(&["status"]);
    assert!(status.contains("host file"), "{status}");
    assert!(status.contains("container file"), "{status}");
    assert!(status.contains("pending:   nothing"), "{status}");
}

#[tokio::test]
async fn file_rule_deletions_follow_the_base_and_a_missing_parent_halts() {
    if docker_or_skip("sync_single_file_safety").await.is_none() {
        return;
    }
    let rules = format!(
        "{HOME_SERVICE}{}{}{}",
        file_rule("cfg", "home/.claude.json", "/home/node/.claude.json", ""),
        file_rule(
            "fresh",
            "home/settings.json",
            "/home/node/.config/settings.json",
            "mode \"to-host\""
        ),
        file_rule("linked", "link.json", "/home/node/link.json", "")
    );
    let p = SyncProject::new("sync-single-file-safety", &rules);
    // A file so far only in the container comes to the host (the container path decides).
    p.write_container("/v/.config/settings.json", r#"{"dir": "/home/node/x"}"#);
    p.write_host("home/.claude.json", r#"{"a": 1}"#);
    p.sync_ok(&["cfg", "fresh"]);
    assert_eq!(
        p.read_host("home/settings.json"),
        r#"{"dir": "/Users/alice/x"}"#
    );
    assert_eq!(p.probe("cat /v/.claude.json"), r#"{"a": 1}"#);

    // Deleted on the host after a recorded pass: deleted in the container (two-way).
    std::fs::remove_file(p.host("home/.claude.json")).unwrap();
    let dry = p.sync_ok(&["cfg", "--dry-run"]);
    assert!(dry.contains(".claude.json: delete in container"), "{dry}");
    p.sync_ok(&["cfg"]);
    assert_eq!(p.probe("ls /v/.claude.json 2>/dev/null"), "");
    assert!(p.sync_ok(&["cfg"]).contains("up to date (0 entries)"));

    // Recreated in the container: it comes back to the host (nothing is recorded now).
    p.write_container("/v/.claude.json", r#"{"b": 2}"#);
    p.sync_ok(&["cfg"]);
    assert_eq!(p.read_host("home/.claude.json"), r#"{"b": 2}"#);

    // The host file's directory is gone: the pass halts and deletes nothing.
    std::fs::remove_dir_all(p.host("home")).unwrap();
    let out = p.sync(&["cfg"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("does not exist; nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.probe("cat /v/.claude.json"), r#"{"b": 2}"#);

    // A host path that links to a file is refused, naming it; nothing is written.
    p.write_host("real.json", "{}");
    std::os::unix::fs::symlink(p.host("real.json"), p.host("link.json")).unwrap();
    let out = p.sync(&["linked"]);
    assert_eq!(code(&out), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("link.json is a symbolic link"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.probe("ls /v/link.json 2>/dev/null"), "");
}

#[tokio::test]
async fn watch_syncs_a_single_file_rule() {
    if docker_or_skip("sync_watch_file").await.is_none() {
        return;
    }
    let rules = format!(
        "{HOME_SERVICE}{}",
        file_rule("cfg", "home/.claude.json", "/home/node/.claude.json", "")
    );
    let p = SyncProject::new("sync-watch-file", &rules);
    p.write_host("home/.claude.json", r#"{"n": 1}"#);
    let child = p.watch();
    let wait_for = |script: &str, want: &str| p.wait_for_probe(script, want);
    assert!(wait_for("cat /v/.claude.json 2>/dev/null", r#"{"n": 1}"#));
    p.write_host("home/.bashrc", "not synced\n");
    p.write_host("home/.claude.json", r#"{"n": 2}"#);
    assert!(wait_for("cat /v/.claude.json 2>/dev/null", r#"{"n": 2}"#));
    assert_eq!(p.probe("ls -A /v"), ".claude.json\n");
    assert_eq!(interrupt(child), Some(0));
}

/// Writes `n` files of `size` random bytes under `root/dir` (ten directories), with mtimes
/// an hour old so no quiet period or racy window applies.
fn random_files(root: &Path, dir: &str, n: usize, size: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    for i in 0..n {
        let p = root.join(format!("{dir}/d{}/f{i}.bin", i % 10));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut body = Vec::with_capacity(size);
        while body.len() < size {
            // xorshift: incompressible enough that no layer can shortcut the transfer.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            body.extend_from_slice(&state.to_le_bytes());
        }
        body.truncate(size);
        std::fs::write(&p, &body).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
}

/// `relative path  sha256` of every file under the host directory, sorted.
fn host_digests(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                let sum = hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()));
                out.push(format!("{rel}  {sum}"));
            }
        }
    }
    out.sort();
    out
}

impl SyncProject {
    /// `relative path  sha256` of every file under `dir` in the volume, sorted.
    fn container_digests(&self, dir: &str) -> Vec<String> {
        let out = self.probe(&format!(
            "cd {dir} && find . -type f -exec sha256sum {{}} + | sed 's#^\\([0-9a-f]*\\)  \\./\\(.*\\)#\\2  \\1#'"
        ));
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    /// Starts a pass of every rule.
    fn spawn_sync(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("-f")
            .arg(self.dir.path().join("Sanctuary.kdl"))
            .arg("sync")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// [`SyncProject::spawn_sync`] with the debug log on stderr, which says when a batch
    /// starts.
    fn spawn_sync_logged(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("-f")
            .arg(self.dir.path().join("Sanctuary.kdl"))
            .arg("sync")
            .env("NO_COLOR", "1")
            .env("SANCTUARY_LOG", "sanctuary::sync=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The project's containers other than the probe.
    fn helpers(&self) -> Vec<String> {
        let ps = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label={PROJECT_LABEL}={}", self.name()))
            .output()
            .unwrap();
        text(&ps.stdout)
            .lines()
            .filter(|n| *n != self.probe)
            .map(str::to_string)
            .collect()
    }
}

fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

#[tokio::test]
async fn sigterm_stops_a_long_pass_at_once_and_the_next_pass_converges() {
    if docker_or_skip("sync_sigterm").await.is_none() {
        return;
    }
    let p = SyncProject::new("sync-sigterm", &rule("big", ""));
    // Two batches (180 MB): after the first starts, more than a batch is still to go.
    random_files(p.dir.path(), "big", 720, 256 << 10);
    let mut child = p.spawn_sync_logged();
    // The signal goes when the transfer has started, as the debug log says.
    let (lines, seen) = std::sync::mpsc::channel();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(&mut err)) {
            let Ok(line) = line else { break };
            if line.contains("applying a batch") {
                let _ = lines.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    seen.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the pass never started a batch");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pass ended before the signal"
    );
    let sent = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(143), "stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let line = format!("sync: SIGTERM to exit in {took:?}\n");
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    // Nothing half-done is left: no staged batch, no temporary, no helper container.
    assert_eq!(
        p.probe("find /v -name '*.sanctuary-tmp-*' | wc -l").trim(),
        "0"
    );
    assert!(p.helpers().is_empty(), "{:?}", p.helpers());

    p.sync_ok(&[]);
    assert_eq!(p.container_digests("/v/big"), host_digests(&p.host("big")));
    assert_eq!(host_digests(&p.host("big")).len(), 720);
    let out = p.sync_ok(&[]);
    assert!(out.contains("up to date"), "{out}");
}

#[tokio::test]
async fn passes_killed_at_any_point_leave_nothing_behind_and_converge() {
    if docker_or_skip("sync_kill_schedule").await.is_none() {
        return;
    }
    let p = SyncProject::new("sync-kills", &rule("tree", ""));
    // The tree starts in the volume, so the writes (and their temporaries) are on the host;
    // a second tree starts on the host, so they are in the volume too.
    let seed = tempfile::tempdir().unwrap();
    random_files(seed.path(), "tree", 120, 200 << 10);
    random_files(p.dir.path(), "tree/up", 120, 200 << 10);
    let out = Command::new("docker")
        .args(["cp", &format!("{}/tree/.", seed.path().display())])
        .arg(format!("{}:/v/tree", p.probe))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut killed_mid_pass = 0;
    for k in 0..10u64 {
        let mut child = p.spawn_sync();
        std::thread::sleep(std::time::Duration::from_millis(150 + k * 120));
        if child.try_wait().unwrap().is_none() {
            killed_mid_pass += 1;
            signal(&child, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.wait();
    }
    assert!(
        killed_mid_pass >= 5,
        "only {killed_mid_pass} kills hit a running pass"
    );
    p.sync_ok(&[]);
    // The pass swept what the killed ones left: no temporaries on either side, no helper.
    assert_eq!(
        p.probe("find /v -name '*.sanctuary-tmp-*' | wc -l").trim(),
        "0"
    );
    let host_temps: Vec<String> = host_digests(&p.host("tree"))
        .into_iter()
        .filter(|l| l.contains(".sanctuary-tmp-"))
        .collect();
    assert!(host_temps.is_empty(), "{host_temps:?}");
    assert!(p.helpers().is_empty(), "{:?}", p.helpers());
    let both = host_digests(&p.host("tree"));
    assert_eq!(both.len(), 240);
    assert_eq!(p.container_digests("/v/tree"), both);
}
