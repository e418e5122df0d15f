//! `sanctuary run`, `why` and `cache` end to end: the real binary, real `sh` tasks, a real
//! state directory in a temp dir. Tasks append to files outside their declared outputs so a
//! test can count how often a command really ran.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::run_support::Project;

/// A task with one input file and one output, counting its runs in `count/<name>`.
fn cached_task(name: &str, input: &str, extra: &str) -> String {
    format!(
        r#"
task "{name}" {{
    run "mkdir -p count out && echo run >> count/{name} && cat {input} > out/{name}.txt"
    inputs "{input}"
    outputs "out/{name}.txt"
    {extra}
}}
"#
    )
}

#[test]
fn a_chain_runs_in_dependency_order() {
    let p = Project::new(
        r#"
project "chain"
task "c" {
    run "echo c >> order.log"
    depends-on "b"
}
task "b" {
    run "echo b >> order.log"
    depends-on "a"
}
task "a" {
    run "echo a >> order.log"
}
"#,
    );
    p.run_ok(&["run", "c", "-j", "4"]);
    assert_eq!(p.read("order.log"), "a\nb\nc\n");
}

#[test]
fn a_diamond_runs_base_first_and_top_last() {
    let p = Project::new(
        r#"
task "top" {
    run "echo top >> order.log"
    depends-on "left" "right"
}
task "left" {
    run "echo left >> order.log"
    depends-on "base"
}
task "right" {
    run "echo right >> order.log"
    depends-on "base"
}
task "base" {
    run "echo base >> order.log"
}
"#,
    );
    let r = p.run_ok(&["--json", "run", "top", "-j", "2"]);
    let order = p.read("order.log");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.len(), 4, "{order}");
    assert_eq!(lines[0], "base");
    assert_eq!(lines[3], "top");
    // The event stream agrees: base finished before anything else started, top started last.
    let events = r.events();
    let pos = |event: &str, node: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["node"] == node)
            .unwrap_or_else(|| panic!("no {event} for {node}: {r:?}"))
    };
    for mid in ["left", "right"] {
        assert!(pos("finished", "base") < pos("started", mid));
        assert!(pos("finished", mid) < pos("started", "top"));
    }
}

/// Two independent tasks that record start and end times (ns) around a short sleep.
const PAIR: &str = r#"
task "both" {
    run "true"
    depends-on "left" "right"
}
task "left" {
    run "date +%s%N > left.start; sleep 0.4; date +%s%N > left.end"
}
task "right" {
    run "date +%s%N > right.start; sleep 0.4; date +%s%N > right.end"
}
"#;

fn stamp(p: &Project, rel: &str) -> u128 {
    p.read(rel).trim().parse().unwrap()
}

fn overlapped(p: &Project) -> bool {
    stamp(p, "left.start") < stamp(p, "right.end") && stamp(p, "right.start") < stamp(p, "left.end")
}

#[test]
fn two_jobs_let_independent_tasks_overlap_and_one_job_does_not() {
    let p = Project::new(PAIR);
    p.run_ok(&["run", "both", "-j", "2"]);
    assert!(overlapped(&p), "left and right should overlap with -j 2");

    let p = Project::new(PAIR);
    p.run_ok(&["run", "both", "-j", "1"]);
    assert!(!overlapped(&p), "left and right must not overlap with -j 1");
}

