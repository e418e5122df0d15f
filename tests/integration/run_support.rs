//! What the task-runner tests share: a project in its own temp dir with a manifest, and a
//! builder-free way to run the real `sanctuary` binary there and look at what it did.
//!
//! Every command runs with `NO_COLOR=1` and stdout piped, so output is the plain reporter's
//! one line per event (or JSON lines with `--json`), never progress bars.

// Each test uses a different part of the harness.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sanctuary");

/// A project directory holding `Sanctuary.kdl`; removed on drop.
pub struct Project {
    dir: TempDir,
}

/// What one invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout and stderr together, for assertions that do not care where a line went.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Stdout parsed as JSON lines; panics (failing the test) on a line that is not JSON.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{self:?}"))
            })
            .collect()
    }

    /// The finish event (`finished`, `cached`, `up_to_date`, `failed`, …) of `node`.
    pub fn finish_of(&self, node: &str) -> String {
        self.events()
            .iter()
            .filter(|e| e["node"] == node && e["event"] != "started" && e["event"] != "output")
            .map(|e| e["event"].as_str().unwrap_or_default().to_string())
            .next()
            .unwrap_or_else(|| panic!("no finish event for {node}: {self:?}"))
    }
}

impl Project {
    /// A fresh project whose manifest is `manifest`.
    pub fn new(manifest: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("sanct-run-")
            .tempdir()
            .unwrap();
        let p = Project { dir };
        p.write("Sanctuary.kdl", manifest);
        p
    }

    /// The project directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the project.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `rel` (creating its parent directories).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, text).unwrap();
    }

    /// The text of `rel`, or `""` when it does not exist.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// How many lines `rel` has (0 when it does not exist): the tests' run counters.
    pub fn lines(&self, rel: &str) -> usize {
        self.read(rel).lines().count()
    }

    /// A command for the binary in the project directory, with the test environment set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.root())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs the binary with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Like [`Project::run`], asserting success.
    pub fn run_ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "sanctuary {args:?} failed: {r:?}");
        r
    }

    /// Every file under the project's cache objects directory.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let root = self.path(".sanctuary/cache");
        walk(&root, &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
