//! Crash hygiene of backups and restores against a real engine, through the real binary:
//! SIGKILL at many points of a backup and of a restore, each followed by the next command,
//! which must find every copy consistent and leave no temporary, helper container or staging
//! volume behind; SIGTERM and SIGINT at a safe point; debris that `backups list` shows and the
//! next command removes, while what a live process owns stays.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{path_stack, Stack};
use crate::docker_support::{docker_lines, docker_or_skip, test_image, PROJECT_LABEL};

/// A volume backup in two local copies, and a second volume that nothing mounts to restore
/// into (so a restore stops no service).
const HYGIENE: &str = r#"volume "restored"
backup "data" {
    volume "data"
    copy "one" path="./b1"
    copy "two" path="./b2" media="usb"
    keep last=1
}"#;

/// Random data in the `data` volume: `files` files of `mb` MiB each.
fn fill(s: &Stack, files: usize, mb: usize) {
    s.exec(&format!(
        "mkdir -p /data/bulk && for i in $(seq 1 {files}); do \
         head -c {} /dev/urandom > /data/bulk/f$i; done",
        mb << 20
    ));
}

/// Names in `dir` that carry the debris mark (a temporary of some process).
fn marked(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(sanctuary::debris::MARK))
                .collect()
        })
        .unwrap_or_default()
}

/// The project's containers and volumes that are not part of its declared state: helpers
/// and staging volumes.
fn strays(s: &Stack) -> Vec<String> {
    let filter = format!("label={PROJECT_LABEL}={}", s.project.name);
    let keep = [
        s.project.object("writer"),
        s.project.object("data"),
        s.project.object("restored"),
    ];
    let containers = docker_lines(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    let volumes = docker_lines(&["volume", "ls", "-q", "--filter", &filter]);
    containers
        .into_iter()
        .map(|c| format!("container {c}"))
        .chain(volumes.into_iter().map(|v| format!("volume {v}")))
        .filter(|o| !keep.iter().any(|k| o.ends_with(&format!(" {k}"))))
        .collect()
}

/// Everything an interrupted run may leave: temporaries in the copies, beside a restore
/// target in the project directory and in the state directory, staging directories of a
/// restore into `./out`, helper containers and staging volumes.
fn leftovers(s: &Stack) -> Vec<String> {
    let mut left: Vec<String> = ["b1", "b2", ".", ".sanctuary/backup"]
        .into_iter()
        .flat_map(|dir| {
            marked(&s.path(dir))
                .into_iter()
                .map(move |n| format!("{dir}/{n}"))
        })
        .collect();
    left.extend(
        std::fs::read_dir(s.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".out.restore")),
    );
    left.sort();
    left.dedup();
    left.extend(strays(s));
    left
}

/// Asserts that nothing an interrupted run could leave is left.
fn assert_clean(s: &Stack, when: &str) {
    let left = leftovers(s);
    assert!(left.is_empty(), "{when}: left behind: {left:?}");
}

/// Kills `child` (SIGKILL) after `delay`; whether it was still running then, and what it
/// left.
fn kill_after(s: &Stack, mut child: Child, delay: Duration) -> (bool, Vec<String>) {
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    (running, leftovers(s))
}

/// Checks that a kill schedule did what it is for: most kills hit a running command, and
/// some left something behind for the next one to clean.
fn assert_schedule_bit(what: &str, hits: usize, messy: usize) {
    eprintln!("{what}: {hits}/{KILLS} kills hit a running process, {messy} left debris");
    assert!(
        hits * 10 >= KILLS as usize * 7,
        "{what}: too few kills hit a running process"
    );
    assert!(messy > 0, "{what}: no kill left anything to clean up");
}