#[test]
fn a_failure_skips_dependents_and_independent_work_finishes() {
    let p = Project::new(
        r#"
task "bad" {
    run "exit 3"
}
task "after-bad" {
    run "touch after-bad.done"
    depends-on "bad"
}
task "fine" {
    run "sleep 0.2; touch fine.done"
}
"#,
    );
    let r = p.run(&["run", "after-bad", "fine", "-j", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(p.path("fine.done").exists(), "independent work finished");
    assert!(
        !p.path("after-bad.done").exists(),
        "a dependent of a failure ran"
    );
    let out = r.all();
    assert!(out.contains("✗ bad"), "{out}");
    assert!(
        out.contains("after-bad skipped because bad failed"),
        "{out}"
    );
    assert!(out.contains("✓ fine"), "{out}");

    let r = p.run(&["--json", "run", "after-bad", "fine", "-j", "2"]);
    let summary = r.events().pop().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["success"], false);
    let status = |node: &str| {
        summary["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| n["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("bad"), "failed");
    assert_eq!(status("after-bad"), "skipped");
    // `fine` has no inputs or outputs: its second run is up to date.
    assert_eq!(status("fine"), "up_to_date");
}

#[test]
fn fail_fast_starts_no_new_work_after_a_failure() {
    let manifest = r#"
task "bad" {
    run "exit 1"
}
task "slow" {
    run "sleep 0.5; touch slow.done"
}
task "after-slow" {
    run "touch after-slow.done"
    depends-on "slow"
}
"#;
    let p = Project::new(manifest);
    let r = p.run(&["run", "bad", "after-slow", "-j", "2", "--fail-fast"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(p.path("slow.done").exists(), "running work finishes");
    assert!(!p.path("after-slow.done").exists(), "new work started");
    assert!(r.all().contains("after-slow not run"), "{r:?}");

    // Without the flag the independent chain completes.
    let p = Project::new(manifest);
    let r = p.run(&["run", "bad", "after-slow", "-j", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(p.path("after-slow.done").exists());
}

#[test]
fn an_unchanged_task_is_cached_and_does_not_run_again() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "hello\n");
    p.run_ok(&["run", "build"]);
    assert_eq!(p.lines("count/build"), 1);
    assert_eq!(p.read("out/build.txt"), "hello\n");

    let r = p.run_ok(&["run", "build"]);
    assert_eq!(p.lines("count/build"), 1, "ran again: {r:?}");
    assert!(
        r.stdout.contains("cached") || r.stdout.contains("up to date"),
        "{r:?}"
    );
}

#[test]
fn a_task_without_outputs_is_up_to_date_until_its_input_changes() {
    let p = Project::new(
        r#"
task "lint" {
    run "echo run >> lint.count"
    inputs "src/*.txt"
}
"#,
    );
    p.write("src/a.txt", "a");
    p.run_ok(&["run", "lint"]);
    let r = p.run_ok(&["run", "lint"]);
    assert!(r.stdout.contains("lint (up to date)"), "{r:?}");
    assert_eq!(p.lines("lint.count"), 1);
    p.write("src/b.txt", "new file");
    p.run_ok(&["run", "lint"]);
    assert_eq!(p.lines("lint.count"), 2, "a new input file must re-run");
}

#[test]
fn editing_one_input_reruns_exactly_the_affected_tasks() {
    let manifest = format!(
        "{}{}{}",
        cached_task("one", "src/one.txt", ""),
        cached_task("two", "src/two.txt", ""),
        r#"
task "both" {
    run "echo run >> count/both && cat out/one.txt out/two.txt > out/both.txt"
    outputs "out/both.txt"
    depends-on "one" "two"
}
"#
    );
    let p = Project::new(&manifest);
    p.write("src/one.txt", "1\n");
    p.write("src/two.txt", "2\n");
    p.run_ok(&["run", "both"]);
    assert_eq!(p.read("out/both.txt"), "1\n2\n");

    p.write("src/one.txt", "uno\n");
    let r = p.run_ok(&["--json", "run", "both"]);
    assert_eq!(r.finish_of("one"), "finished");
    assert_eq!(r.finish_of("two"), "cached");
    assert_eq!(r.finish_of("both"), "finished");
    assert_eq!(p.lines("count/one"), 2);
    assert_eq!(p.lines("count/two"), 1);
    assert_eq!(p.lines("count/both"), 2);
    assert_eq!(p.read("out/both.txt"), "uno\n2\n");
}

#[test]
fn deleted_outputs_are_restored_from_the_cache_without_running() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "content\n");
    p.run_ok(&["run", "build"]);
    fs::remove_dir_all(p.path("out")).unwrap();

    let r = p.run_ok(&["run", "build"]);
    assert_eq!(p.lines("count/build"), 1, "ran instead of restoring: {r:?}");
    assert_eq!(p.read("out/build.txt"), "content\n");
    assert!(r.stdout.contains("cached"), "{r:?}");
    assert!(r.stdout.contains("restored out/build.txt"), "{r:?}");
}

#[test]
fn why_says_never_ran_then_up_to_date_then_names_the_changed_input() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "v1\n");
    let r = p.run_ok(&["why", "build"]);
    assert!(r.stdout.contains("never ran"), "{r:?}");

    p.run_ok(&["run", "build"]);
    let r = p.run_ok(&["why", "build"]);
    assert!(r.stdout.contains("up to date"), "{r:?}");

    p.write("src/a.txt", "v2\n");
    let r = p.run_ok(&["why", "build"]);
    assert!(r.stdout.contains("input src/a.txt changed"), "{r:?}");
    // `why` only explains: nothing ran.
    assert_eq!(p.lines("count/build"), 1);
}

