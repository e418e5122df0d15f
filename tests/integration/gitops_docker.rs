//! Generations beyond `rollback`: `apply --ref` from real git repositories (made with the git
//! CLI in a temp dir), `--rollback-on-failure`, `follow` against a local bare repository,
//! `drift`, and kill -9 during apply and rollback — through the real binary against the real
//! engine. Each test has its own project, removed by its `TestProject` guard.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::apply_docker::{docker_available, expect, sanct, text};
use crate::docker_support::{
    docker_inspect, kill_after, wait_for, write_busybox_context, TestProject,
};

/// A block of 40 host ports above the ephemeral range, for this test process.
fn port(slot: u16) -> u16 {
    assert!(slot < 40);
    61000 + (std::process::id() % 100) as u16 * 40 + slot
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.email=ada@example.com", "-c", "user.name=Ada"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn env_of(name: &str) -> Vec<String> {
    docker_inspect(name)["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn image_of(name: &str) -> String {
    docker_inspect(name)["Image"].as_str().unwrap().to_string()
}

/// Writes the manifest of a project with the busybox image `bb` and `services`.
fn write_manifest(dir: &Path, project: &TestProject, services: &str) {
    let kdl = format!(
        "project \"{}\"\nimage \"bb\" {{\n    context \"ctx\"\n}}\n{services}",
        project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
}

fn web(greeting: &str) -> String {
    format!(
        r#"
service "web" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    env GREETING="{greeting}"
}}
"#
    )
}

/// A git repository in a temp dir holding a busybox context; returns the dir.
fn repository(project: &TestProject, services: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    git(dir, &["init", "-q"]);
    write_busybox_context(&dir.join("ctx")).unwrap();
    std::fs::write(dir.join(".gitignore"), ".sanctuary/\n").unwrap();
    write_manifest(dir, project, services);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "A"]);
    tmp
}

