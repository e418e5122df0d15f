//! `plan`, `apply`, `destroy`, `status` and `logs` through the real binary against the real
//! engine. Each test has its own project (a `TestProject` guard of the same name removes
//! everything labelled with it, also on panic) and its own host ports, derived from the pid.
//! The voidcat stack is brought up once and shared by the sequential checks that can share it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::docker_support::{
    copy_dir, docker_inspect, docker_lines, docker_or_skip, write_busybox_context, TestProject,
    PROJECT_LABEL,
};

/// Connects (or skips loudly, or fails under `SANCTUARY_REQUIRE_DOCKER=1`).
pub(crate) fn docker_available(test: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(docker_or_skip(test)).is_some()
}

/// A block of 40 host ports for this test process; `slot` picks one inside it.
fn port(slot: u16) -> u16 {
    assert!(slot < 40);
    20000 + (std::process::id() % 1000) as u16 * 40 + slot
}

/// Runs `sanctuary args` in `dir`.
pub(crate) fn sanct(dir: &Path, args: &[&str]) -> Output {
    sanct_env(dir, args, &[])
}

pub(crate) fn sanct_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sanctuary"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and asserts the exit code, returning stdout + stderr.
pub(crate) fn expect(dir: &Path, args: &[&str], code: i32) -> String {
    let out = sanct(dir, args);
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "sanctuary {args:?} exited {:?}:\n{all}",
        out.status.code()
    );
    all
}

fn container_id(name: &str) -> String {
    docker_inspect(name)["Id"].as_str().unwrap().to_string()
}