/// Runs `backups verify` and asserts it checked `at_least` snapshot copies, all ok.
fn assert_verifies(s: &Stack, at_least: usize, when: &str) {
    let out = s.run(&["backups", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{when}: verify failed:\n{text}");
    let ok = text.lines().filter(|l| l.ends_with(": ok")).count();
    assert!(
        ok >= at_least,
        "{when}: only {ok} snapshot copies verified:\n{text}"
    );
}

/// `sanctuary ARGS` started in the project directory, output discarded.
fn start(s: &Stack, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(args)
        .current_dir(s.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Sends `signal` to `child` and waits for it; its exit code and how long it took to exit.
fn signal_and_wait(child: &mut Child, signal: nix::sys::signal::Signal) -> (Option<i32>, Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sent = Instant::now();
    nix::sys::signal::kill(pid, signal).unwrap();
    let status = child.wait().unwrap();
    (status.code(), sent.elapsed())
}

/// Path → sha256 of every file under `root` of a volume, read through a throwaway container.
fn volume_files(volume: &str) -> BTreeMap<String, String> {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{volume}:/r:ro"),
            &test_image(),
        ])
        .args(["sh", "-c", "cd /r && find . -type f | xargs -r sha256sum"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sha, path)| (path.trim_start_matches("./").to_string(), sha.to_string()))
        .collect()
}

/// Path → sha256 of every file under the host directory `root`.
fn dir_files(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else if e.file_type().unwrap().is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let sha = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
                out.insert(rel, sha);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Kill points spread over a run that takes `full`: the middles of `n` equal slices.
fn delays(full: Duration, n: u32) -> Vec<Duration> {
    (0..n)
        .map(|k| full.mul_f64((f64::from(k) + 0.5) / f64::from(n)))
        .collect()
}

/// Size of the test volume: enough for each step of a backup to take a measurable time.
const FILES: usize = 25;
const FILE_MB: usize = 4;
/// Kills per schedule.
const KILLS: u32 = 10;

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_killed_at_any_point_leaves_nothing_the_next_one_does_not_clean() {
    if docker_or_skip("backup_kill_schedule").await.is_none() {
        return;
    }
    let s = Stack::new("bk-kill-schedule", HYGIENE);
    s.up();
    fill(&s, FILES, FILE_MB);
    // The first backup also builds the helper image: the second one, of changed content
    // (compressed and copied twice), sets the schedule.
    s.ok(&["backup"]);
    s.exec("echo timed > /data/round");
    let started = Instant::now();
    s.ok(&["backup"]);
    let full = started.elapsed();
    eprintln!("backup of {} MiB: {full:?}", FILES * FILE_MB);
    let total = Instant::now();
    let (mut hits, mut messy) = (0, 0);
    for (round, delay) in delays(full, KILLS).into_iter().enumerate() {
        // New content each round, so every run writes and copies a new snapshot.
        s.exec(&format!("echo {round} > /data/round"));
        let (running, left) = kill_after(&s, start(&s, &["backup"]), delay);
        hits += usize::from(running);
        messy += usize::from(!left.is_empty());
        let when = format!("after a kill at {delay:?} that left {left:?}");
        let out = s.ok(&["backup"]);
        assert!(
            out.contains("one: created snapshot") || out.contains("one: unchanged, snapshot"),
            "{when}: {out}"
        );
        assert!(out.contains("two: "), "{when}: {out}");
        assert_clean(&s, &when);
        assert_verifies(&s, 2, &when);
        // Keeps the copies small; prune sweeps too, and must find nothing left to sweep.
        s.ok(&["backups", "prune"]);
        assert_clean(&s, &format!("{when}, pruned"));
    }
    eprintln!(
        "{KILLS} killed backups with their recoveries: {:?}",
        total.elapsed()
    );
    assert_schedule_bit("backup", hits, messy);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_killed_at_any_point_is_completed_by_the_next_one() {
    if docker_or_skip("restore_kill_schedule").await.is_none() {
        return;
    }
    let s = Stack::new("bk-restore-kill", HYGIENE);
    s.up();
    fill(&s, FILES, FILE_MB);
    s.ok(&["backup"]);
    let want = volume_files(&s.project.object("data"));
    let restored = s.project.object("restored");
    let into_volume = ["restore", "data", "--to", "restored"];
    let into_path = ["restore", "data", "--to", "./out"];
    let timed = |args: &[&str]| {
        let started = Instant::now();
        s.ok(args);
        started.elapsed()
    };
    let (volume_full, path_full) = (timed(&into_volume), timed(&into_path));
    eprintln!("restore into a volume: {volume_full:?}, into a path: {path_full:?}");
    let total = Instant::now();
    let schedule = delays(volume_full, KILLS / 2)
        .into_iter()
        .map(|d| (&into_volume, d))
        .chain(
            delays(path_full, KILLS / 2)
                .into_iter()
                .map(|d| (&into_path, d)),
        );
    let (mut hits, mut messy) = (0, 0);
    for (args, delay) in schedule {
        let (running, left) = kill_after(&s, start(&s, args), delay);
        hits += usize::from(running);
        messy += usize::from(!left.is_empty());
        let when = format!(
            "{} after a kill at {delay:?} that left {left:?}",
            args.join(" ")
        );
        s.ok(args);
        let got = if args[3] == "restored" {
            volume_files(&restored)
        } else {
            dir_files(&s.path("out"))
        };
        assert!(got == want, "{when}: the target differs from the snapshot");
        assert_clean(&s, &when);
    }
    eprintln!(
        "{KILLS} killed restores with their recoveries: {:?}",
        total.elapsed()
    );
    assert_schedule_bit("restore", hits, messy);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_long_backup_at_once_and_the_next_one_loses_nothing() {
    if docker_or_skip("backup_sigterm").await.is_none() {
        return;
    }
    let s = Stack::new(
        "bk-sigterm",
        r#"backup "data" {
    volume "data"
    level 19
    copy "one" path="./b1"
    copy "two" path="./b2" media="usb"
}"#,
    );
    s.up();
    // Incompressible data at level 19 keeps the compression busy for seconds.
    fill(&s, 2, 4);
    let mut child = start(&s, &["backup"]);
    // The archive's temporary appears once the volume is read and compression starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while marked(&s.path("b1")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the backup never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "still compressing");
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGTERM);
    eprintln!("backup exited {took:?} after SIGTERM");
    assert_eq!(code, Some(143), "SIGTERM is reported as 128 + 15");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_clean(&s, "after SIGTERM");
    assert_eq!(super::listed_snapshots(&s), 0, "nothing was committed");

    let out = s.ok(&["backup"]);
    assert!(out.contains("one: created snapshot"), "{out}");
    assert!(out.contains("two: copied snapshot"), "{out}");
    assert_verifies(&s, 2, "the next backup");
    s.ok(&["restore", "data", "--to", "./check"]);
    assert_eq!(
        dir_files(&s.path("check")),
        volume_files(&s.project.object("data")),
        "the snapshot holds the whole volume"
    );
    assert_clean(&s, "after the next backup");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_a_restore_stages_leaves_the_target_as_it_was() {
    if docker_or_skip("restore_sigint").await.is_none() {
        return;
    }
    let s = Stack::new("bk-sigint", HYGIENE);
    s.up();
    s.ok(&["backup"]);
    s.ok(&["restore", "data", "--to", "restored"]);
    let before = volume_files(&s.project.object("restored"));
    fill(&s, FILES, FILE_MB);
    s.ok(&["backup"]);
    let mut child = start(&s, &["restore", "data", "--to", "restored"]);
    // Signalled once the staging volume exists: the verified tree is being unpacked.
    let staging = format!("label={}", sanctuary::backend::names::LABEL_PID);
    let project = format!("label={PROJECT_LABEL}={}", s.project.name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker_lines(&[
        "volume", "ls", "-q", "--filter", &project, "--filter", &staging,
    ])
    .is_empty()
    {
        assert!(Instant::now() < deadline, "no staging volume appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGINT);
    eprintln!("restore exited {took:?} after SIGINT");
    assert_eq!(code, Some(130), "SIGINT is reported as 128 + 2");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_clean(&s, "after SIGINT");
    assert_eq!(
        volume_files(&s.project.object("restored")),
        before,
        "the target is untouched"
    );
}

/// The highest pid the kernel hands out is never in use in a test.
fn dead_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!sanctuary::debris::alive(max), "pid {max} runs");
    max
}

#[test]
fn backups_list_shows_debris_and_the_next_backup_removes_it() {
    let s = path_stack("bk-debris", "copy \"two\" path=\"./b2\"");
    std::fs::write(s.path("src/f.txt"), "data").unwrap();
    s.ok(&["backup"]);
    let mark = sanctuary::debris::MARK;
    let dead = s.path(&format!("b1/{mark}{}-Xy7q", dead_pid()));
    std::fs::write(&dead, vec![0u8; 1234]).unwrap();
    // This process runs: what it owns is live work, never debris.
    let live = s.path(&format!("b2/{mark}{}-Ab3c", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();

    let text = s.ok(&["backups", "list"]);
    assert!(
        text.contains(
            "debris in files one: 1 temporary file of interrupted runs, 1234 bytes \
             (removed by the next backup, restore or prune)"
        ),
        "{text}"
    );
    assert!(!text.contains("debris in files two"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(s.ok(&["--json", "backups", "list"]).trim()).unwrap();
    let debris: Vec<_> = json["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["copy"].as_str().unwrap().to_string(), c["debris"].clone()))
        .collect();
    assert_eq!(
        debris,
        vec![
            (
                "one".into(),
                serde_json::json!({"entries": 1, "bytes": 1234})
            ),
            ("two".into(), serde_json::json!({"entries": 0, "bytes": 0})),
        ]
    );
    assert!(dead.exists(), "listing removes nothing");

    let out = s.ok(&["backup"]);
    assert!(
        out.contains("removed what interrupted runs left: 1 temporary file (1234 bytes)"),
        "{out}"
    );
    assert!(!dead.exists(), "the dead process's temporary is gone");
    assert!(live.exists(), "the live process's temporary stays");
    assert!(!s.ok(&["backups", "list"]).contains("debris in"));
}

#[tokio::test(flavor = "multi_thread")]
async fn helpers_of_dead_processes_go_with_the_next_backup_and_live_ones_stay() {
    if docker_or_skip("helper_sweep").await.is_none() {
        return;
    }
    let s = Stack::new("bk-helper-sweep", HYGIENE);
    s.up();
    let host = sanctuary::debris::host().to_string();
    let me = std::process::id().to_string();
    let dead = dead_pid().to_string();
    // (suffix, pid, host): a dead process here, a live one here, a dead pid elsewhere.
    let owners = [
        ("dead", dead.as_str(), host.as_str()),
        ("live", me.as_str(), host.as_str()),
        ("elsewhere", dead.as_str(), "another-machine"),
    ];
    for (suffix, pid, on) in owners {
        let labels = [
            format!("{PROJECT_LABEL}={}", s.project.name),
            format!("{}={pid}", sanctuary::backend::names::LABEL_PID),
            format!("{}={on}", sanctuary::backend::names::LABEL_HOST),
        ];
        let mut volume = Command::new("docker");
        volume.args(["volume", "create"]);
        let mut container = Command::new("docker");
        container.args([
            "create",
            "--name",
            &s.project.object(&format!("helper-{suffix}")),
        ]);
        for l in &labels {
            volume.args(["--label", l]);
            container.args(["--label", l]);
        }
        volume.arg(s.project.object(&format!("staging-{suffix}")));
        container.args([test_image().as_str(), "true"]);
        assert!(volume.output().unwrap().status.success());
        assert!(container.output().unwrap().status.success());
    }
    let out = s.ok(&["backup"]);
    assert!(
        out.contains("1 helper container, 1 staging volume"),
        "{out}"
    );
    let mut left = strays(&s);
    left.sort();
    let name = |kind: &str, what: &str| format!("{kind} {}", s.project.object(what));
    assert_eq!(
        left,
        vec![
            name("container", "helper-elsewhere"),
            name("container", "helper-live"),
            name("volume", "staging-elsewhere"),
            name("volume", "staging-live"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_quiescing_finishes_the_stop_then_brings_the_service_back() {
    if docker_or_skip("backup_sigterm_quiesce").await.is_none() {
        return;
    }
    let s = Stack::new(
        "bk-sigquiesce",
        r#"backup "data" {
    volume "data"
    quiesce "stop" "writer"
    copy "one" path="./b1"
}"#,
    );
    s.up();
    let mut child = start(&s, &["backup"]);
    // The journal is written just before the service is stopped; the writer's `sleep` is
    // pid 1 and ignores SIGTERM, so the stop lasts its whole stop-timeout (10 s).
    let journal = s.path(".sanctuary/backup/data.quiesced.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !journal.exists() {
        assert!(Instant::now() < deadline, "the backup never quiesced");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.running(), "the stop is still waiting for the service");
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGTERM);
    eprintln!("backup exited {took:?} after SIGTERM during the quiesce stop");
    assert_eq!(code, Some(143), "SIGTERM is reported as 128 + 15");
    // The stop ran to its end (it is not cut), and nothing after it was started.
    assert!(
        took > Duration::from_secs(5),
        "exited after {took:?}: the stop was cut"
    );
    assert!(took < Duration::from_secs(25), "took {took:?} to stop");
    assert!(s.running(), "the quiesced service was brought back");
    assert!(!journal.exists(), "the quiesce journal is cleared");
    assert_eq!(super::listed_snapshots(&s), 0, "nothing was committed");
    assert_clean(&s, "after SIGTERM while quiescing");
}