#[test]
fn apply_ref_reads_the_commit_not_the_working_tree_and_rollback_returns_to_it() {
    if !docker_available("apply_ref") {
        return;
    }
    let project = TestProject::new("applyref");
    let tmp = repository(&project, &web("a"));
    let dir = tmp.path();
    let a = git(dir, &["rev-parse", "HEAD"]);
    // B: another env and another image (its context changed).
    write_manifest(dir, &project, &web("b"));
    std::fs::write(dir.join("ctx/version.txt"), "b\n").unwrap();
    let dockerfile = std::fs::read_to_string(dir.join("ctx/Dockerfile")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        format!("{dockerfile}COPY version.txt /version.txt\n"),
    )
    .unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "B"]);
    let b = git(dir, &["rev-parse", "HEAD"]);
    // The working tree says something else again, and is not what --ref applies.
    write_manifest(dir, &project, &web("working-tree"));
    std::fs::write(dir.join("ctx/version.txt"), "working tree\n").unwrap();

    let name = project.object("web");
    let plan = expect(dir, &["plan", "--ref", &a], 0);
    assert!(plan.contains("service.web  create"), "{plan}");
    expect(dir, &["apply", "-y", "--ref", &a], 0);
    assert!(env_of(&name).contains(&"GREETING=a".to_string()));
    let image_a = image_of(&name);
    let out = expect(dir, &["apply", "-y", "--ref", "main"], 0);
    assert!(out.contains("Recorded generation 2"), "{out}");
    assert!(env_of(&name).contains(&"GREETING=b".to_string()));
    let image_b = image_of(&name);
    assert_ne!(image_a, image_b);
    let version = Command::new("docker")
        .args(["exec", &name, "cat", "/version.txt"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        "b\n",
        "the commit's context"
    );
    assert_eq!(
        git(dir, &["status", "--porcelain"]).lines().count(),
        2,
        "working tree untouched"
    );

    expect(dir, &["rollback", "-y"], 0);
    assert_eq!(image_of(&name), image_a);
    assert!(env_of(&name).contains(&"GREETING=a".to_string()));
    let json: serde_json::Value =
        serde_json::from_str(&expect(dir, &["--json", "history"], 0)).unwrap();
    let gens = json["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 3, "{json}");
    let shown = |n: &str| -> serde_json::Value {
        serde_json::from_str(&expect(dir, &["--json", "history", "show", n], 0)).unwrap()
    };
    assert_eq!(shown("1")["git"]["commit"], a.as_str());
    assert_eq!(shown("1")["git"]["dirty"], false);
    assert_eq!(shown("2")["git"]["commit"], b.as_str());
    assert_eq!(shown("2")["git"]["reference"], "main");
    assert_eq!(shown("3")["rollback_of"], 1);

    // Refs that name nothing, and a shallow clone lacking the commit: exit 2, nothing changes.
    let before = docker_inspect(&name)["Id"].clone();
    let out = sanct(dir, &["apply", "-y", "--ref", "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`no-such-branch` does not name a commit"),
        "{}",
        text(&out)
    );
    let shallow = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.display());
    git(shallow.path(), &["clone", "-q", "--depth", "1", &url, "c"]);
    let clone = shallow.path().join("c");
    let out = sanct(&clone, &["plan", "--ref", &a]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("shallow clone"), "{}", text(&out));
    assert!(
        text(&out).contains("git fetch --unshallow"),
        "{}",
        text(&out)
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("Sanctuary.kdl"),
        outside.path().join("Sanctuary.kdl"),
    )
    .unwrap();
    let out = sanct(outside.path(), &["plan", "--ref", "HEAD"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not in a git repository"),
        "{}",
        text(&out)
    );
    assert_eq!(docker_inspect(&name)["Id"], before);
}

/// The health check of a service that answers.
const ANSWERS: &str = r#"ready-timeout "20s"
    health { cmd "wget" "-q" "-O" "/dev/null" "http://127.0.0.1:8080/"; interval "1s"; }"#;

/// The health check of a service that never becomes ready.
const NEVER: &str = r#"env BROKEN="yes"
    ready-timeout "3s"
    health { cmd "false"; interval "1s"; }"#;

/// A service answering HTTP on `host` with the page `body`, with `health`.
fn http_service(body: &str, host: u16, health: &str) -> String {
    format!(
        r#"
service "web" {{
    image "bb"
    command "sh" "-c" "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
    stop-timeout "1s"
    port 8080 host={host}
    {health}
}}
"#
    )
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn rollback_on_failure_puts_the_previous_generation_back_and_it_answers() {
    if !docker_available("rollback_on_failure") {
        return;
    }
    let project = TestProject::new("rbfail");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let host = port(0);
    write_manifest(dir, &project, &http_service("one", host, ANSWERS));
    expect(dir, &["apply", "-y"], 0);
    assert!(http_get(host).contains("one"));

    // A generation whose service never becomes healthy.
    write_manifest(dir, &project, &http_service("two", host, NEVER));
    let out = expect(dir, &["apply", "-y", "--rollback-on-failure"], 5);
    assert!(out.contains("did not become healthy within 3s"), "{out}");
    assert!(out.contains("Recorded generation 2 (rolled-back)"), "{out}");
    assert!(out.contains("Rolling back to generation 1"), "{out}");
    assert!(out.contains("Recorded generation 3 (applied)"), "{out}");
    assert!(
        http_get(host).contains("one"),
        "the previous generation answers"
    );
    assert!(!env_of(&project.object("web")).contains(&"BROKEN=yes".to_string()));

    // With --test, a failing test after a clean apply rolls back too.
    write_manifest(
        dir,
        &project,
        &format!(
            "{}\ntest \"page\" {{\n    needs \"web\"\n    run \"busybox wget -q -O- http://127.0.0.1:{host}/ | grep -q one\"\n}}\n",
            http_service("three", host, ANSWERS)
        ),
    );
    let out = expect(dir, &["apply", "-y", "--test", "--rollback-on-failure"], 5);
    assert!(out.contains("1 failed"), "{out}");
    assert!(out.contains("Recorded generation 4 (rolled-back)"), "{out}");
    assert!(http_get(host).contains("one"));
    let json: serde_json::Value =
        serde_json::from_str(&expect(dir, &["--json", "history"], 0)).unwrap();
    let outcomes: Vec<&str> = json["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "applied",
            "rolled-back",
            "applied",
            "rolled-back",
            "applied"
        ]
    );

    // Without the flag, a failed apply stays failed (exit 3) and is recorded so.
    write_manifest(dir, &project, &http_service("four", host, NEVER));
    let out = expect(dir, &["apply", "-y"], 3);
    assert!(out.contains("Recorded generation 6 (failed)"), "{out}");
}

fn generations(dir: &Path) -> Vec<serde_json::Value> {
    let out = sanct(dir, &["--json", "history"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["generations"].as_array().cloned())
        .unwrap_or_default()
}

struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn follow_applies_each_new_commit_in_order_and_skips_an_invalid_one() {
    if !docker_available("follow") {
        return;
    }
    let project = TestProject::new("follow");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    git(root, &["init", "-q", "--bare", "remote.git"]);
    // The pusher's repository; the follower works in a clone of the remote.
    let pusher = root.join("pusher");
    std::fs::create_dir(&pusher).unwrap();
    git(&pusher, &["init", "-q"]);
    write_busybox_context(&pusher.join("ctx")).unwrap();
    write_manifest(&pusher, &project, &web("one"));
    git(&pusher, &["add", "-A"]);
    git(&pusher, &["commit", "-qm", "one"]);
    git(&pusher, &["push", "-q", "../remote.git", "HEAD:main"]);
    git(
        root,
        &["clone", "-q", "-b", "main", "remote.git", "follower"],
    );
    let follower = root.join("follower");
    let log = std::fs::File::create(root.join("follow.log")).unwrap();
    let mut child = Follower(
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(["follow", "origin", "main", "--interval", "500ms"])
            .current_dir(&follower)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let name = project.object("web");
    let log = || std::fs::read_to_string(root.join("follow.log")).unwrap_or_default();
    wait_for("the first commit", Duration::from_secs(90), || {
        generations(&follower).len() == 1
    });
    assert!(
        env_of(&name).contains(&"GREETING=one".to_string()),
        "{}",
        log()
    );

    // Two commits in one push: both applied, in order.
    let mut pushed = Vec::new();
    for g in ["two", "three"] {
        write_manifest(&pusher, &project, &web(g));
        git(&pusher, &["commit", "-qam", g]);
        pushed.push(git(&pusher, &["rev-parse", "HEAD"]));
    }
    git(&pusher, &["push", "-q", "../remote.git", "HEAD:main"]);
    wait_for("two more generations", Duration::from_secs(90), || {
        generations(&follower).len() == 3
    });
    let gens = generations(&follower);
    let commits: Vec<&str> = gens[1..]
        .iter()
        .map(|g| g["git"]["commit"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(commits, pushed, "{gens:?}\n{}", log());
    assert!(env_of(&name).contains(&"GREETING=three".to_string()));

    // An invalid manifest is reported and skipped; the follower goes on to the next commit.
    std::fs::write(
        pusher.join("Sanctuary.kdl"),
        format!(
            "{}service \"broken\" {{\n",
            std::fs::read_to_string(pusher.join("Sanctuary.kdl")).unwrap()
        ),
    )
    .unwrap();
    git(&pusher, &["commit", "-qam", "broken"]);
    let broken = git(&pusher, &["rev-parse", "HEAD"]);
    write_manifest(&pusher, &project, &web("four"));
    git(&pusher, &["commit", "-qam", "four"]);
    git(&pusher, &["push", "-q", "../remote.git", "HEAD:main"]);
    wait_for(
        "the commit after the broken one",
        Duration::from_secs(90),
        || generations(&follower).len() == 4,
    );
    assert!(
        log().contains(&format!("Skipping commit {}", &broken[..12])),
        "{}",
        log()
    );
    assert!(env_of(&name).contains(&"GREETING=four".to_string()));
    assert!(child.0.try_wait().unwrap().is_none(), "still following");

    // Ctrl-C while it waits stops it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.0.wait().unwrap();
    assert!(
        status.code() == Some(0) || status.code() == Some(130),
        "{status:?}\n{}",
        log()
    );
    assert!(!follower.join(".sanctuary/lock").exists());

    // `--once` deals with what is new and exits with how it went: 2 for a skipped commit, then
    // 0 for a clean one; the cursor carried over from the follower.
    std::fs::write(pusher.join("Sanctuary.kdl"), "service \"broken\" {\n").unwrap();
    git(&pusher, &["commit", "-qam", "broken again"]);
    git(&pusher, &["push", "-q", "../remote.git", "HEAD:main"]);
    expect(&follower, &["follow", "origin", "main", "--once"], 2);
    write_manifest(&pusher, &project, &web("five"));
    git(&pusher, &["commit", "-qam", "five"]);
    git(&pusher, &["push", "-q", "../remote.git", "HEAD:main"]);
    expect(&follower, &["follow", "origin", "main", "--once"], 0);
    assert_eq!(generations(&follower).len(), 5);
    assert!(env_of(&name).contains(&"GREETING=five".to_string()));
}

#[test]
fn drift_detects_every_kind_of_outside_change() {
    if !docker_available("drift") {
        return;
    }
    let project = TestProject::new("drift");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let services = r#"
volume "data"
network "back"
service "a" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    mount "data" "/data"
    network "back"
}
service "b" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
}
service "c" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
}
"#;
    write_manifest(dir, &project, services);
    let none = sanct(dir, &["drift"]);
    assert_eq!(
        none.status.code(),
        Some(1),
        "no generation yet: {}",
        text(&none)
    );
    expect(dir, &["apply", "-y"], 0);
    let out = expect(dir, &["drift"], 0);
    assert!(out.contains("No drift"), "{out}");

    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    };
    let (a, b, c) = (
        project.object("a"),
        project.object("b"),
        project.object("c"),
    );
    let image = docker_inspect(&a)["Config"]["Image"]
        .as_str()
        .unwrap()
        .to_string();
    docker(&["stop", "-t", "0", &a]);
    docker(&["rm", "-f", &b]);
    // c: recreated by hand from another image carrying the project's label.
    let other = format!("{}-other", project.name);
    let build = Command::new("docker")
        .args(["build", "-q", "-t", &other, "--label"])
        .arg(format!("sanctuary.project={}", project.name))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("FROM {image}\nLABEL drift=yes\n").as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(build.success());
    docker(&["rm", "-f", &c]);
    let label = format!("sanctuary.project={}", project.name);
    docker(&[
        "run", "-d", "--name", &c, "--label", &label, &other, "sleep", "1000",
    ]);
    // The tag the containers were made from now names the other image.
    docker(&["tag", &other, &image]);
    docker(&["network", "rm", &project.object("default")]);

    let out = sanct(dir, &["--json", "drift"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, String)> = json["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["node"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (node, kind) in [
        ("service.a", "stopped"),
        ("service.a", "retagged"),
        ("service.b", "removed"),
        ("service.c", "recreated"),
        ("service.c", "other-image"),
        ("network.default", "missing"),
    ] {
        assert!(
            found.contains(&(node.to_string(), kind.to_string())),
            "{node} {kind} not in {found:?}"
        );
    }
    // The volume and the network: removed once nothing uses them.
    docker(&["rm", "-f", &a]);
    docker(&["volume", "rm", &project.object("data")]);
    docker(&["network", "rm", &project.object("back")]);
    let out = expect(dir, &["drift"], 2);
    assert!(
        out.contains("volume.data") && out.contains("missing"),
        "{out}"
    );
    assert!(out.contains("network.back"), "{out}");

    // Drift only reads; apply puts everything back, and then there is none.
    expect(dir, &["apply", "-y"], 0);
    expect(dir, &["drift"], 0);
    // What sanctuary itself removed is not drift.
    expect(dir, &["destroy", "-y"], 0);
    expect(dir, &["drift"], 0);
}

/// Every generation file parses, and their numbers run 1..=n.
fn history_is_whole(dir: &Path) -> usize {
    let out = expect(dir, &["--json", "history"], 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let gens = json["generations"].as_array().unwrap();
    for (i, g) in gens.iter().enumerate() {
        assert_eq!(g["number"], i as u64 + 1, "{out}");
    }
    gens.len()
}

#[test]
fn kill_9_during_apply_or_rollback_never_corrupts_the_history_and_the_next_apply_converges() {
    if !docker_available("kill_history") {
        return;
    }
    let project = TestProject::new("killhist");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let slow = |greeting: &str| {
        format!(
            r#"
service "slow" {{
    image "bb"
    command "sh" "-c" "sleep 1; mkdir -p /tmp; touch /tmp/ready; exec sleep 1000"
    stop-timeout "1s"
    env GREETING="{greeting}"
    ready-timeout "30s"
    health {{ cmd "test" "-f" "/tmp/ready"; interval "500ms"; }}
}}
"#
        )
    };
    write_manifest(dir, &project, &slow("zero"));
    expect(dir, &["apply", "-y"], 0);
    // Kill -9 at several points of an apply and of a rollback: before the change, while
    // waiting for readiness, around the recording of the generation.
    for (round, delay_ms) in [100u64, 600, 1200, 1800, 2600].into_iter().enumerate() {
        write_manifest(dir, &project, &slow(&format!("g{round}")));
        let args: &[&str] = if round % 2 == 0 {
            &["apply", "-y"]
        } else {
            &["rollback", "-y"]
        };
        kill_after(dir, args, Duration::from_millis(delay_ms));
        history_is_whole(dir);
        // The next command converges, and records what it changed.
        expect(dir, &["apply", "-y"], 0);
        expect(dir, &["plan", "--detailed-exitcode"], 0);
        // Every change is recorded: one cut short before its record is recorded by the next
        // apply, which finds nothing left to change.
        let n = history_is_whole(dir);
        assert!(n >= 2 + round, "{n} generations after round {round}");
        let last = &generations(dir)[n - 1];
        assert_eq!(last["outcome"], "applied", "{last}");
        assert!(env_of(&project.object("slow")).contains(&format!("GREETING=g{round}")));
    }
}

/// A service that appends its version to the volume's log at every start.
fn logger(version: &str) -> String {
    format!(
        r#"
volume "data"
service "web" {{
    image "bb"
    command "sh" "-c" "echo {version} >> /data/log; exec sleep 1000"
    stop-timeout "1s"
    mount "data" "/data"
}}
backup "data" {{
    volume "data"
    copy "local" path="./bk"
    keep last=1
}}
"#
    )
}

fn data_log(name: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", name, "cat", "/data/log"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rollback_with_data_puts_back_the_volume_the_generation_ran_with() {
    if !docker_available("rollback_with_data") {
        return;
    }
    let project = TestProject::new("withdata");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let name = project.object("web");
    write_manifest(dir, &project, &logger("v1"));
    let out = expect(dir, &["apply", "-y", "--backup"], 0);
    assert!(out.contains("does not exist yet; nothing to save"), "{out}");
    assert_eq!(data_log(&name), "v1\n");
    write_manifest(dir, &project, &logger("v2"));
    expect(dir, &["apply", "-y", "--backup"], 0);
    assert_eq!(data_log(&name), "v1\nv2\n");
    let gens = generations(dir);
    assert_eq!(gens[0]["backups"], serde_json::json!([]), "{}", gens[0]);
    let taken = gens[1]["backups"].as_array().unwrap().clone();
    assert_eq!(taken.len(), 1, "{}", gens[1]);
    assert_eq!(taken[0]["backup"], "data");
    assert_eq!(
        taken[0]["source"],
        format!("volume {}", project.object("data"))
    );
    let saved = taken[0]["snapshot"].as_str().unwrap().to_string();
    let show = expect(dir, &["history", "show", "2"], 0);
    assert!(show.contains(&saved[..12]), "{show}");

    // Says what it overwrites and from which snapshot, and changes nothing when refused.
    let out = expect(dir, &["rollback", "1", "--with-data", "-y"], 0);
    assert!(
        out.contains(&format!(
            "volume {} ← snapshot {}",
            project.object("data"),
            &saved[..12]
        )),
        "{out}"
    );
    assert!(
        out.contains("Stopped until the rollback starts them again: web."),
        "{out}"
    );
    // The data as generation 1 left it, then generation 1's service appending again.
    assert_eq!(data_log(&name), "v1\nv1\n");
    let gens = generations(dir);
    assert_eq!(gens.len(), 3);
    assert_eq!(gens[2]["command"], "rollback 1 --with-data");
    assert_eq!(gens[2]["rollback_of"], 1);
    let safety = gens[2]["backups"][0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(safety, saved, "the data there was, backed up first");

    // `keep last=1` would leave one snapshot; the generations' two are both kept.
    expect(dir, &["backups", "prune"], 0);
    let list = expect(dir, &["--json", "backups", "list"], 0);
    let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(list.lines().last().unwrap())
        .unwrap()["copies"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&saved) && ids.contains(&safety), "{ids:?}");

    // And that rollback can be undone with its data in turn.
    expect(dir, &["rollback", "2", "--with-data", "-y"], 0);
    assert_eq!(data_log(&name), "v1\nv2\nv2\n");

    // Bad input: the current generation, and one whose successor took no backups.
    let out = expect(dir, &["rollback", "4", "--with-data", "-y"], 2);
    assert!(out.contains("generation 4 is the current one"), "{out}");
    write_manifest(dir, &project, &logger("v3"));
    expect(dir, &["apply", "-y"], 0);
    let before = data_log(&name);
    let out = expect(dir, &["rollback", "4", "--with-data", "-y"], 2);
    assert!(out.contains("generation 5 took no backups"), "{out}");
    assert_eq!(data_log(&name), before, "nothing changed");
    assert_eq!(generations(dir).len(), 5);

    // A working manifest that does not load (an edit under way) does not stand between the
    // user and the history: the last generation's manifest stands in for it.
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        "project \"half-edited\"\nservice {\n",
    )
    .unwrap();
    let out = expect(dir, &["history"], 0);
    assert!(out.contains("generation 5's manifest stands in"), "{out}");
    assert!(out.contains("rollback 2 --with-data"), "{out}");
    expect(dir, &["rollback", "-y"], 0);
    assert_eq!(generations(dir).len(), 6);
    assert!(
        data_log(&name).ends_with("v2\n"),
        "back on generation 4's service"
    );
    expect(dir, &["drift"], 0);
}
