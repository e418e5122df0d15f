//! `stop`, `start`, `restart`, `exec`, `ps` and `logs --since` against real containers: they
//! act on what apply made, in dependency order, remember a stop made on purpose, and `exec`
//! passes the command's exit code through.

use std::path::Path;
use std::time::Duration;

use crate::apply_docker::{docker_available, expect, sanct, text};
use crate::docker_support::{docker_inspect, write_busybox_context, TestProject};

fn running(name: &str) -> bool {
    docker_inspect(name)["State"]["Running"] == serde_json::json!(true)
}

fn started_at(name: &str) -> String {
    docker_inspect(name)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

fn stopped_on_purpose(dir: &Path) -> Vec<String> {
    std::fs::read(dir.join(".sanctuary/stopped.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[test]
fn stop_start_restart_exec_and_logs_since_act_on_the_applied_containers() {
    if !docker_available("lifecycle") {
        return;
    }
    let project = TestProject::new("lifecycle");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let kdl = format!(
        r#"project "{}"
image "bb" {{
    context "ctx"
}}
service "db" {{
    image "bb"
    command "sh" "-c" "echo db up; exec sleep 1000"
    stop-timeout "1s"
    health {{
        cmd "true"
        interval "1s"
    }}
}}
service "web" {{
    image "bb"
    command "sh" "-c" "echo web up; exec sleep 1000"
    stop-timeout "1s"
    env GREETING="hi"
    depends-on "db" condition="healthy"
}}
"#,
        project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
    expect(dir, &["apply", "-y"], 0);
    let (db, web) = (project.object("db"), project.object("web"));

    // Dependents stop first; the stop is remembered.
    let out = expect(dir, &["stop"], 0);
    let (w, d) = (
        out.find("web: stopped").unwrap(),
        out.find("db: stopped").unwrap(),
    );
    assert!(w < d, "web before db: {out}");
    assert!(!running(&db) && !running(&web));
    assert_eq!(stopped_on_purpose(dir), ["db", "web"]);
    let ps = expect(dir, &["ps"], 0);
    assert!(ps.contains("stopped on purpose"), "{ps}");
    // Nothing was removed: a plan starts them again, it does not recreate them.
    let plan = expect(dir, &["plan"], 0);
    assert!(
        plan.contains("exists, stopped") && !plan.contains("create"),
        "{plan}"
    );

    let out = expect(dir, &["start", "web"], 0);
    assert!(out.contains("web: started"), "{out}");
    assert!(running(&web) && !running(&db), "only the one named");
    assert_eq!(stopped_on_purpose(dir), ["db"]);
    let out = expect(dir, &["start"], 0);
    let (d, w) = (
        out.find("db: started").unwrap(),
        out.find("web: already running").unwrap(),
    );
    assert!(d < w, "db before web: {out}");
    assert!(stopped_on_purpose(dir).is_empty());

    let before = started_at(&db);
    expect(dir, &["restart", "db"], 0);
    assert!(running(&db));
    assert_ne!(started_at(&db), before, "restarted");

    // top: the processes of each running container.
    let top = expect(dir, &["top"], 0);
    assert!(top.contains("db\n") && top.contains("sleep 1000"), "{top}");
    assert!(top.contains("PID"), "{top}");

    // exec: output and exit code through.
    let out = expect(
        dir,
        &["exec", "web", "--", "sh", "-c", "echo $GREETING; exit 7"],
        7,
    );
    assert!(out.contains("hi"), "{out}");
    expect(dir, &["exec", "web", "true"], 0);
    let out = expect(dir, &["exec", "wbe", "true"], 2);
    assert!(out.contains("did you mean `web`?"), "{out}");
    expect(dir, &["stop", "web"], 0);
    let out = expect(dir, &["exec", "web", "true"], 2);
    assert!(out.contains("is not running"), "{out}");
    // An apply brings it back and clears the mark.
    expect(dir, &["apply", "-y"], 0);
    assert!(running(&web));
    assert!(stopped_on_purpose(dir).is_empty());

    // logs --since: a duration ago or a timestamp.
    std::thread::sleep(Duration::from_secs(3));
    let out = sanct(dir, &["logs", "web", "--since", "1s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("web up"),
        "{}",
        text(&out)
    );
    let out = expect(dir, &["logs", "web", "--since", "1h"], 0);
    assert!(out.contains("web up"), "{out}");
    let out = expect(dir, &["logs", "--since", "2000-01-01T00:00:00Z"], 0);
    assert!(out.contains("db up") && out.contains("web up"), "{out}");
    let out = expect(dir, &["logs", "--since", "yesterday-ish"], 2);
    assert!(out.contains("neither a duration"), "{out}");
}

#[test]
fn profiles_keep_a_service_out_of_the_stack_until_switched_on_or_named() {
    if !docker_available("profiles") {
        return;
    }
    let project = TestProject::new("profiles");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let kdl = format!(
        r#"project "{}"
image "bb" {{
    context "ctx"
}}
service "web" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
}}
service "debug" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    profile "debug" "tools"
}}
service "admin" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    profile "admin"
}}
"#,
        project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
    let (web, debug, admin) = (
        project.object("web"),
        project.object("debug"),
        project.object("admin"),
    );
    let exists = |name: &str| {
        std::process::Command::new("docker")
            .args(["inspect", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    let plan = expect(dir, &["plan"], 0);
    assert!(
        plan.contains("service.web") && !plan.contains("service.debug"),
        "{plan}"
    );
    expect(dir, &["apply", "-y"], 0);
    assert!(running(&web) && !exists(&debug));
    let status = expect(dir, &["status"], 0);
    assert!(status.contains("absent (profile off)"), "{status}");

    // Either of its profiles switches it on; SANCTUARY_PROFILES does too.
    expect(dir, &["--profile", "tools", "apply", "-y"], 0);
    assert!(running(&debug) && !exists(&admin));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["apply", "-y"])
        .env("SANCTUARY_PROFILES", "admin, other")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(running(&admin));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("profile `other` is active but no service has it"),
        "{}",
        text(&out)
    );
    // Without the profile an apply leaves it as it is: declared, so not an orphan.
    expect(dir, &["apply", "-y"], 0);
    assert!(running(&debug) && running(&admin));
    expect(dir, &["destroy", "-y"], 0);

    // Named, it comes up without its profile.
    expect(dir, &["apply", "-y", "debug"], 0);
    assert!(running(&debug) && !exists(&web));
    let out = expect(dir, &["--profile", "debgu", "plan"], 0);
    assert!(out.contains("did you mean `debug`?"), "{out}");
}

/// Reads JSON lines from a running `events --json` until `done` holds for what was read, or
/// `wait` passes; what was read.
fn read_events(
    lines: &std::sync::mpsc::Receiver<serde_json::Value>,
    wait: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + wait;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(v) => seen.push(v),
            Err(_) => break,
        }
    }
    seen
}