#[test]
fn why_names_a_changed_env_variable() {
    let p = Project::new(&cached_task("build", "src/a.txt", r#"env MODE="debug""#));
    p.write("src/a.txt", "x");
    p.run_ok(&["run", "build"]);
    p.write(
        "Sanctuary.kdl",
        &cached_task("build", "src/a.txt", r#"env MODE="release""#),
    );
    let r = p.run_ok(&["why", "build"]);
    assert!(r.stdout.contains("env MODE changed"), "{r:?}");
    let r = p.run_ok(&["--json", "why", "build"]);
    let v = &r.events()[0];
    assert_eq!(v["would_run"], true);
    assert!(v["changes"].to_string().contains("env MODE"), "{v}");
}

#[test]
fn why_says_which_deleted_outputs_would_be_restored() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "x");
    p.run_ok(&["run", "build"]);
    fs::remove_file(p.path("out/build.txt")).unwrap();
    let r = p.run_ok(&["why", "build"]);
    assert!(r.stdout.contains("restored from the cache"), "{r:?}");
    assert!(r.stdout.contains("out/build.txt"), "{r:?}");
}

#[test]
fn a_corrupt_cache_entry_is_reported_discarded_and_the_task_reruns() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "precious\n");
    p.run_ok(&["run", "build"]);
    let archives: Vec<_> = p
        .cache_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let mut bytes = fs::read(&archives[0]).unwrap();
    let (mid, len) = (bytes.len() / 2, bytes.len());
    for b in &mut bytes[mid..(mid + 4).min(len)] {
        *b ^= 0xff;
    }
    fs::write(&archives[0], &bytes).unwrap();
    fs::remove_file(p.path("out/build.txt")).unwrap();

    let r = p.run_ok(&["run", "build"]);
    assert!(r.all().contains("corrupt"), "{r:?}");
    assert!(r.all().contains("discarded"), "{r:?}");
    assert_eq!(p.lines("count/build"), 2, "the task must re-run");
    assert_eq!(p.read("out/build.txt"), "precious\n");

    // The re-run stored a good entry again.
    fs::remove_file(p.path("out/build.txt")).unwrap();
    let r = p.run_ok(&["run", "build"]);
    assert_eq!(p.lines("count/build"), 2, "{r:?}");
    assert_eq!(p.read("out/build.txt"), "precious\n");
}

#[test]
fn force_reruns_an_up_to_date_task() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "x");
    p.run_ok(&["run", "build"]);
    p.run_ok(&["run", "build", "--force"]);
    assert_eq!(p.lines("count/build"), 2);
}

const GREET: &str = r#"
task "greet" {
    run "printf '[%s]\n' hi"
}
"#;

#[test]
fn arguments_after_the_double_dash_reach_the_task() {
    let p = Project::new(GREET);
    let r = p.run_ok(&["run", "greet", "--", "two words", "it's"]);
    assert!(r.stdout.contains("[two words]"), "{r:?}");
    assert!(r.stdout.contains("[it's]"), "{r:?}");
}

#[test]
fn a_task_name_alone_is_a_command() {
    let p = Project::new(GREET);
    let r = p.run_ok(&["greet"]);
    assert!(r.stdout.contains("[hi]"), "{r:?}");
    let r = p.run_ok(&["greet", "--", "extra"]);
    assert!(r.stdout.contains("[extra]"), "{r:?}");
}

#[test]
fn an_unknown_task_exits_2_with_a_suggestion() {
    let p = Project::new(GREET);
    for args in [&["run", "gret"][..], &["gret"][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("did you mean"), "{r:?}");
        assert!(r.stderr.contains("greet"), "{r:?}");
    }
}

#[test]
fn a_missing_input_is_an_error_that_names_it() {
    let p = Project::new(&cached_task("build", "src/missing.txt", ""));
    let r = p.run(&["run", "build"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.all().contains("src/missing.txt"), "{r:?}");
    assert_eq!(p.lines("count/build"), 0, "ran without its input");
}

#[test]
fn json_emits_one_object_per_line_with_durations() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "x");
    let r = p.run_ok(&["--json", "run", "build"]);
    let events = r.events();
    assert!(events.iter().any(|e| e["event"] == "started"));
    let done = events.iter().find(|e| e["event"] == "finished").unwrap();
    assert_eq!(done["node"], "build");
    assert!(done["duration_ms"].is_u64(), "{done}");
    assert_eq!(events.last().unwrap()["event"], "summary");

    fs::remove_file(p.path("out/build.txt")).unwrap();
    let r = p.run_ok(&["--json", "run", "build"]);
    let cached = r
        .events()
        .into_iter()
        .find(|e| e["event"] == "cached")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(cached["duration_ms"].is_u64(), "{cached}");
    assert_eq!(cached["detail"], "restored out/build.txt");
}

