//! The command line's basic contract: version and help, `validate`, `list` and `graph` on the
//! shipped manifests, target selection, unknown targets, and JSON output that parses.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{repo_root, Test};

const VOIDCAT: &str = "examples/voidcat/Sanctuary.kdl";
const CLAUDE_CODE: &str = "examples/claude-code/Sanctuary.kdl";

/// Runs the binary from the repository root, where the example paths are relative.
fn at_root(args: &[&str]) -> crate::support::Output {
    Test::new().current_dir_abs(&repo_root()).args(args).run()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn version() {
    let out = Test::new().args(&["--version"]).run();
    out.code(0)
        .stdout_has(&format!("sanctuary {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_for_the_program_lists_every_command() {
    let out = Test::new().args(&["--help"]).run();
    out.code(0).stdout_has("Usage:");
    for cmd in ["validate", "graph", "list"] {
        out.stdout_has(cmd);
    }
}

#[test]
fn help_for_each_command() {
    for (cmd, about) in [
        ("validate", "Check the manifest"),
        ("graph", "dependency graph"),
        ("list", "List tasks and tests"),
    ] {
        let out = Test::new().args(&[cmd, "--help"]).run();
        out.code(0)
            .stdout_has(&format!("Usage: sanctuary {cmd}"))
            .stdout_has(about)
            .stdout_has("--file");
    }
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = Test::new().args(&["frobnicate"]).run();
    out.code(2).no_panic().stderr_has("frobnicate");
}

#[test]
fn validate_each_example_and_the_project_manifest() {
    for file in [VOIDCAT, CLAUDE_CODE, "Sanctuary.kdl"] {
        let out = at_root(&["validate", "-f", file]);
        out.code(0).no_panic().stdout_has("valid");
    }
}

#[test]
fn validate_json_reports_counts() {
    let out = at_root(&["validate", "--json", "-f", VOIDCAT]);
    out.code(0);
    let v = json(&out.stdout);
    assert_eq!(v["valid"], true);
    assert_eq!(v["project"], "voidcat");
    assert_eq!(v["nodes"]["service"], 5, "{v}");
}

#[test]
fn list_shows_tasks_with_descriptions() {
    let out = at_root(&["list", "-f", VOIDCAT]);
    out.code(0)
        .stdout_has("Tasks:")
        .stdout_has("fetch-busybox")
        .stdout_has("# Copy the static busybox into the image context")
        .stdout_has("Tests:")
        .stdout_has("omega-healthy");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("fetch-busybox"))
        .unwrap_or_default();
    assert!(line.contains("# Copy the static busybox"), "{line:?}");
}

#[test]
fn list_of_the_project_manifest() {
    let out = at_root(&["list"]);
    out.code(0).stdout_has("build").stdout_has("test");
}

#[test]
fn list_json_parses() {
    let out = at_root(&["list", "--json", "-f", VOIDCAT]);
    out.code(0);
    let v = json(&out.stdout);
    let tasks = v["tasks"].as_array().expect("tasks array");
    assert!(tasks.iter().any(|t| t["name"] == "fetch-busybox"
        && t["description"] == "Copy the static busybox into the image context"));
}

#[test]
fn graph_text_has_the_edges() {
    let out = at_root(&["graph", "-f", VOIDCAT]);
    out.code(0);
    let text = &out.stdout;
    // Each node is followed by the nodes it depends on, marked `←`.
    let deps_of = |node: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| *l != node)
            .skip(1)
            .take_while(|l| l.starts_with("  ← "))
            .map(|l| l.trim_start_matches("  ← ").to_string())
            .collect()
    };
    let beta = deps_of("service.beta");
    assert!(
        beta.contains(&"service.omega (healthy)".to_string()),
        "{beta:?}\n{text}"
    );
    assert!(beta.contains(&"image.clone".to_string()), "{beta:?}");
    assert!(beta.contains(&"volume.artifacts".to_string()), "{beta:?}");
    assert!(
        deps_of("image.clone")
            .iter()
            .any(|d| d.starts_with("task.fetch-busybox")),
        "{text}"
    );
}

