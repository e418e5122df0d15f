//! A small builder for running the real `sanctuary` binary against a manifest written into a
//! fresh temporary directory, with helpers to read what a user would see.
//!
//! Every run sets `NO_COLOR=1` so rendered diagnostics are plain text, and runs with the
//! temporary directory as its working directory so the manifest is shown as `Sanctuary.kdl`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The placeholder that replaces the temporary directory in normalised output.
pub const TEMP: &str = "[TEMP]";

/// Where the crate's own files are (examples, the top-level manifest).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test case: files to write, then a command to run.
pub struct Test {
    dir: TempDir,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    env_remove: Vec<String>,
    cwd: Option<PathBuf>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// An empty temporary directory and no arguments.
    pub fn new() -> Self {
        Test {
            dir: tempfile::Builder::new()
                .prefix("sanctuary-test-")
                .tempdir()
                .expect("create a temporary directory"),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_remove: Vec::new(),
            cwd: None,
        }
    }

    /// A directory holding `Sanctuary.kdl` with `text`.
    pub fn manifest(text: &str) -> Self {
        Self::new().file("Sanctuary.kdl", text)
    }

    /// Writes `text` to `rel` inside the temporary directory, creating parent directories.
    pub fn file(self, rel: &str, text: &str) -> Self {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, text).expect("write test file");
        self
    }

    /// Creates an empty directory `rel` inside the temporary directory.
    pub fn dir(self, rel: &str) -> Self {
        std::fs::create_dir_all(self.dir.path().join(rel)).expect("create directory");
        self
    }

    /// Appends arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Removes an inherited environment variable for the run.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_remove.push(key.to_string());
        self
    }

    /// Runs in `rel` (inside the temporary directory) instead of its root.
    pub fn current_dir(mut self, rel: &str) -> Self {
        self.cwd = Some(self.dir.path().join(rel));
        self
    }

    /// Runs in an absolute directory (e.g. an example in the repository).
    pub fn current_dir_abs(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary and captures what it printed. The temporary directory lives as long
    /// as the returned [`Output`].
    pub fn run(self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sanctuary"));
        cmd.args(&self.args)
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env("NO_COLOR", "1")
            // A wide, fixed terminal so wrapping never depends on where the tests run.
            .env("COLUMNS", "100");
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the sanctuary binary");
        // The directory may be reached through a symlink (macOS /var → /private/var).
        let real = self
            .dir
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.dir.path().to_path_buf());
        let normalise = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .replace(&real.display().to_string(), TEMP)
                .replace(&self.dir.path().display().to_string(), TEMP)
        };
        Output {
            code: out.status.code(),
            stdout: normalise(&out.stdout),
            stderr: normalise(&out.stderr),
            _dir: self.dir,
        }
    }
}

/// What one run printed, with the temporary directory replaced by [`TEMP`].
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    _dir: TempDir,
}

impl Output {
    /// Asserts the exit code, showing both streams when it differs.
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the process did not panic.
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "sanctuary panicked:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts a stream contains `needle`.
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts stdout contains `needle`.
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    /// Every label in the rendered diagnostics: the 1-based manifest line it sits under, and
    /// its text. Read from the snippet, not the `╭─[file:L:C]` header, because miette's header
    /// names the first line of context shown, not the labelled line.
    pub fn labels(&self) -> Vec<(usize, String)> {
        labels(&self.stderr)
    }

    /// Asserts that some label with text containing `text` sits on manifest line `line`.
    pub fn label_at(&self, line: usize, text: &str) -> &Self {
        let labels = self.labels();
        assert!(
            labels.iter().any(|(l, t)| *l == line && t.contains(text)),
            "no label {text:?} on line {line}; labels: {labels:?}\n{}",
            self.stderr
        );
        self
    }

    /// The number of `×` error headings in the rendered report (the summary heading included;
    /// miette prefixes the related ones with `Error:`).
    pub fn error_headings(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| {
                l.trim_start()
                    .trim_start_matches("Error:")
                    .trim_start()
                    .starts_with('×')
            })
            .count()
    }
}

/// Parses rendered miette output into `(line, label text)` pairs. A source line looks like
/// ` 12 │ text`; the label lines under it look like `    ·    ╰── label`. A label over several
/// lines (` 4 │ ╭─▶ health {` … ` 7 │ ├─▶ }`) is attributed to the line where it starts.
pub fn labels(rendered: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut last_line = None;
    let mut multi_start = None;
    let mut multi_ended = false;
    for line in rendered.lines() {
        let trimmed = line.trim_start();
        if let Some((num, rest)) = trimmed.split_once(" │") {
            if let Ok(n) = num.trim().parse::<usize>() {
                last_line = Some(n);
                multi_ended = rest.contains("├─▶");
                if rest.contains("╭─▶") {
                    multi_start = Some(n);
                }
                continue;
            }
        }
        if let Some(rest) = trimmed.strip_prefix('·') {
            let Some((_, text)) = rest.split_once('╰') else {
                continue;
            };
            let text = text.trim_start_matches('─').trim();
            let at = if multi_ended { multi_start } else { last_line };
            if let (Some(n), false) = (at, text.is_empty()) {
                out.push((n, text.to_string()));
            }
        }
    }
    out
}

/// Runs `sanctuary validate` on `text` and checks what every invalid manifest must satisfy:
/// exit code 2 and no panic.
pub fn invalid(text: &str) -> Output {
    let out = Test::manifest(text).args(&["validate"]).run();
    out.code(2).no_panic();
    out
}

#[test]
fn labels_are_read_from_single_and_multi_line_snippets() {
    let rendered = "   ╭─[Sanctuary.kdl:3:1]
 3 │         image \"busybox:1\"
   ·         ───┬───
   ·            ╰── first
 4 │ ╭─▶     health {
 5 │ │           cmd \"true\"
 6 │ ├─▶     }
   · ╰──── both given
 7 │     }
   ╰────
";
    assert_eq!(
        labels(rendered),
        vec![(3, "first".to_string()), (4, "both given".to_string())]
    );
}

/// The stdout of a finished `sanctuary ARGS`, after asserting that it succeeded; a failure
/// shows both streams.
pub fn success_stdout(args: &[&str], out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "sanctuary {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `.tar.zst` as another tool might make it: `fifos` fifos (`pipe-00`, …), a character
/// device `dev/null`, a setuid `bin/tool` and a plain `readme`. Written header by header, so
/// no root is needed for the device.
pub fn foreign_archive(path: &Path, fifos: usize) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |kind: tar::EntryType, name: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(tar::EntryType::Directory, "bin", 0o755, b"");
    add(tar::EntryType::Regular, "bin/tool", 0o4755, b"#!/bin/sh\n");
    add(tar::EntryType::Regular, "readme", 0o644, b"hello\n");
    for i in 0..fifos {
        add(tar::EntryType::Fifo, &format!("pipe-{i:02}"), 0o644, b"");
    }
    add(tar::EntryType::Char, "dev/null", 0o666, b"");
    let tar = b.into_inner().unwrap();
    std::fs::write(path, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
}