#[test]
fn ctrl_c_stops_the_child_quickly_and_leaves_the_cache_consistent() {
    // `$$$$` is the shell's `$$`: the manifest reads `$$` as a literal `$`, as Compose does.
    let p = Project::new(
        r#"
task "slow" {
    run "mkdir -p out && echo partial > out/slow.txt && echo $$$$ > slow.pid && exec sleep 30"
    outputs "out/slow.txt"
}
"#,
    );
    let mut child = p.command(&["run", "slow"]).spawn().unwrap();
    // Wait for the task to have started (its partial output exists), then interrupt.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.path("out/slow.txt").exists() || p.read("slow.pid").trim().is_empty() {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("sanctuary did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    // The task's process (the shell, replaced by `sleep`) was stopped, not orphaned.
    let sleeper: i32 = p.read("slow.pid").trim().parse().unwrap();
    let gone = Instant::now() + Duration::from_secs(2);
    while kill(Pid::from_raw(sleeper), None).is_ok() {
        assert!(
            Instant::now() < gone,
            "the task's `sleep 30` survived SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("✓ slow"), "{stdout}");

    // No entry, no temp file, no success record for the interrupted task.
    let files = p.cache_files();
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with(p.path(".sanctuary/cache/objects"))),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.to_string_lossy().contains("slow")),
        "{files:?}"
    );

    // The cache is consistent: a following run works and stores an entry.
    p.write(
        "Sanctuary.kdl",
        r#"
task "slow" {
    run "mkdir -p out && echo quick > out/slow.txt"
    outputs "out/slow.txt"
}
"#,
    );
    p.run_ok(&["run", "slow"]);
    assert_eq!(p.read("out/slow.txt"), "quick\n");
    fs::remove_file(p.path("out/slow.txt")).unwrap();
    let r = p.run_ok(&["run", "slow"]);
    assert!(r.stdout.contains("cached"), "{r:?}");
    assert_eq!(p.read("out/slow.txt"), "quick\n");
}

#[test]
fn cache_stats_and_gc_to_zero_empty_the_cache() {
    let manifest = format!(
        "{}{}",
        cached_task("one", "src/one.txt", ""),
        cached_task("two", "src/two.txt", "")
    );
    let p = Project::new(&manifest);
    p.write("src/one.txt", "1");
    p.write("src/two.txt", "2");
    p.run_ok(&["run", "one", "two"]);

    let r = p.run_ok(&["cache", "stats"]);
    assert!(r.stdout.contains("2 entries"), "{r:?}");
    let r = p.run_ok(&["--json", "cache", "stats"]);
    assert_eq!(r.events()[0]["entries"], 2);

    let r = p.run_ok(&["cache", "gc", "--max-size", "0"]);
    assert!(r.stdout.contains("removed 2 entries"), "{r:?}");
    let r = p.run_ok(&["--json", "cache", "stats"]);
    assert_eq!(r.events()[0]["entries"], 0, "{r:?}");

    // With the entries gone, deleted outputs can only come back by running again.
    fs::remove_dir_all(p.path("out")).unwrap();
    p.run_ok(&["run", "one"]);
    assert_eq!(p.lines("count/one"), 2);
    assert_eq!(p.read("out/one.txt"), "1");
}

#[test]
fn cache_gc_without_a_limit_is_a_usage_error() {
    let p = Project::new(GREET);
    let r = p.run(&["cache", "gc"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--max-size"), "{r:?}");
}

const DUMP_THEN_BACKUP: &str = r#"
task "dump" {
    run "mkdir -p count data && echo run >> count/dump && echo rows > data/dump.sql"
    run "test ! -f fail"
}
backup "db" {
    path "data"
    depends-on "dump"
    copy "primary" path="backups"
}
"#;

#[test]
fn a_backup_runs_the_task_it_depends_on_first() {
    let p = Project::new(DUMP_THEN_BACKUP);
    let r = p.run_ok(&["--json", "backup", "db"]);
    let events = r.events();
    let at = |event: &str, node: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["node"] == node)
            .unwrap_or_else(|| panic!("no {event} of {node}: {r:?}"))
    };
    assert!(at("finished", "dump") < at("started", "backup.db"), "{r:?}");
    let result = events
        .iter()
        .find(|e| e["event"] == "result" && e["node"] == "backup.db")
        .unwrap_or_else(|| panic!("no result of backup.db: {r:?}"));
    assert_eq!(result["result"]["outcome"], "created", "{result}");
    assert_eq!(p.lines("count/dump"), 1);
}