fn container_state(name: &str) -> String {
    docker_inspect(name)["State"]["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn labelled(project: &TestProject, list: &[&str]) -> Vec<String> {
    let filter = format!("label={PROJECT_LABEL}={}", project.name);
    docker_lines(&[list, &["--filter", &filter]].concat())
}

/// Waits until Docker's own health status of `name` is `healthy`.
fn wait_docker_healthy(name: &str, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let status = docker_inspect(name)["State"]["Health"]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status == "healthy" {
            return;
        }
        assert!(Instant::now() < end, "{name} is {status}, not healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /health` on a host port, by hand: the clones answer JSON with `"status":"running"`.
fn http_health(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

const SERVICES: [(&str, u16); 5] = [
    ("omega", 3000),
    ("beta", 3001),
    ("gamma", 3002),
    ("delta", 3004),
    ("sigma", 3005),
];

/// Copies `examples/voidcat` into a temp dir as project `project`, with host ports moved to
/// this process's block, a read-only bind on omega, and a start line in every clone's log.
fn voidcat_copy(project: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/voidcat");
    copy_dir(&src, dir.path());
    let kdl = dir.path().join("Sanctuary.kdl");
    let mut text = std::fs::read_to_string(&kdl)
        .unwrap()
        .replace("project \"voidcat\"", &format!("project \"{project}\""))
        .replacen(
            "    mount \"audit\" \"/workspace/audit\"\n",
            "    mount \"audit\" \"/workspace/audit\"\n    bind \"./workspace/manifests\" \"/workspace/host-manifests\" read-only=true\n",
            1,
        );
    // Anchored at the line's end: a new port may begin with an old one (3004…).
    for (i, (_, p)) in SERVICES.iter().enumerate() {
        text = text.replace(
            &format!("host={p}\n"),
            &format!("host={}\n", port(i as u16)),
        );
    }
    std::fs::write(&kdl, text).unwrap();
    let clone = dir.path().join("docker/clone.sh");
    let script = std::fs::read_to_string(&clone).unwrap().replace(
        "httpd -f",
        "echo \"$CLONE_NAME up on $CLONE_PORT\"\necho \"$CLONE_NAME serving\"\nhttpd -f",
    );
    std::fs::write(&clone, script).unwrap();
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn voidcat_lifecycle() {
    if !docker_available("voidcat_lifecycle") {
        return;
    }
    let project = TestProject::new("voidcat");
    let tmp = voidcat_copy(&project.name);
    let dir = tmp.path();
    let kdl = dir.join("Sanctuary.kdl");
    let c = |svc: &str| project.object(svc);

    // Cold apply: all five healthy, ports answer, status shows five running.
    expect(dir, &["apply", "-y"], 0);
    for (i, (svc, _)) in SERVICES.iter().enumerate() {
        wait_docker_healthy(&c(svc), Duration::from_secs(20));
        let body = http_health(port(i as u16));
        assert!(body.contains("\"status\":\"running\""), "{svc}: {body}");
    }
    let status = expect(dir, &["--json", "status"], 0);
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 5);
    assert!(services.iter().all(|s| s["state"] == "running"), "{status}");

    // A second apply is a no-op.
    let again = expect(dir, &["apply", "-y"], 0);
    assert!(again.contains("No changes"), "{again}");

    // What Docker holds is what the manifest declares.
    let omega = docker_inspect(&c("omega"));
    let host = &omega["HostConfig"];
    assert_eq!(
        host["PortBindings"]["3000/tcp"][0]["HostPort"],
        port(0).to_string()
    );
    let env: Vec<&str> = omega["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "CLONE_NAME=omega",
        "CLONE_ROLE=coordinator",
        "CLONE_PORT=3000",
    ] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    let mounts = omega["Mounts"].as_array().unwrap();
    let mount = |dest: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}: {mounts:?}"))
    };
    let artifacts = mount("/workspace/artifacts");
    assert_eq!(artifacts["Type"], "volume");
    assert_eq!(artifacts["Name"], project.object("artifacts"));
    assert_eq!(artifacts["RW"], true);
    let bind = mount("/workspace/host-manifests");
    assert_eq!(bind["Type"], "bind");
    assert_eq!(bind["RW"], false);
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["PidsLimit"], 64);
    let health = &omega["Config"]["Healthcheck"];
    assert_eq!(
        health["Test"],
        serde_json::json!(["CMD", "wget", "-qO-", "http://127.0.0.1:3000/health"])
    );
    assert_eq!(health["Interval"], 1_000_000_000);
    assert_eq!(health["Retries"], 5);
    let labels = &omega["Config"]["Labels"];
    assert_eq!(labels["sanctuary.project"], project.name.as_str());
    assert_eq!(labels["sanctuary.node"], "service.omega");
    assert_eq!(labels["sanctuary.fingerprint"].as_str().unwrap().len(), 64);
    let delta = docker_inspect(&c("delta"));
    assert_eq!(delta["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(delta["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);

    // Logs: the last N lines, each prefixed with its service.
    let logs = expect(dir, &["logs", "omega", "--tail", "1"], 0);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines, vec!["omega | omega serving"], "{logs}");

    // One env value changed: exactly that service is replaced, with the reason.
    let ids: Vec<String> = SERVICES.iter().map(|(s, _)| container_id(&c(s))).collect();
    edit(&kdl, "CLONE_ROLE=\"tester\"", "CLONE_ROLE=\"qa\"");
    let plan = expect(dir, &["plan"], 0);
    let delta_line = plan.lines().find(|l| l.contains("service.delta")).unwrap();
    assert!(delta_line.contains("replace"), "{plan}");
    assert!(
        plan.contains("env CLONE_ROLE changed: \"tester\" → \"qa\""),
        "{plan}"
    );
    assert!(plan.contains("Plan: 1 to replace"), "{plan}");
    expect(dir, &["apply", "-y"], 0);
    for ((svc, _), old) in SERVICES.iter().zip(&ids) {
        let now = container_id(&c(svc));
        assert_eq!(*svc == "delta", now != *old, "{svc}: {old} -> {now}");
    }

    // A removed container is recreated; a stopped one is started.
    docker_lines(&["rm", "-f", &c("gamma")]);
    docker_lines(&["stop", "-t", "1", &c("beta")]);
    let plan = expect(dir, &["plan"], 0);
    let line = |node: &str| plan.lines().find(|l| l.contains(node)).unwrap().to_string();
    assert!(line("service.gamma").contains("create"), "{plan}");
    assert!(line("service.beta").contains("start"), "{plan}");
    let beta_id = container_id(&c("beta"));
    expect(dir, &["apply", "-y"], 0);
    assert_eq!(container_state(&c("gamma")), "running");
    assert_eq!(container_state(&c("beta")), "running");
    assert_eq!(container_id(&c("beta")), beta_id, "started, not replaced");

    // Saved plans: applied exactly, and refused once the manifest moved.
    expect(dir, &["plan", "--detailed-exitcode"], 0);
    docker_lines(&["stop", "-t", "1", &c("sigma")]);
    expect(dir, &["plan", "--detailed-exitcode"], 2);
    let planfile = dir.join("saved.plan");
    let planfile = planfile.to_str().unwrap();
    expect(dir, &["plan", "-o", planfile], 0);
    expect(dir, &["apply", planfile], 0);
    assert_eq!(container_state(&c("sigma")), "running");
    docker_lines(&["stop", "-t", "1", &c("sigma")]);
    expect(dir, &["plan", "-o", planfile], 0);
    edit(&kdl, "CLONE_ROLE=\"qa\"", "CLONE_ROLE=\"tester\"");
    let refused = expect(dir, &["apply", planfile], 4);
    assert!(refused.contains("stale"), "{refused}");
    assert_eq!(container_state(&c("sigma")), "exited", "nothing applied");

    // Destroy keeps volumes unless asked, then leaves nothing of the project behind.
    expect(dir, &["destroy"], 0);
    assert!(labelled(&project, &["ps", "-aq"]).is_empty());
    assert!(labelled(&project, &["network", "ls", "-q"]).is_empty());
    assert_eq!(labelled(&project, &["volume", "ls", "-q"]).len(), 3);
    expect(dir, &["destroy", "--volumes"], 0);
    assert!(labelled(&project, &["volume", "ls", "-q"]).is_empty());
    assert!(labelled(&project, &["ps", "-aq"]).is_empty());
}

/// A project dir with a busybox image `bb` and the given services.
fn small_project(project: &TestProject, services: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_context(&dir.path().join("ctx")).unwrap();
    let kdl = format!(
        "project \"{}\"\nimage \"bb\" {{\n    context \"ctx\"\n}}\n{services}",
        project.name
    );
    std::fs::write(dir.path().join("Sanctuary.kdl"), kdl).unwrap();
    dir
}

#[test]
fn unhealthy_service_fails_after_its_ready_timeout_and_is_retried() {
    if !docker_available("unhealthy_service") {
        return;
    }
    let project = TestProject::new("unhealthy");
    let tmp = small_project(
        &project,
        r#"
service "good" {
    image "bb"
    command "sh" "-c" "exec sleep 1000"
    health { cmd "test" "-x" "/bin/sh"; interval "1s"; }
}
service "bad" {
    image "bb"
    command "sh" "-c" "exec sleep 1000"
    ready-timeout "3s"
    health { cmd "sh" "-c" "echo not-ready-yet; exit 1"; interval "1s"; }
}
"#,
    );
    let dir = tmp.path();
    let started = Instant::now();
    let out = expect(dir, &["apply", "-y"], 3);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        out.contains("service `bad` did not become healthy within 3s"),
        "{out}"
    );
    assert!(out.contains("not-ready-yet"), "{out}");
    assert_eq!(container_state(&project.object("good")), "running");

    let plan = expect(dir, &["plan"], 0);
    let bad = plan.lines().find(|l| l.contains("service.bad")).unwrap();
    assert!(bad.contains("replace"), "{plan}");
    assert!(bad.contains("the last apply failed"), "{plan}");
    assert!(plan.contains("service.good  up to date"), "{plan}");

    let before = container_id(&project.object("bad"));
    let out = expect(dir, &["apply", "-y"], 3);
    assert!(out.contains("did not become healthy"), "{out}");
    assert_ne!(
        container_id(&project.object("bad")),
        before,
        "retried afresh"
    );
}