#[test]
fn graph_mermaid() {
    let out = at_root(&["graph", "--format", "mermaid", "-f", VOIDCAT]);
    out.code(0)
        .stdout_has("flowchart LR")
        .stdout_has("service omega")
        .stdout_has("-->|healthy|");
}

#[test]
fn graph_dot_renders_with_graphviz() {
    let out = at_root(&["graph", "--format", "dot", "-f", VOIDCAT]);
    out.code(0)
        .stdout_has("digraph \"voidcat\"")
        .stdout_has("\"service.omega\" -> \"service.beta\" [label=\"healthy\"]");

    let dot = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match dot {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("SANCTUARY_REQUIRE_DOT").as_deref() == Ok("1") {
                panic!("SANCTUARY_REQUIRE_DOT=1 but Graphviz `dot` cannot run: {e}");
            }
            eprintln!(
                "\n*** SKIPPED: Graphviz `dot` is not installed ({e}); the DOT output was not \
                 rendered. Set SANCTUARY_REQUIRE_DOT=1 to make this a failure. ***\n"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(out.stdout.as_bytes())
        .expect("write DOT to dot");
    let result = child.wait_with_output().expect("wait for dot");
    assert!(
        result.status.success(),
        "dot rejected the output:\n{}\n{}",
        String::from_utf8_lossy(&result.stderr),
        out.stdout
    );
    assert!(String::from_utf8_lossy(&result.stdout).contains("<svg"));
}

#[test]
fn graph_with_a_target_selects_only_its_dependencies() {
    let out = at_root(&["graph", "-f", VOIDCAT, "image.clone"]);
    out.code(0);
    let nodes: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    assert_eq!(nodes.len(), 2, "{}", out.stdout);
    assert!(nodes.contains(&"image.clone"));
    assert!(nodes.contains(&"task.fetch-busybox"));
}

#[test]
fn graph_target_by_bare_name() {
    let out = at_root(&["graph", "--json", "-f", VOIDCAT, "beta"]);
    out.code(0);
    let v = json(&out.stdout);
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(ids.contains(&"service.beta") && ids.contains(&"service.omega"));
    // Only beta's dependencies: no sibling services, no tests.
    assert!(!ids.contains(&"service.gamma"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.starts_with("test.")), "{ids:?}");
}

#[test]
fn graph_unknown_target_suggests() {
    let out = at_root(&["graph", "-f", VOIDCAT, "omgea"]);
    out.code(2)
        .no_panic()
        .stderr_has("unknown node `omgea`")
        .stderr_has("did you mean `omega`?");
}

#[test]
fn graph_json_parses() {
    let out = at_root(&["graph", "--json", "-f", VOIDCAT]);
    out.code(0);
    let v = json(&out.stdout);
    let beta = v["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .find(|n| n["id"] == "service.beta")
        .expect("service.beta in the graph");
    assert!(beta["depends_on"]
        .as_array()
        .expect("depends_on array")
        .iter()
        .any(|d| d["node"] == "service.omega"));
}

#[test]
fn errors_with_json_are_json_on_stdout() {
    let out = Test::manifest("servce \"x\"\n")
        .args(&["validate", "--json"])
        .run();
    out.code(2).no_panic();
    let v = json(&out.stdout);
    assert_eq!(v["event"], "error");
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn host_path_backups_need_no_docker_engine_and_volume_backups_say_they_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("notes/sub")).unwrap();
    std::fs::write(dir.path().join("notes/sub/a.txt"), "keep me").unwrap();
    std::fs::write(
        dir.path().join("Sanctuary.kdl"),
        r#"project "no-engine"
volume "data"
backup "notes" {
    path "./notes"
    copy "one" path="./b1"
}
backup "data" {
    volume "data"
    copy "one" path="./b2"
}
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            // Nothing answers here: any attempt to reach an engine fails.
            .env("DOCKER_HOST", "tcp://127.0.0.1:1")
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let out = run(&["backup", "notes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("created snapshot"), "{}", text(&out));
    std::fs::write(dir.path().join("notes/sub/a.txt"), "damaged").unwrap();
    let out = run(&["restore", "notes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/sub/a.txt")).unwrap(),
        "keep me"
    );
    let out = run(&["restore", "notes", "--to", "./elsewhere"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.path().join("elsewhere/sub/a.txt").is_file());

    // A volume needs the engine, and the error says which one it tried.
    let out = run(&["backup", "data"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("127.0.0.1:1"), "{}", text(&out));
}

#[test]
fn backups_list_names_an_unreadable_copy_below_the_table() {
    let out = Test::manifest(
        r#"project "list-unreadable"
backup "notes" {
    path "./notes"
    copy "one" path="./b1"
    copy "two" path="./blocked/b2"
}
"#,
    )
    .file("notes/a.txt", "a")
    // A file where the copy's parent directory should be: the copy cannot be listed.
    .file("blocked", "not a directory")
    .args(&["backups", "list"])
    .run();
    out.code(0)
        .stdout_has("(unreadable)")
        .stdout_has("unreadable copy notes two: ");
    let table_width = out
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("unreadable copy"))
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(
        table_width < 100,
        "the reason stays out of the table:\n{}",
        out.stdout
    );
}

#[test]
fn an_archive_made_by_gnu_tar_restores_and_an_escaping_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Sanctuary.kdl"),
        "project \"foreign\"\nbackup \"notes\" {\n    path \"./notes\"\n}\n",
    )
    .unwrap();
    let made = dir.path().join("made");
    std::fs::create_dir_all(made.join("sub")).unwrap();
    std::fs::write(made.join("sub/a.txt"), "from gnu tar").unwrap();
    let archive = dir.path().join("by-tar.tar.zst");
    let tar = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&made)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&["restore", "notes", "--archive", "by-tar.tar.zst"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("unverified"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/sub/a.txt")).unwrap(),
        "from gnu tar"
    );

    // An entry climbing out of the target: refused, and the target is left as it was.
    let mut evil = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = b"owned";
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    // `append_data` refuses `..`; the raw name field does not.
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escaped.tx");
    header.set_cksum();
    evil.append(&header, &body[..]).unwrap();
    let evil = zstd::encode_all(&evil.into_inner().unwrap()[..], 3).unwrap();
    std::fs::write(dir.path().join("evil.tar.zst"), evil).unwrap();
    let out = run(&["restore", "notes", "--archive", "evil.tar.zst"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("escaped.tx"), "{text}");
    assert!(!dir.path().join("escaped.tx").exists(), "nothing escaped");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/sub/a.txt")).unwrap(),
        "from gnu tar",
        "the target is untouched"
    );
}

/// A project whose backup `files` is the host path `./src`, holding [`foreign_archive`]
/// with 22 fifos as `foreign.tar.zst`.
fn foreign_archive_project() -> Test {
    let t = Test::manifest(
        r#"project "foreign"
backup "files" {
    path "./src"
    copy "one" path="./b1"
}
"#,
    )
    .dir("src");
    crate::support::foreign_archive(&t.path().join("foreign.tar.zst"), 22);
    t
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn restore_of_a_foreign_archive_lists_what_it_skipped_and_cleared() {
    let t = foreign_archive_project().args(&["restore", "files", "--archive", "foreign.tar.zst"]);
    let src = t.path().join("src");
    let out = t.run();
    out.code(0).no_panic();
    let text = &out.stdout;
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in:\n{text}"))
    };
    // The count line, the first 20 paths in archive order, then how many more.
    let head = at("  skipped 23 entries: 22 fifo, 1 character device");
    for (i, line) in lines[head + 1..head + 21].iter().enumerate() {
        assert_eq!(*line, format!("    pipe-{i:02} (fifo)"), "{text}");
    }
    assert_eq!(lines[head + 21], "    and 3 more", "{text}");
    let cleared = at("  cleared setuid/setgid bits of 1 file (--keep-special-bits keeps them)");
    assert_eq!(lines[cleared + 1], "    bin/tool", "{text}");
    assert!(lines[0].contains("no manifest, so unverified"), "{text}");
    assert_eq!(mode_of(&src.join("bin/tool")), 0o755);
    assert_eq!(
        std::fs::read_to_string(src.join("readme")).unwrap(),
        "hello\n"
    );
    assert!(!src.join("pipe-00").exists() && !src.join("dev").exists());
}

#[test]
fn restore_json_of_a_foreign_archive_has_every_skipped_entry_and_the_counts() {
    let t = foreign_archive_project().args(&[
        "--json",
        "restore",
        "files",
        "--archive",
        "foreign.tar.zst",
    ]);
    let out = t.run();
    out.code(0).no_panic();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["event"], "restore");
    assert_eq!(v["verified"], false);
    let skipped = &v["skipped"];
    assert_eq!(skipped["count"], 23, "{v}");
    assert_eq!(
        skipped["by_kind"],
        serde_json::json!({ "fifo": 22, "char_device": 1 }),
        "{v}"
    );
    let entries = skipped["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 23, "the full list, not the first 20: {v}");
    assert_eq!(
        entries[22],
        serde_json::json!({ "path": "dev/null", "kind": "char_device" })
    );
    assert_eq!(
        v["special_bits_cleared"],
        serde_json::json!({ "count": 1, "paths": ["bin/tool"] }),
        "{v}"
    );
}

#[test]
fn keep_special_bits_keeps_setuid_from_a_foreign_archive() {
    let t = foreign_archive_project().args(&[
        "restore",
        "files",
        "--archive",
        "foreign.tar.zst",
        "--keep-special-bits",
    ]);
    let src = t.path().join("src");
    let out = t.run();
    out.code(0).no_panic();
    assert!(!out.stdout.contains("cleared"), "{}", out.stdout);
    out.stdout_has("  skipped 23 entries: 22 fifo, 1 character device");
    assert_eq!(mode_of(&src.join("bin/tool")), 0o4755);

    // Only an archive has bits to keep or clear: a snapshot keeps what its backup recorded.
    Test::manifest("project \"p\"\n")
        .args(&["restore", "files", "--keep-special-bits"])
        .run()
        .code(2)
        .stderr_has("--archive");
}

#[test]
fn completions_complete_commands_in_bash_and_the_man_page_lists_them() {
    let out = Test::new().args(&["completions", "bash"]).run();
    out.code(0);
    let script =
        std::env::temp_dir().join(format!("sanctuary-completion-{}.bash", std::process::id()));
    std::fs::write(&script, &out.stdout).unwrap();
    // What bash offers after `sanctuary ap` and after `sanctuary rollback --w`.
    let offered = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; _sanctuary sanctuary '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let commands = offered("sanctuary ap");
    assert!(commands.lines().any(|l| l == "apply"), "{commands}");
    let flags = offered("sanctuary rollback --w");
    assert!(flags.lines().any(|l| l == "--with-data"), "{flags}");
    let _ = std::fs::remove_file(&script);
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        Test::new()
            .args(&["completions", shell])
            .run()
            .code(0)
            .stdout_has("sanctuary");
    }
    Test::new().args(&["completions", "nushell"]).run().code(2);

    let man = Test::new().args(&["man"]).run();
    man.code(0).stdout_has(".TH sanctuary 1");
    for cmd in ["apply", "rollback", "switch", "exec"] {
        man.stdout_has(cmd);
    }
}

#[test]
fn sanctuary_log_sends_diagnostics_to_stderr_and_a_bad_filter_is_named() {
    let t = Test::new().dir("a").dir("b").file("a/x.txt", "x");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = t
        .env("SANCTUARY_LOG", "sanctuary::sync=debug")
        .env("NO_COLOR", "1")
        .args(&["sync", "--local-dirs", a, b])
        .run();
    out.code(0)
        .stderr_has("DEBUG")
        .stderr_has("scanning host directory");
    assert!(!out.stdout.contains("DEBUG"), "{}", out.stdout);
    // Nothing was asked for: no diagnostics at all.
    let quiet = Test::new().args(&["--version"]).run();
    quiet.code(0);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    let bad = Test::new()
        .env("SANCTUARY_LOG", "sanctuary=loud")
        .args(&["--version"])
        .run();
    bad.code(0).stderr_has("ignoring SANCTUARY_LOG");
}
