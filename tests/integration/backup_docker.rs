//! Backups against a real Docker engine, through the real binary: quiescing a live service,
//! unchanged sources, archives that GNU tar reads, corruption caught and survived, a killed
//! backup, retention, archives made by other tools restored into volumes, and a whole
//! disaster-recovery drill. Crash hygiene (kills, signals, debris) is in [`hygiene`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::docker_support::{
    docker_lines, docker_or_skip, write_busybox_context, TestProject, PROJECT_LABEL,
};

mod hygiene;

/// A project directory with a manifest, and the project's cleanup guard.
struct Stack {
    dir: tempfile::TempDir,
    project: TestProject,
}

impl Stack {
    /// A busybox image, a `data` volume, a `writer` service that writes `hello` into it and
    /// then sleeps, and `backup_block` appended.
    fn new(test: &str, backup_block: &str) -> Self {
        let project = TestProject::new(test);
        let dir = tempfile::tempdir().unwrap();
        write_busybox_context(&dir.path().join("docker")).unwrap();
        let text = format!(
            r#"project "{name}"
image "bb" {{
    context "docker"
}}
volume "data"
service "writer" {{
    image "bb"
    command "sh" "-c" "[ -f /data/a.txt ] || echo hello > /data/a.txt; [ -f /data/sub/b.txt ] || {{ mkdir -p /data/sub; echo deep > /data/sub/b.txt; }}; exec sleep 3600"
    mount "data" "/data"
}}
{backup_block}
"#,
            name = project.name
        );
        std::fs::write(dir.path().join("Sanctuary.kdl"), text).unwrap();
        Stack { dir, project }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Runs and asserts success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        crate::support::success_stdout(args, &self.run(args))
    }

    fn container(&self) -> String {
        self.project.object("writer")
    }

    fn running(&self) -> bool {
        docker_lines(&["inspect", "-f", "{{.State.Running}}", &self.container()])
            == vec!["true".to_string()]
    }