#[test]
fn a_failed_task_skips_the_backup_and_the_exit_code_says_why() {
    let p = Project::new(DUMP_THEN_BACKUP);
    p.write("fail", "");
    let r = p.run(&["backup", "db"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("skipped because dump failed"), "{r:?}");
    assert!(r.stderr.contains("error: dump: exit status 1"), "{r:?}");
    assert!(!p.path("backups").exists(), "no snapshot was taken");
}

#[test]
fn what_sanctuary_writes_is_never_a_task_input() {
    let p = Project::new(
        r#"
task "pack" {
    run "mkdir -p count && echo run >> count/pack"
    inputs "."
}
backup "src" {
    path "src"
    copy "primary" path="snapshots"
}
"#,
    );
    // The task's own counter is ignored the way git ignores it.
    p.write(".gitignore", "count/\n");
    p.write("src/a.txt", "a");
    p.run_ok(&["run", "pack"]);
    // A backup copy inside the project and the state directory change; the task's inputs
    // do not.
    p.run_ok(&["backup", "src"]);
    assert!(p.path("snapshots").is_dir());
    let r = p.run_ok(&["run", "pack"]);
    assert!(r.stdout.contains("pack (up to date)"), "{r:?}");
    assert_eq!(p.lines("count/pack"), 1);
    p.write("src/b.txt", "b");
    p.run_ok(&["run", "pack"]);
    assert_eq!(p.lines("count/pack"), 2, "a real input still counts");
}

/// A value with every kind of pattern syntax in it, so masking cannot be a regex. (Tasks
/// print it with `printf %s`: `echo` in dash would turn its `\1` into another byte.)
const SECRET: &str = "s3.cr*t+(x)[y]$^|{2}\\1";

const LEAKY: &str = r#"
secret "tok" {
    env "SANCT_TEST_SECRET"
}
task "leak" {
    run "printf 'token is %s\n' \"$TOKEN\""
    secret-env "TOKEN" from="tok"
    outputs "out.txt"
    run "echo done > out.txt"
}
task "leak-and-fail" {
    run "printf 'token is %s\n' \"$TOKEN\"; exit 3"
    secret-env "TOKEN" from="tok"
}
"#;

#[test]
fn secret_values_are_masked_in_text_json_and_the_cache() {
    let p = Project::new(LEAKY);
    let run = |args: &[&str]| {
        let out = p
            .command(args)
            .env("SANCT_TEST_SECRET", SECRET)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = run(&["run", "leak"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("token is ***"), "{text}");
    assert!(!text.contains("cr*t"), "{text}");
    let (code, json) = run(&["--json", "run", "--force", "leak"]);
    assert_eq!(code, Some(0), "{json}");
    assert!(
        json.contains("token is ***") && !json.contains("cr*t"),
        "{json}"
    );
    let (code, failed) = run(&["run", "leak-and-fail"]);
    assert_eq!(code, Some(1), "{failed}");
    assert!(
        failed.contains("token is ***") && !failed.contains("cr*t"),
        "{failed}"
    );
    // The log kept with the cached outputs holds no value either.
    for f in p.cache_files() {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("cr*t"),
            "{}",
            f.display()
        );
    }
}

#[test]
fn temporaries_of_dead_processes_in_the_state_directory_go_with_the_next_command() {
    let p = Project::new(&cached_task("build", "src/a.txt", ""));
    p.write("src/a.txt", "hello\n");
    p.run_ok(&["run", "build"]);
    // The highest pid is never handed out here; our own pid always runs.
    let dead: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = format!(".sanctuary-tmp-{dead}-");
    let live = format!(".sanctuary-tmp-{}-", std::process::id());
    let debris = [
        format!(".sanctuary/.state.json{dead}a1"),
        format!(".sanctuary/cache/nodes/.task.build.json{dead}b2"),
        format!(".sanctuary/secrets/{dead}c3/0-tok"),
    ];
    let kept = format!(".sanctuary/.state.json{live}d4");
    for f in debris.iter().chain([&kept]) {
        p.write(f, "half-written");
    }
    let r = p.run_ok(&["run", "build"]);
    assert!(r.stdout.contains("build"), "{r:?}");
    for f in &debris {
        assert!(!p.path(f).exists(), "{f} left");
    }
    assert!(!p.path(&format!(".sanctuary/secrets/{dead}c3")).exists());
    assert!(
        p.path(&kept).exists(),
        "a live process's temporary was removed"
    );
}
