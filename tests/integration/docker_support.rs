//! What the Docker tests share: connecting (or skipping loudly), a unique project per test
//! with a guard that removes everything labelled with it, and busybox images built from
//! scratch (there is no registry to pull from).
//!
//! Cleanup uses the `docker` CLI synchronously: it works in `Drop`, also while a test panics
//! and its async runtime is being torn down.

// Each test module uses a different part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sanctuary::backend::docker::DockerBackend;

/// The label that marks every object a test creates.
pub const PROJECT_LABEL: &str = "sanctuary.project";

/// Connects to the Docker daemon, or returns `None` after a loud `SKIPPED` line — unless
/// `SANCTUARY_REQUIRE_DOCKER=1`, where a missing daemon fails the test.
pub async fn docker_or_skip(test: &str) -> Option<DockerBackend> {
    match DockerBackend::connect().await {
        Ok(backend) => Some(backend),
        Err(err) => {
            if std::env::var("SANCTUARY_REQUIRE_DOCKER").as_deref() == Ok("1") {
                panic!("{test}: Docker is required (SANCTUARY_REQUIRE_DOCKER=1) but: {err}");
            }
            // Written to the real stderr: the test harness captures `eprintln!` and would
            // hide the skip of a passing test.
            let line = format!("SKIPPED (no Docker daemon): {test}: {err}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A unique project for one test; on drop removes its containers, networks, volumes and
/// images (all found by the project label).
#[derive(Debug)]
pub struct TestProject {
    pub name: String,
}

impl TestProject {
    /// `sanct-test-<name>-<pid>-<counter>`: unique across tests and concurrent test runs.
    pub fn new(test: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        TestProject {
            name: format!("sanct-test-{test}-{}-{n}", std::process::id()),
        }
    }

    /// An object name inside the project, e.g. `<project>-web`.
    pub fn object(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// The labels every object of the project carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(PROJECT_LABEL.to_string(), self.name.clone())])
    }

    pub fn filter(&self) -> String {
        format!("label={PROJECT_LABEL}={}", self.name)
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        let filter = self.filter();
        let sets: [(&[&str], &[&str]); 4] = [
            (&["ps", "-aq"], &["rm", "-f", "-v"]),
            (&["network", "ls", "-q"], &["network", "rm"]),
            (&["volume", "ls", "-q"], &["volume", "rm", "-f"]),
            // --no-prune: untagged parent layers may be another test's build cache, in use
            // by a build running concurrently.
            (&["images", "-q"], &["rmi", "-f", "--no-prune"]),
        ];
        for (list, remove) in sets {
            let ids = docker_lines(&[list, &["--filter", &filter]].concat());
            if !ids.is_empty() {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let _ = Command::new("docker")
                    .args([remove, &ids[..]].concat())
                    .output();
            }
        }
    }
}

/// Runs `docker args` and returns its non-empty output lines (none on any failure).
pub fn docker_lines(args: &[&str]) -> Vec<String> {
    match Command::new("docker").args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `docker inspect <name>` parsed, the first (only) object.
pub fn docker_inspect(name: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["inspect", name])
        .output()
        .expect("run docker inspect");
    assert!(
        out.status.success(),
        "docker inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
    all.remove(0)
}

/// The Dockerfile of the test images: scratch, the static busybox, and its applets as
/// symlinks so `sh`, `httpd`, `wget`, `nc` and `sleep` exist.
pub const BUSYBOX_DOCKERFILE: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Writes a busybox build context into `dir`: `Dockerfile` plus a copy of `/bin/busybox`.
pub fn write_busybox_context(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy("/bin/busybox", dir.join("busybox"))?;
    std::fs::write(dir.join("Dockerfile"), BUSYBOX_DOCKERFILE)
}

/// Builds the busybox image as `tag` once per test process (with the CLI, independent of
/// the code under test) and returns the tag.
pub fn busybox_image(tag: &str) -> String {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if !built.contains(tag) {
        let dir = tempfile::tempdir().expect("temp dir");
        write_busybox_context(dir.path()).expect("write busybox context");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", tag])
            .arg(dir.path())
            .output()
            .expect("run docker build");
        assert!(
            out.status.success(),
            "building {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        built.insert(tag.to_string());
    }
    tag.to_string()
}

/// The shared test image.
pub fn test_image() -> String {
    busybox_image("sanct-test-busybox:latest")
}

/// Copies the directory tree `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Waits until `cond` holds, polling every 100 ms, up to `within`.
pub fn wait_for(what: &str, within: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + within;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs `sanctuary args` in `dir` and kills it with SIGKILL after `delay`.
pub fn kill_after(dir: &Path, args: &[&str], delay: std::time::Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

/// The JSON lines a child writes to `stdout` (`--json` output), parsed on a thread as they
/// come; a line that is not JSON fails the test.
pub fn json_lines(
    stdout: std::process::ChildStdout,
) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}