    fn exec(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.container(), "sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Applies and waits until the writer has written its files.
    fn up(&self) {
        self.ok(&["apply"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.exec("cat /data/sub/b.txt") != "deep" {
            assert!(
                Instant::now() < deadline,
                "the writer never wrote its files"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v.sort();
    v
}

const TWO_COPIES: &str = r#"backup "data" {
    volume "data"
    quiesce "stop" "writer"
    copy "one" path="./b1"
    copy "two" path="./b2" media="usb"
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn live_volume_backup_quiesces_is_idempotent_and_gnu_tar_reads_it() {
    if docker_or_skip("live_volume_backup").await.is_none() {
        return;
    }
    let s = Stack::new("bk-live", TWO_COPIES);
    s.up();
    let first = s.ok(&["backup"]);
    assert!(first.contains("one: created snapshot"), "{first}");
    assert!(first.contains("two: copied snapshot"), "{first}");
    assert!(
        s.running(),
        "the stopped service runs again after the backup"
    );

    let again = s.ok(&["backup", "data"]);
    assert!(again.contains("one: unchanged, snapshot"), "{again}");
    assert!(again.contains("two: unchanged, snapshot"), "{again}");
    assert_eq!(
        files_with(&s.path("b1"), ".json").len(),
        1,
        "no new snapshot"
    );

    // Plain GNU tar restores the archive, and every file matches the manifest's sha256.
    let archive = &files_with(&s.path("b1"), ".tar.zst")[0];
    let out = s.path("gnu");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files_with(&s.path("b1"), ".json")[0]).unwrap())
            .unwrap();
    let mut checked = 0;
    for e in manifest["entries"].as_array().unwrap() {
        if let Some(sha) = e["sha256"].as_str() {
            let bytes = std::fs::read(out.join(e["path"].as_str().unwrap())).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "a.txt and sub/b.txt");
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "hello\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_still_restarts_the_stopped_service() {
    if docker_or_skip("failed_backup_restarts").await.is_none() {
        return;
    }
    // The first copy's directory lies under a regular file: it cannot be created.
    let s = Stack::new(
        "bk-fail",
        r#"backup "data" {
    volume "data"
    quiesce "stop" "writer"
    copy "one" path="./blocker/b1"
}"#,
    );
    std::fs::write(s.path("blocker"), "not a directory").unwrap();
    s.up();
    let out = s.run(&["backup"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(s.running(), "the service runs again after a failed backup");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_is_caught_and_restore_uses_the_other_copy() {
    if docker_or_skip("flipped_byte").await.is_none() {
        return;
    }
    let s = Stack::new("bk-flip", TWO_COPIES);
    s.up();
    s.exec("chown 1234:5678 /data/sub/b.txt; chmod 640 /data/sub/b.txt");
    s.ok(&["backup"]);
    let archive = &files_with(&s.path("b1"), ".tar.zst")[0];
    let mut bytes = std::fs::read(archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(archive, bytes).unwrap();

    let out = s.run(&["backups", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("data one") && text.contains("FAILED"),
        "{text}"
    );
    assert!(text.contains("data two") && text.contains(": ok"), "{text}");

    // Damage the live data, then restore: the first copy is refused, the second used.
    s.exec("echo changed > /data/a.txt; rm -r /data/sub");
    let restored = s.ok(&["restore", "data"]);
    assert!(restored.contains("skipped copy"), "{restored}");
    assert!(restored.contains("b2"), "{restored}");
    assert!(s.running(), "consumers run again after the restore");
    assert_eq!(s.exec("cat /data/a.txt"), "hello");
    assert_eq!(s.exec("cat /data/sub/b.txt"), "deep");
    assert_eq!(
        s.exec("stat -c '%u:%g %a' /data/sub/b.txt"),
        "1234:5678 640",
        "owner and mode survive the staging volume and the swap"
    );
    let staging = docker_lines(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label={PROJECT_LABEL}={}", s.project.name),
        "--filter",
        &format!("label={}", sanctuary::backend::names::LABEL_PID),
    ]);
    assert!(
        staging.is_empty(),
        "the staging volume is gone after the swap: {staging:?}"
    );
}

#[test]
fn a_gnu_tar_archive_restores_through_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f.txt"), "from gnu tar").unwrap();
    let archive = dir.path().join("a.tar.zst");
    let st = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let target = dir.path().join("restored");
    let report = sanctuary::backup::restore_foreign_archive(
        &archive,
        &target,
        sanctuary::backup::SpecialBits::Clear,
        &sanctuary::backup::Stop::never(),
    )
    .unwrap();
    assert!(!report.verified);
    assert_eq!(
        std::fs::read_to_string(target.join("d/f.txt")).unwrap(),
        "from gnu tar"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_archive_restored_into_a_volume_has_no_fifo_or_setuid_bit() {
    if docker_or_skip("foreign_into_volume").await.is_none() {
        return;
    }
    let s = Stack::new(
        "bk-foreign-special",
        r#"backup "data" {
    volume "data"
    copy "one" path="./b1"
}"#,
    );
    s.up();
    crate::support::foreign_archive(&s.path("foreign.tar.zst"), 2);
    let out = s.ok(&["restore", "data", "--archive", "foreign.tar.zst"]);
    assert!(
        out.contains("  skipped 3 entries: 2 fifo, 1 character device"),
        "{out}"
    );
    assert!(out.contains("    bin/tool"), "{out}");
    // The writer may already be writing its own files again: look only at the archive's.
    assert_eq!(
        s.exec(
            "stat -c %a /data/bin/tool; cat /data/readme; \
             for f in pipe-00 pipe-01 dev; do [ -e /data/$f ] && echo $f; done"
        ),
        "755\nhello",
        "the engine unpacked no fifo or device, and the setuid bit is gone"
    );
}

/// A path backup (no Docker needed) with a slow level, so there is time to kill it.
fn path_stack(test: &str, extra: &str) -> Stack {
    let project = TestProject::new(test);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let text = format!(
        r#"project "{name}"
backup "files" {{
    path "./src"
    copy "one" path="./b1"
    {extra}
}}
"#,
        name = project.name
    );
    std::fs::write(dir.path().join("Sanctuary.kdl"), text).unwrap();
    Stack { dir, project }
}

fn listed_snapshots(s: &Stack) -> usize {
    let out = s.ok(&["--json", "backups", "list"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["snapshots"].as_array().map_or(0, Vec::len))
        .sum()
}

#[test]
fn sigkill_during_a_backup_leaves_no_complete_snapshot() {
    let s = path_stack("bk-kill", "level 19");
    // Incompressible data at level 19 takes seconds to compress.
    let mut data = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(s.path("src/big.bin"), &data).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .arg("backup")
        .current_dir(s.dir.path())
        .spawn()
        .unwrap();
    // Kill once the archive is being written.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(s.path("b1")).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            Instant::now() < deadline,
            "the backup never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the backup was killed before finishing");
    assert_eq!(listed_snapshots(&s), 0, "no snapshot lists as complete");
    // And the next backup completes normally.
    s.ok(&["backup"]);
    assert_eq!(listed_snapshots(&s), 1);
}

#[test]
fn prune_applies_the_keep_policy() {
    let s = path_stack("bk-prune", "keep last=1");
    for i in 0..3 {
        std::fs::write(s.path("src/f.txt"), format!("version {i}")).unwrap();
        s.ok(&["backup"]);
        // Snapshot times have whole seconds: keep "newest" unambiguous.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(listed_snapshots(&s), 3);
    let dry = s.ok(&["backups", "prune", "--dry-run"]);
    assert!(dry.contains("would delete 2 snapshot(s)"), "{dry}");
    assert_eq!(listed_snapshots(&s), 3, "a dry run deletes nothing");
    s.ok(&["backups", "prune"]);
    assert_eq!(listed_snapshots(&s), 1);
    // The one kept is the newest.
    let target = s.path("restored");
    s.ok(&["restore", "files", "--to", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(target.join("f.txt")).unwrap(),
        "version 2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disaster_recovery_drill() {
    if docker_or_skip("disaster_recovery").await.is_none() {
        return;
    }
    let s = Stack::new("bk-dr", TWO_COPIES);
    s.up();
    s.exec("echo precious > /data/a.txt");
    let destroyed = s.ok(&["destroy", "--volumes"]);
    assert!(destroyed.contains("(verified)"), "{destroyed}");
    let volume = s.project.object("data");
    assert!(
        docker_lines(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]).is_empty(),
        "the volume is gone"
    );
    let restored = s.ok(&["restore", "--all"]);
    assert!(restored.contains("restored data"), "{restored}");
    s.ok(&["apply"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.exec("cat /data/a.txt") != "precious" {
        assert!(
            Instant::now() < deadline,
            "the service never saw its data again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Yields `data`, then fails the way a broken disk would.
struct FailsAfter {
    data: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.data.read(buf)? {
            0 => Err(std::io::Error::other("the spool disk failed")),
            n => Ok(n),
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_stream_that_breaks_while_staging_touches_nothing() {
    let Some(backend) = docker_or_skip("staging_breaks").await else {
        return;
    };
    let s = Stack::new("bk-stage", TWO_COPIES);
    s.up();
    let volume = s.project.object("data");
    // The start of a valid archive, cut short by a read error.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(256 * 1024);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "a.txt", &vec![b'x'; 256 * 1024][..])
        .unwrap();
    let mut bytes = tar.into_inner().unwrap();
    bytes.truncate(100 * 1024);
    let reader = FailsAfter {
        data: std::io::Cursor::new(bytes),
    };
    let err = sanctuary::backup::volume_io::stage_volume(
        &backend,
        &s.project.name,
        "data",
        &volume,
        reader,
        &sanctuary::backup::Stop::never(),
    )
    .await
    .unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("the spool disk failed"), "{text}");
    let staging = sanctuary::backup::volume_io::staging_volume(&volume);
    assert!(
        docker_lines(&["volume", "ls", "-q", "--filter", &format!("name={staging}")]).is_empty(),
        "a broken staging volume is removed"
    );
    assert!(s.running(), "the consumer was never stopped");
    assert_eq!(
        s.exec("cat /data/a.txt"),
        "hello",
        "the live volume is untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn services_a_killed_backup_left_stopped_come_back_with_the_next_backup() {
    if docker_or_skip("killed_backup_resume").await.is_none() {
        return;
    }
    let s = Stack::new(
        "bk-journal",
        r#"backup "data" {
    volume "data"
    quiesce "stop" "writer"
    level 19
    copy "one" path="./b1"
}"#,
    );
    s.up();
    // Incompressible data at level 19 keeps the backup busy for seconds.
    s.exec("head -c 40000000 /dev/urandom > /data/big.bin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .arg("backup")
        .current_dir(s.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(s.path("b1")).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            Instant::now() < deadline,
            "the backup never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!s.running(), "killed while the writer was stopped");
    let journal = s.path(".sanctuary/backup/data.quiesced.json");
    assert!(journal.is_file(), "the stopped service was journalled");

    s.ok(&["backup"]);
    assert!(s.running(), "the next backup brought the writer back");
    assert!(!journal.exists(), "the journal is cleared once resumed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gnu_tar_archive_restores_into_a_live_volume_through_the_cli() {
    if docker_or_skip("foreign_archive_volume").await.is_none() {
        return;
    }
    let s = Stack::new("bk-foreign", TWO_COPIES);
    s.up();
    let made = s.path("made");
    std::fs::create_dir_all(made.join("sub")).unwrap();
    std::fs::write(made.join("a.txt"), "from gnu tar\n").unwrap();
    std::fs::write(made.join("sub/b.txt"), "deeper\n").unwrap();
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(s.path("by-tar.tar.zst"))
        .arg("-C")
        .arg(&made)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let out = s.ok(&["restore", "data", "--archive", "by-tar.tar.zst"]);
    assert!(out.contains("unverified"), "{out}");
    assert!(s.running(), "the consumer runs again");
    assert_eq!(s.exec("cat /data/a.txt"), "from gnu tar");
    assert_eq!(s.exec("cat /data/sub/b.txt"), "deeper");
}