/// Starts `apply -y` in `dir` and returns once the container of `service` runs.
fn apply_until_started(
    dir: &Path,
    project: &TestProject,
    service: &str,
    stderr: Stdio,
) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["apply", "-y"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let name = format!("name={}", project.object(service));
    while docker_lines(&["ps", "-q", "--filter", &name]).is_empty() {
        assert!(Instant::now() < end, "apply never started `{service}`");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join(".sanctuary/lock")
}

#[test]
fn killed_apply_leaves_a_stale_lock_that_the_next_apply_takes_over() {
    if !docker_available("killed_apply") {
        return;
    }
    let project = TestProject::new("killed");
    let tmp = small_project(
        &project,
        r#"
service "slow" {
    image "bb"
    command "sh" "-c" "sleep 4; mkdir -p /tmp; touch /tmp/ready; exec sleep 1000"
    ready-timeout "30s"
    health { cmd "test" "-f" "/tmp/ready"; interval "1s"; }
}
"#,
    );
    let dir = tmp.path();
    // Wait until it holds the lock and waits for the slow service.
    let mut first = apply_until_started(dir, &project, "slow", Stdio::null());
    assert!(lock_path(dir).exists());

    // A second apply meanwhile is refused, naming the holder.
    let second = sanct(dir, &["apply", "-y"]);
    assert_eq!(second.status.code(), Some(4), "{}", text(&second));
    let msg = text(&second);
    assert!(
        msg.contains(&format!("pid {}", first.id())) && msg.contains("apply"),
        "{msg}"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    assert!(lock_path(dir).exists(), "kill -9 leaves the lock behind");

    let out = expect(dir, &["apply", "-y"], 0);
    assert!(!lock_path(dir).exists(), "released: {out}");
    let state = std::fs::read(dir.join(".sanctuary/state.json")).unwrap();
    let _: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(container_state(&project.object("slow")), "running");
    expect(dir, &["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_host_port_in_use_names_the_service_and_port() {
    if !docker_available("port_in_use") {
        return;
    }
    let project = TestProject::new("port");
    let p = port(10);
    let _taken = TcpListener::bind(("0.0.0.0", p)).unwrap();
    let tmp = small_project(
        &project,
        &format!(
            "service \"web\" {{\n    image \"bb\"\n    command \"httpd\" \"-f\" \"-p\" \"8080\"\n    port 8080 host={p}\n}}\n"
        ),
    );
    let out = expect(tmp.path(), &["apply", "-y"], 3);
    assert!(out.contains("service `web`"), "{out}");
    assert!(
        out.contains(&format!("host port 0.0.0.0:{p} is already in use")),
        "{out}"
    );
}

#[test]
fn an_unreachable_daemon_is_an_infrastructure_error_and_changes_nothing() {
    let project = TestProject::new("nodaemon");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Sanctuary.kdl"),
        format!(
            "project \"{}\"\nvolume \"data\"\nservice \"s\" {{\n    image \"busybox:latest\"\n}}\n",
            project.name
        ),
    )
    .unwrap();
    let out = sanct_env(
        dir.path(),
        &["apply", "-y"],
        &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.to_lowercase().contains("docker"), "{msg}");
    assert!(!dir.path().join(".sanctuary/state.json").exists());
    assert!(!lock_path(dir.path()).exists());
    assert!(labelled(&project, &["volume", "ls", "-q"]).is_empty());
}

#[test]
fn a_secret_file_is_delivered_read_only_and_never_stored_in_the_clear() {
    if !docker_available("secret_file") {
        return;
    }
    let project = TestProject::new("secretfile");
    let tmp = small_project(
        &project,
        r#"
secret "tok" {
    env "SANCT_TEST_TOKEN"
}
service "app" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    secret-file "tok" path="/run/secrets/tok"
}
// An environment variable is visible to `docker inspect` by nature: only this one has it.
service "echoer" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    secret-env "TOKEN" from="tok"
}
test "leaky" {
    exec "echoer" "sh" "-c" "printf 'tok=%s\n' \"$TOKEN\"; exit 1"
}
service "worker" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    user "1000:1000"
    secret-file "tok" path="/etc/tok" mode="0440"
}
"#,
    );
    let dir = tmp.path();
    let value = "s3cr3t-v1 with $pecial [chars]";
    let apply = |v: &str| sanct_env(dir, &["apply", "-y"], &[("SANCT_TEST_TOKEN", v)]);
    let out = apply(value);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let exec = |svc: &str, cmd: &[&str]| {
        let mut args = vec!["exec", "-u", "0"];
        let name = project.object(svc);
        args.push(&name);
        args.extend_from_slice(cmd);
        docker_lines(&args).join("\n")
    };
    assert_eq!(exec("app", &["cat", "/run/secrets/tok"]), value);
    assert_eq!(
        exec("app", &["stat", "-c", "%a", "/run/secrets/tok"]),
        "400"
    );
    // The file belongs to the service's numeric user, who can read it.
    let as_user = docker_lines(&["exec", &project.object("worker"), "cat", "/etc/tok"]);
    assert_eq!(as_user.join("\n"), value);
    assert_eq!(
        exec("worker", &["stat", "-c", "%a %u", "/etc/tok"]),
        "440 1000"
    );
    // Read-only in the container.
    let write = Command::new("docker")
        .args([
            "exec",
            &project.object("app"),
            "sh",
            "-c",
            "echo x > /run/secrets/tok",
        ])
        .output()
        .unwrap();
    assert!(!write.status.success());
    // Nowhere in what Docker or sanctuary keeps is the value in the clear.
    let inspected = docker_inspect(&project.object("app")).to_string();
    assert!(!inspected.contains("s3cr3t"), "{inspected}");
    let state = std::fs::read_to_string(dir.join(".sanctuary/state.json")).unwrap();
    assert!(!state.contains("s3cr3t"));
    for entry in walk(&dir.join(".sanctuary/cache")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cr3t"),
            "{}",
            entry.display()
        );
    }
    // A test that prints the value fails with it masked, in the report and in JUnit.
    let junit = dir.join("j.xml");
    let out = sanct_env(
        dir,
        &["test", "--junit", junit.to_str().unwrap()],
        &[("SANCT_TEST_TOKEN", value)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("tok=***") && !text(&out).contains("s3cr3t"),
        "{}",
        text(&out)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tok=***") && !xml.contains("s3cr3t"), "{xml}");
    let secrets = dir.join(".sanctuary/secrets");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(secrets.join("app"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // A changed secret replaces the container, which then reads the new value.
    let plan = text(&sanct_env(dir, &["plan"], &[("SANCT_TEST_TOKEN", "v2")]));
    assert!(
        plan.contains("service.app") && plan.contains("replace"),
        "{plan}"
    );
    assert!(
        plan.contains("secret file:/run/secrets/tok changed"),
        "{plan}"
    );
    assert!(!plan.contains("s3cr3t") && !plan.contains("v2\""), "{plan}");
    let out = apply("v2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(exec("app", &["cat", "/run/secrets/tok"]), "v2");
    assert_eq!(
        std::fs::read_dir(secrets.join("app")).unwrap().count(),
        1,
        "old value removed"
    );

    // The files go with the containers.
    let out = sanct_env(dir, &["destroy", "-y"], &[("SANCT_TEST_TOKEN", "v2")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!secrets.join("app").exists());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_task_in_an_image_runs_with_run_and_its_outputs_are_cached() {
    if !docker_available("image_task") {
        return;
    }
    let project = TestProject::new("imagetask");
    let tmp = small_project(
        &project,
        r#"
task "gen" {
    image "bb"
    run "mkdir -p out count && echo run >> count/gen && busybox uname -s > out/kernel.txt"
    outputs "out/kernel.txt"
}
"#,
    );
    let dir = tmp.path();
    let out = sanct(dir, &["run", "gen"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("out/kernel.txt")).unwrap(),
        "Linux\n"
    );
    let again = sanct(dir, &["run", "gen"]);
    assert!(text(&again).contains("gen (cached"), "{}", text(&again));
    std::fs::remove_file(dir.join("out/kernel.txt")).unwrap();
    let restored = sanct(dir, &["run", "gen"]);
    assert!(
        text(&restored).contains("restored out/kernel.txt"),
        "{}",
        text(&restored)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/kernel.txt")).unwrap(),
        "Linux\n"
    );
    let runs = std::fs::read_to_string(dir.join("count/gen")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the command ran once");
    // Its one-off container is gone.
    assert!(labelled(&project, &["ps", "-aq"]).is_empty());
}

#[test]
fn secret_files_reach_tasks_and_tests_in_an_image_and_leave_with_their_containers() {
    if !docker_available("image_secret_file") {
        return;
    }
    let project = TestProject::new("imagesecret");
    let value = "t0k-(v1)*[x]$";
    // The test compares digests: a value written into the manifest would be in the cache key.
    let digest = |v: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(v.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let expect = digest(value);
    let tmp = small_project(
        &project,
        &format!(
            r#"
secret "tok" {{
    env "SANCT_TEST_TOKEN"
}}
task "use" {{
    image "bb"
    secret-file "tok" path="/run/secrets/tok" mode="0440" owner="1000:1000"
    env EXPECT="{expect}"
    run "mkdir -p out count && echo run >> count/use"
    run "stat -c '%a %u' /run/secrets/tok > out/meta.txt"
    run "if [ \"$(sha256sum < /run/secrets/tok | cut -d' ' -f1)\" = \"$EXPECT\" ]; then echo match; else echo differ; fi > out/match.txt"
    outputs "out/meta.txt" "out/match.txt"
}}
test "reads" {{
    image "bb"
    secret-file "tok"
    env EXPECT="{expect}"
    run "test \"$(sha256sum < /run/secrets/tok | cut -d' ' -f1)\" = \"$EXPECT\""
}}
test "leaks" {{
    image "bb"
    secret-file "tok" path="/tok"
    run "echo \"leak=$(cat /tok)\"; exit 1"
}}
"#
        ),
    );
    let dir = tmp.path();
    let run = |v: &str, args: &[&str]| sanct_env(dir, args, &[("SANCT_TEST_TOKEN", v)]);
    let out = run(value, &["run", "use"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("out/meta.txt"), "440 1000\n");
    assert_eq!(read("out/match.txt"), "match\n");
    // Unchanged: cached. A changed value runs the task again, and it sees the new value.
    let again = run(value, &["run", "use"]);
    assert!(text(&again).contains("(cached"), "{}", text(&again));
    let changed = run("v2", &["run", "use"]);
    assert_eq!(changed.status.code(), Some(0), "{}", text(&changed));
    assert_eq!(read("out/match.txt"), "differ\n");
    assert_eq!(read("count/use").lines().count(), 2);

    let junit = dir.join("j.xml");
    let out = run(value, &["test", "--junit", junit.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("reads") && all.contains("leak=***"), "{all}");
    assert!(!all.contains("t0k-"), "{all}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("leak=***") && !xml.contains("t0k-"), "{xml}");
    let json = run(value, &["test", "--json", "leaks"]);
    assert!(!text(&json).contains("t0k-"), "{}", text(&json));
    let passed = run(value, &["test", "reads"]);
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));

    // The files went with the one-off containers; the value is in no cache entry.
    assert!(labelled(&project, &["ps", "-aq"]).is_empty());
    let secrets = dir.join(".sanctuary/secrets");
    let left: Vec<_> = std::fs::read_dir(&secrets)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    for entry in walk(&dir.join(".sanctuary")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("t0k-"),
            "{}",
            entry.display()
        );
    }
}

#[test]
fn a_killed_run_in_an_image_leaves_a_container_and_secrets_that_the_next_run_removes() {
    if !docker_available("killed_image_run") {
        return;
    }
    let project = TestProject::new("killedrun");
    let tmp = small_project(
        &project,
        r#"
secret "tok" {
    env "SANCT_TEST_TOKEN"
}
task "slow" {
    image "bb"
    secret-file "tok"
    run "sleep 600"
}
task "quick" {
    image "bb"
    run "true"
}
"#,
    );
    let dir = tmp.path();
    let secrets = dir.join(".sanctuary/secrets");
    let entries = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let filter = format!("label={PROJECT_LABEL}={}", project.name);
    // One-off containers only: an image build's intermediate containers may carry the label.
    let containers = || {
        docker_lines(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
            .into_iter()
            .filter(|n| n.contains("-run-"))
            .collect::<Vec<_>>()
    };
    let spawn_slow = || {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(["run", "slow"])
            .current_dir(dir)
            .env("SANCT_TEST_TOKEN", "killed-run-value")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Waits until `ok` holds of the project's containers.
    let wait_for = |what: &str, ok: &dyn Fn(&[String]) -> bool| {
        let end = Instant::now() + Duration::from_secs(60);
        while !ok(&containers()) {
            assert!(Instant::now() < end, "{what}: {:?}", containers());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let kill_slow = || {
        let mut child = spawn_slow();
        wait_for("the task's container never started", &|c| c.len() == 1);
        child.kill().unwrap();
        child.wait().unwrap();
        // What the killed process left: its container, still running, and its secret files.
        let left = containers();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(entries(&secrets).len(), 1, "{:?}", entries(&secrets));
        left[0].clone()
    };

    // The next run in an image removes both, whichever task it runs.
    kill_slow();
    let out = sanct(dir, &["run", "quick"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(containers().is_empty(), "{:?}", containers());
    assert!(entries(&secrets).is_empty(), "{:?}", entries(&secrets));

    // The next `run slow` sweeps too; interrupted by SIGTERM, it removes its own on the way out.
    let dead = kill_slow();
    let mut child = spawn_slow();
    wait_for("the dead run's container was not swept", &|c| {
        c.len() == 1 && c[0] != dead
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(containers().is_empty(), "{:?}", containers());
    assert!(entries(&secrets).is_empty(), "{:?}", entries(&secrets));
}

#[test]
fn sigterm_stops_an_apply_waiting_for_readiness_with_143_and_the_lock_released() {
    if !docker_available("sigterm_apply") {
        return;
    }
    let project = TestProject::new("sigterm-apply");
    let tmp = small_project(
        &project,
        r#"
service "never" {
    image "bb"
    command "sh" "-c" "exec sleep 1000"
    ready-timeout "120s"
    health { cmd "false"; interval "1s"; }
}
"#,
    );
    let dir = tmp.path();
    let mut child = apply_until_started(dir, &project, "never", Stdio::piped());
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    let line = format!("apply: SIGTERM to exit in {took:?}\n");
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    // Stopped at a safe point: the lock is released and the state file is whole, so the next
    // command starts at once and sees the interrupted service as needing work.
    assert!(!lock_path(dir).exists(), "lock left behind");
    let state = std::fs::read(dir.join(".sanctuary/state.json")).unwrap();
    let _: serde_json::Value = serde_json::from_slice(&state).unwrap();
    let plan = expect(dir, &["plan"], 0);
    assert!(
        plan.lines()
            .any(|l| l.contains("service.never") && !l.contains("up to date")),
        "{plan}"
    );
}

#[test]
fn every_apply_that_changes_something_records_a_generation_that_history_shows() {
    if !docker_available("history") {
        return;
    }
    let project = TestProject::new("history");
    let service = |greeting: &str| {
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
    };
    let tmp = small_project(&project, &service("hello"));
    let dir = tmp.path();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.email", "ada@example.com"]);
    git(&["config", "user.name", "Ada"]);
    std::fs::write(dir.join(".gitignore"), ".sanctuary/\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "A"]);
    let commit_a = git(&["rev-parse", "HEAD"]);

    expect(dir, &["apply", "-y"], 0);
    // Nothing to change: no generation.
    expect(dir, &["apply", "-y"], 0);
    let kdl = std::fs::read_to_string(dir.join("Sanctuary.kdl")).unwrap();
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        kdl.replace("GREETING=\"hello\"", "GREETING=\"bonjour\""),
    )
    .unwrap();
    let out = expect(dir, &["apply", "-y"], 0);
    assert!(out.contains("Recorded generation 2 (applied)"), "{out}");

    let listed = expect(dir, &["history"], 0);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].starts_with("GEN"), "{listed}");
    assert!(
        lines[1].starts_with('1') && lines[1].contains("ada@example.com"),
        "{listed}"
    );
    assert!(
        lines[1].contains(&commit_a[..10]) && !lines[1].contains("dirty"),
        "{listed}"
    );
    assert!(
        lines[2].contains("+dirty") && lines[2].contains("applied"),
        "{listed}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&expect(dir, &["--json", "history"], 0)).unwrap();
    let gens = json["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 2);
    assert_eq!(gens[1]["changed"], serde_json::json!(["service.web"]));
    let image = gens[1]["images"]["web"].as_str().unwrap().to_string();
    assert_eq!(image, docker_inspect(&project.object("web"))["Image"]);
    assert_eq!(gens[0]["git"]["commit"], commit_a.as_str());
    assert_eq!(gens[0]["git"]["reference"], "main");

    let shown = expect(dir, &["history", "show", "2"], 0);
    assert!(
        shown.contains("--- generation 1") && shown.contains("+++ generation 2"),
        "{shown}"
    );
    assert!(shown.contains("-    env GREETING=\"hello\""), "{shown}");
    assert!(shown.contains("+    env GREETING=\"bonjour\""), "{shown}");
    assert!(shown.contains("changed   service.web"), "{shown}");
    assert!(
        shown.contains(&format!("web                  {image}")),
        "{shown}"
    );

    let missing = sanct(dir, &["history", "show", "9"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("there is no generation 9 (the last is 2)"),
        "{}",
        text(&missing)
    );
}

#[test]
fn rollback_returns_to_the_image_ids_and_env_of_an_earlier_generation() {
    if !docker_available("rollback") {
        return;
    }
    let project = TestProject::new("rollback");
    let tmp = small_project(
        &project,
        r#"
service "web" {
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    env GREETING="hello"
}
"#,
    );
    let dir = tmp.path();
    let web = project.object("web");
    let env_of = |name: &str| -> Vec<String> {
        docker_inspect(name)["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    expect(dir, &["apply", "-y"], 0);
    let image_a = docker_inspect(&web)["Image"].as_str().unwrap().to_string();

    // B: another env and another image (its context changed).
    std::fs::write(dir.join("ctx/version.txt"), "b\n").unwrap();
    let kdl = std::fs::read_to_string(dir.join("Sanctuary.kdl")).unwrap();
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        kdl.replace("GREETING=\"hello\"", "GREETING=\"bonjour\""),
    )
    .unwrap();
    let dockerfile = std::fs::read_to_string(dir.join("ctx/Dockerfile")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        format!("{dockerfile}\nCOPY version.txt /version.txt\n"),
    )
    .unwrap();
    expect(dir, &["apply", "-y"], 0);
    let image_b = docker_inspect(&web)["Image"].as_str().unwrap().to_string();
    assert_ne!(image_a, image_b);
    assert!(env_of(&web).contains(&"GREETING=bonjour".to_string()));

    let out = expect(dir, &["rollback", "-y"], 0);
    assert!(out.contains("Rolling back to generation 1"), "{out}");
    assert!(out.contains("Recorded generation 3 (applied)"), "{out}");
    assert_eq!(docker_inspect(&web)["Image"], image_a.as_str());
    assert!(env_of(&web).contains(&"GREETING=hello".to_string()));

    let json: serde_json::Value =
        serde_json::from_str(&expect(dir, &["--json", "history"], 0)).unwrap();
    let gens = json["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 3);
    assert_eq!(gens[2]["command"], "rollback 1");
    assert_eq!(gens[2]["images"]["web"], image_a.as_str());
    let shown: serde_json::Value =
        serde_json::from_str(&expect(dir, &["--json", "history", "show", "3"], 0)).unwrap();
    assert_eq!(shown["rollback_of"], 1);

    // Rolling back again goes to the last clean generation before the current one: B.
    expect(dir, &["rollback", "-y"], 0);
    assert_eq!(docker_inspect(&web)["Image"], image_b.as_str());

    // Each generation names its images; with `keep-generations 2`, the oldest lose theirs.
    let tags = || {
        let mut t = docker_lines(&[
            "images",
            "--format",
            "{{.Tag}}",
            &format!("{}-generations", project.name),
        ]);
        t.sort();
        t
    };
    assert_eq!(tags(), ["g1-web", "g2-web", "g3-web", "g4-web"]);
    let kdl = std::fs::read_to_string(dir.join("Sanctuary.kdl")).unwrap();
    let head = format!("project \"{}\"\n", project.name);
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        kdl.replacen(
            &head,
            &format!(
                "project \"{}\" {{\n    keep-generations 2\n}}\n",
                project.name
            ),
            1,
        )
        .replace("GREETING=\"bonjour\"", "GREETING=\"salut\""),
    )
    .unwrap();
    let out = expect(dir, &["apply", "-y"], 0);
    assert!(out.contains("Recorded generation 5"), "{out}");
    assert_eq!(tags(), ["g4-web", "g5-web"]);

    let missing = sanct(dir, &["rollback", "9", "-y"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("there is no generation 9"));

    // An image that is gone is named, and nothing changes.
    let before = container_id(&web);
    let gone = Command::new("docker")
        .args(["rmi", "-f", &image_a])
        .output()
        .unwrap();
    assert!(gone.status.success(), "{}", text(&gone));
    let refused = sanct(dir, &["rollback", "1", "-y"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("the images of web") && text(&refused).contains("are gone"),
        "{}",
        text(&refused)
    );
    assert_eq!(container_id(&web), before);
}
