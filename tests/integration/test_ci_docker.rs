//! `sanctuary test` and `sanctuary ci` against a real Docker engine: every test form passing
//! and failing, caching and re-running after a needed service changes, `--tag`, JUnit read
//! back by `junitparser`, `ci` exit codes, and that `ci` leaves nothing labelled behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker_support::{
    copy_dir, docker_lines, docker_or_skip, write_busybox_context, TestProject,
};

/// One project directory that several commands run in, one after the other.
struct Dir {
    dir: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "`{needle}` not printed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Dir {
    fn new() -> Self {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("sanctuary-ci-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run sanctuary");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A host port nothing listens on right now, from this process's block of 40 below the
/// kernel's ephemeral range (10000 + 40 × (pid mod 500)): an ephemeral port could be handed to
/// another test's listener or connection while a stack holds it, and the other Docker tests
/// take their ports from blocks that never meet this one.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 10000 + (std::process::id() % 500) as u16 * 40;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(n < 40, "this process's 40 test ports are used up");
        let port = base + n;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// Everything labelled with `project`: containers, networks, volumes, images.
fn leftovers(project: &str) -> Vec<String> {
    let filter = format!("label=sanctuary.project={project}");
    let mut all = Vec::new();
    for list in [
        &["ps", "-aq"][..],
        &["network", "ls", "-q"],
        &["volume", "ls", "-q"],
        &["images", "-q"],
    ] {
        for id in docker_lines(&[list, &["--filter", &filter]].concat()) {
            all.push(format!("{} {id}", list[0]));
        }
    }
    all
}

/// `(tests, failures, skipped)` of a JUnit file, as the `junitparser` package reads it.
fn junit_counts(path: &Path) -> (usize, usize, usize) {
    let script = r#"
import sys, junitparser
x = junitparser.JUnitXml.fromfile(sys.argv[1])
t = f = s = 0
for suite in x:
    for case in suite:
        t += 1
        for r in case.result:
            if isinstance(r, junitparser.Failure): f += 1
            if isinstance(r, junitparser.Skipped): s += 1
print(t, f, s)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "junitparser could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<usize> = text
        .split_whitespace()
        .map(|w| w.parse().expect("a count"))
        .collect();
    (n[0], n[1], n[2])
}

fn junitparser_available() -> bool {
    Command::new("python3")
        .args(["-c", "import junitparser"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A busybox image context with a tiny web root.
fn write_web_context(d: &Dir) {
    write_busybox_context(&d.path().join("box")).expect("context");
    d.write(
        "box/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY www /www\n",
    );
    d.write("box/www/index.html", "hello from web\n");
    d.write(
        "box/www/status.json",
        "{\"status\":{\"state\":\"running\"},\"n\":[1,2]}\n",
    );
}

fn forms_manifest(project: &str, port: u16, closed: u16, env: &str) -> String {
    format!(
        r#"project "{project}"

image "box" {{
    context "box"
}}

service "web" {{
    image "box"
    command "httpd" "-f" "-p" "8080" "-h" "/www"
    env GREETING="{env}"
    port 8080 host={port}
    health {{
        cmd "wget" "-qO-" "http://127.0.0.1:8080/"
        interval "1s"; timeout "1s"; retries 10
    }}
}}

test "host-pass" {{
    tags "good"
    run "test -f Sanctuary.kdl"
    run "echo host ok"
}}
test "image-pass" {{
    tags "good"
    image "box"
    run "test -f Sanctuary.kdl"
}}
test "exec-pass" {{
    tags "good"
    exec "web" "wget" "-qO-" "http://127.0.0.1:8080/"
}}
test "http-pass" {{
    tags "good"
    needs "web"
    http "http://127.0.0.1:{port}/status.json" json-path="status.state" equals="running" retries=10 delay="200ms"
}}
test "tcp-pass" {{
    tags "good"
    needs "web"
    tcp "127.0.0.1:{port}" retries=10 delay="200ms"
}}

test "host-fail" {{
    tags "bad"
    run "echo host-broke"
    run "exit 3"
}}
test "image-fail" {{
    tags "bad"
    image "box"
    run "echo image-broke"
    run "false"
}}
test "exec-fail" {{
    tags "bad"
    exec "web" "sh" "-c" "echo exec-broke; exit 1"
}}
test "http-fail" {{
    tags "bad"
    needs "web"
    http "http://127.0.0.1:{port}/" contains="goodbye"
}}
test "tcp-fail" {{
    tags "bad"
    tcp "127.0.0.1:{closed}" retries=1 delay="100ms"
}}
test "slow" {{
    tags "slow"
    run "sleep 5"
    timeout "1s"
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn test_forms_caching_tags_and_junit() {
    if docker_or_skip("test_forms_caching_tags_and_junit")
        .await
        .is_none()
    {
        return;
    }
    let project = TestProject::new("testforms");
    let d = Dir::new();
    write_web_context(&d);
    let (port, closed) = (free_port(), free_port());
    d.write(
        "Sanctuary.kdl",
        &forms_manifest(&project.name, port, closed, "one"),
    );

    let good = d.path().join("good.xml");
    d.run(&[
        "test",
        "--tag",
        "good",
        "--junit",
        good.to_str().expect("utf-8"),
    ])
    .code(0)
    .has("5 passed, 0 failed, 0 skipped, 0 cached");
    d.run(&["test", "--tag", "good"])
        .code(0)
        .has("0 passed, 0 failed, 0 skipped, 5 cached");

    let bad = d.path().join("bad.xml");
    d.run(&[
        "test",
        "--tag",
        "bad",
        "--junit",
        bad.to_str().expect("utf-8"),
    ])
    .code(1)
    .has("host-broke")
    .has("image-broke")
    .has("exec-broke")
    .has("the body does not contain `goodbye`")
    .has("cannot connect to 127.0.0.1")
    .has("0 passed, 5 failed, 0 skipped, 0 cached");
    // A failure is never cached: the same failing test runs again.
    d.run(&["test", "host-fail"])
        .code(1)
        .has("0 passed, 1 failed, 0 skipped, 0 cached");
    d.run(&["test", "slow"]).code(1).has("timed out after 1s");

    // Changing a needed service re-runs the tests that need it, and only those.
    d.write(
        "Sanctuary.kdl",
        &forms_manifest(&project.name, port, closed, "two"),
    );
    d.run(&["test", "host-pass", "exec-pass", "http-pass"])
        .code(0)
        .has("2 passed, 0 failed, 0 skipped, 1 cached");
    d.run(&["test", "--no-cache", "host-pass"])
        .code(0)
        .has("1 passed, 0 failed, 0 skipped, 0 cached");

    // Tests of a live service run again once its container is new or restarted; tests of
    // nothing live stay cached.
    d.run(&["test", "--tag", "good"])
        .code(0)
        .has("1 passed, 0 failed, 0 skipped, 4 cached");
    d.run(&["destroy", "-y"]).code(0);
    d.run(&["test", "--tag", "good"])
        .code(0)
        .has("3 passed, 0 failed, 0 skipped, 2 cached");
    docker_lines(&["restart", "-t", "1", &project.object("web")]);
    d.run(&["test", "--tag", "good"])
        .code(0)
        .has("3 passed, 0 failed, 0 skipped, 2 cached");
    d.run(&["test", "--tag", "good"])
        .code(0)
        .has("0 passed, 0 failed, 0 skipped, 5 cached");

    d.run(&["test", "hots-pass"]).code(2).has("host-pass");
    d.run(&["test", "--tag", "nope"])
        .code(2)
        .has("no test has the tag nope");
    let json = d.run(&["--json", "test", "host-fail"]);
    json.code(1);
    let events: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "failed"
            && e["node"] == "test.host-fail"
            && e["message"] == "exit status 3"
            && e["duration_ms"].is_u64()),
        "{}",
        json.stdout
    );
    assert!(
        events.iter().any(|e| e["event"] == "tests"
            && e["failed"] == 1
            && e["failures"][0]["output"]
                .as_str()
                .is_some_and(|o| o.contains("host-broke"))),
        "{}",
        json.stdout
    );

    if junitparser_available() {
        assert_eq!(junit_counts(&good), (5, 0, 0));
        assert_eq!(junit_counts(&bad), (5, 5, 0));
    } else if std::env::var("SANCTUARY_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("python3 with junitparser is required to check the JUnit reports");
    } else {
        let text = std::fs::read_to_string(&bad).expect("junit written");
        assert!(text.contains("failures=\"5\""), "{text}");
    }
    d.run(&["destroy", "--volumes"]).code(0);
}

fn small_manifest(project: &str, port: u16, health: &str, test: &str) -> String {
    format!(
        r#"project "{project}"

image "box" {{
    context "box"
}}

volume "data"

service "web" {{
    image "box"
    command "httpd" "-f" "-p" "8080" "-h" "/www"
    port 8080 host={port}
    mount "data" "/data"
    ready-timeout "4s"
    health {{
        cmd {health}
        interval "1s"; timeout "1s"; retries 2
    }}
}}

test "answers" {{
    needs "web"
    {test}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_exit_codes_and_cleanup() {
    if docker_or_skip("ci_exit_codes_and_cleanup").await.is_none() {
        return;
    }
    let project = TestProject::new("ciexit");
    let d = Dir::new();
    write_web_context(&d);
    let port = free_port();
    let healthy = r#""wget" "-qO-" "http://127.0.0.1:8080/""#;

    d.write(
        "Sanctuary.kdl",
        "project \"x\"\nservice \"web\" {\n    image \"nope\"\n}\n",
    );
    d.run(&["ci"]).code(2);

    let junit = d.path().join("ci.xml");
    d.write(
        "Sanctuary.kdl",
        &small_manifest(
            &project.name,
            port,
            healthy,
            r#"http "http://127.0.0.1:PORT/" contains="nothing-like-this""#,
        )
        .replace("PORT", &port.to_string()),
    );
    d.run(&["ci", "--junit", junit.to_str().expect("utf-8")])
        .code(1)
        .has("0 passed, 1 failed, 0 skipped, 0 cached");
    assert!(junit.exists());
    assert_eq!(leftovers(&project.name), Vec::<String>::new());

    d.write(
        "Sanctuary.kdl",
        &small_manifest(&project.name, port, r#""false""#, r#"run "true""#),
    );
    d.run(&["ci"]).code(3);
    assert_eq!(leftovers(&project.name), Vec::<String>::new());

    d.write(
        "Sanctuary.kdl",
        &small_manifest(&project.name, port, healthy, r#"run "true""#),
    );
    d.run(&["ci", "--keep"])
        .code(0)
        .has("1 passed, 0 failed, 0 skipped, 0 cached");
    assert!(
        !leftovers(&project.name).is_empty(),
        "--keep keeps the stack"
    );
    d.run(&["destroy", "--volumes"]).code(0);
}

/// Copies `examples/voidcat` with its own project name and free host ports.
fn voidcat_copy(d: &Dir, project: &str) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/voidcat");
    copy_dir(&src, d.path());
    let path = d.path().join("Sanctuary.kdl");
    let mut text = std::fs::read_to_string(&path).expect("voidcat manifest");
    text = text.replace("project \"voidcat\"", &format!("project \"{project}\""));
    for p in 3000..=3005 {
        text = text.replace(&p.to_string(), &free_port().to_string());
    }
    std::fs::write(&path, text).expect("write manifest");
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_on_voidcat_passes_and_leaves_nothing() {
    if docker_or_skip("ci_on_voidcat_passes_and_leaves_nothing")
        .await
        .is_none()
    {
        return;
    }
    let project = TestProject::new("civoidcat");
    let d = Dir::new();
    voidcat_copy(&d, &project.name);
    d.run(&["ci"])
        .code(0)
        .has("8 passed, 0 failed, 0 skipped, 0 cached");
    assert_eq!(leftovers(&project.name), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_interrupted_still_tears_down() {
    if docker_or_skip("ci_interrupted_still_tears_down")
        .await
        .is_none()
    {
        return;
    }
    let project = TestProject::new("ciint");
    let d = Dir::new();
    write_web_context(&d);
    let healthy = r#""wget" "-qO-" "http://127.0.0.1:8080/""#;
    d.write(
        "Sanctuary.kdl",
        &small_manifest(
            &project.name,
            free_port(),
            healthy,
            "run \"touch started\"\n    run \"sleep 60\"",
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .arg("ci")
        .current_dir(d.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ci");
    let marker = d.path().join("started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the test never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let status = child.wait().expect("wait for ci");
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers(&project.name), Vec::<String>::new());
}

/// Every file under `dir` whose name marks it as a temporary.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".sanctuary-tmp-") || name.starts_with(".tmp") {
                out.push(p.clone());
            }
            if p.is_dir() {
                out.extend(temporaries(&p));
            }
        }
    }
    out
}

/// SIGKILL at ten points of `ci` (image build, start, health wait, a test in an image with a
/// secret file, teardown): whatever each kill leaves, the next complete `ci` ends with nothing
/// of the project on the engine and no temporary, lock or secret file in the state directory.
#[tokio::test(flavor = "multi_thread")]
async fn ci_killed_at_any_point_leaves_nothing_after_the_next_ci() {
    if docker_or_skip("ci_killed_at_any_point").await.is_none() {
        return;
    }
    let project = TestProject::new("cikill");
    let d = Dir::new();
    write_web_context(&d);
    let healthy = r#""wget" "-qO-" "http://127.0.0.1:8080/""#;
    let manifest = small_manifest(
        &project.name,
        free_port(),
        healthy,
        "run \"test -s /run/secrets/tok && sleep 1\"\n    image \"box\"\n    secret-file \"tok\"",
    ) + "secret \"tok\" {\n    env \"SANCT_CI_TOKEN\"\n}\n";
    d.write("Sanctuary.kdl", &manifest);
    let ci = || {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .arg("ci")
            .current_dir(d.path())
            .env("NO_COLOR", "1")
            .env("SANCT_CI_TOKEN", "ci-kill-token")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ci")
    };
    let state = d.path().join(".sanctuary");
    let clean = |after: &str| {
        assert_eq!(leftovers(&project.name), Vec::<String>::new(), "{after}");
        assert_eq!(temporaries(&state), Vec::<PathBuf>::new(), "{after}");
        assert!(!state.join("lock").exists(), "{after}: lock left");
        let secrets: Vec<_> = std::fs::read_dir(state.join("secrets"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(secrets.is_empty(), "{after}: {secrets:?}");
    };

    let started = std::time::Instant::now();
    let status = ci().wait().expect("wait for ci");
    let whole = started.elapsed();
    assert_eq!(status.code(), Some(0), "a complete ci passes");
    clean("a complete ci");

    // Kill points spread over the length of a whole run, in an order that varies by run.
    let mut seed = u64::from(std::process::id()) | 1;
    let mut killed_with_debris = 0;
    for _ in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = whole.mul_f64((seed % 1000) as f64 / 1000.0);
        let mut child = ci();
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().expect("wait for ci");
        if !leftovers(&project.name).is_empty() || !temporaries(&state).is_empty() {
            killed_with_debris += 1;
        }
    }
    let line = format!(
        "ci kill schedule: {killed_with_debris} of 10 kills left something (whole run {whole:?})\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    let status = ci().wait().expect("wait for ci");
    assert_eq!(status.code(), Some(0), "ci after the kills passes");
    clean("the ci after ten kills");
}