fn has(seen: &[serde_json::Value], action: &str) -> bool {
    seen.iter().any(|e| e["action"] == action)
}

#[test]
fn events_stream_the_projects_container_events_live_and_replay_a_window() {
    if !docker_available("events") {
        return;
    }
    let project = TestProject::new("events");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let kdl = format!(
        r#"project "{}"
image "bb" {{
    context "ctx"
}}
service "web" {{
    image "bb"
    command "sh" "-c" "touch /ok; exec sleep 1000"
    stop-timeout "1s"
    health {{
        cmd "test" "-f" "/ok"
        interval "1s"
        retries 1
    }}
}}
service "db" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
}}
"#,
        project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
    expect(dir, &["apply", "-y"], 0);
    let web = project.object("web");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["--json", "events", "web"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = crate::docker_support::json_lines(child.stdout.take().unwrap());
    // The watch is subscribed once it has started; give it a moment, then make events: the
    // health check fails, and both services restart (db is not asked for).
    std::thread::sleep(Duration::from_millis(700));
    let out = sanct(dir, &["exec", "-T", "web", "rm", "/ok"]);
    assert!(out.status.success(), "{}", text(&out));
    let seen = read_events(&lines, Duration::from_secs(30), |s| {
        has(s, "health_status: unhealthy")
    });
    assert!(has(&seen, "health_status: unhealthy"), "{seen:#?}");
    expect(dir, &["restart"], 0);
    let more = read_events(&lines, Duration::from_secs(30), |s| {
        has(s, "die") && has(s, "start")
    });
    assert!(has(&more, "die") && has(&more, "start"), "{more:#?}");
    for e in seen.iter().chain(&more) {
        assert_eq!(e["event"], "engine", "{e}");
        assert_eq!(
            e["object"],
            serde_json::json!(web),
            "only web's events: {e}"
        );
        assert_eq!(e["node"], "service.web", "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    // Ctrl-C is how a watch ends: exit 0.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // A window in the past replays what the engine kept (its last few hundred events, so
    // only the latest are asked for under a busy engine), then exits; both services now.
    let out = expect(dir, &["events", "--since", "5m", "--until", "0s"], 0);
    for name in [&web, &project.object("db")] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("container {name}  start"))),
            "{name} started:\n{out}"
        );
    }
    // A service the manifest does not declare.
    let out = expect(dir, &["events", "wbe"], 2);
    assert!(out.contains("web"), "{out}");
}
