//! The offsite backup copy against a real sftp remote, through the real binary: a host-path
//! backup with a directory copy and an rclone copy whose remote (`offsite`) is defined only
//! by `RCLONE_CONFIG_OFFSITE_*` variables, the way a user configures a named remote without an
//! rclone config file.
//!
//! The server comes from `SANCTUARY_TEST_SFTP=HOST:PORT:USER:KEYFILE` (what
//! `scripts/ensure-sshd.sh` prints). Without it the tests skip loudly, unless
//! `SANCTUARY_REQUIRE_SFTP=1`, where they fail. The tests look at the remote only through
//! plain `rclone` commands, never through sanctuary's own store, and each one works in its own
//! remote directory, purged by a guard even when the test fails. A host-path backup needs no
//! Docker engine, so neither do these tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Where the sftp server is, parsed from `SANCTUARY_TEST_SFTP`.
#[derive(Debug, Clone)]
struct Server {
    host: String,
    port: String,
    user: String,
    key_file: String,
}

const REQUIRE: &str = "SANCTUARY_REQUIRE_SFTP";
const SERVER: &str = "SANCTUARY_TEST_SFTP";

fn parse_server(text: &str) -> Option<Server> {
    let mut parts = text.splitn(4, ':');
    let server = Server {
        host: parts.next()?.to_string(),
        port: parts.next()?.to_string(),
        user: parts.next()?.to_string(),
        key_file: parts.next()?.to_string(),
    };
    let complete = [&server.host, &server.port, &server.user, &server.key_file]
        .iter()
        .all(|p| !p.is_empty());
    complete.then_some(server)
}

fn rclone_runs() -> bool {
    Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The server, or `None` after a loud `SKIPPED` line; with `SANCTUARY_REQUIRE_SFTP=1` a
/// missing server or rclone fails the test instead.
fn sftp_or_skip(test: &str) -> Option<Server> {
    let required = std::env::var(REQUIRE).as_deref() == Ok("1");
    let problem = match std::env::var(SERVER) {
        Err(_) => format!("{SERVER} is not set (run scripts/ensure-sshd.sh)"),
        Ok(text) => match parse_server(&text) {
            None => format!("{SERVER}={text:?} is not HOST:PORT:USER:KEYFILE"),
            Some(server) if rclone_runs() => return Some(server),
            Some(_) => "rclone cannot be run".to_string(),
        },
    };
    if required {
        panic!("{test}: an sftp server is required ({REQUIRE}=1) but {problem}");
    }
    // The real stderr: the harness captures `eprintln!` and would hide a passing test's skip.
    let line = format!("SKIPPED (no sftp server): {test}: {problem}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// A project directory with a path backup whose copies include the sftp remote `offsite`,
/// and a unique remote directory that is purged on drop.
struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    /// `sanctuary-test/<test>-<pid>-<n>`, relative to the remote user's home.
    remote_root: String,
    /// Overrides of the remote's variables for this setup (a wrong port, another key).
    remote_env: Vec<(String, String)>,
}

impl Setup {
    /// Copies: `local` (`./b1`), `offsite` (the sftp remote), then `extra_copies`.
    fn new(test: &str, server: Server, extra_copies: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let remote_root = format!("sanctuary-test/{test}-{}-{n}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/sub")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "alpha\n").unwrap();
        std::fs::write(dir.path().join("src/sub/b.bin"), pseudo_random(200_000)).unwrap();
        let text = format!(
            r#"project "sftp-{n}"
backup "files" {{
    path "./src"
    copy "local" path="./b1" media="disk"
    copy "offsite" rclone="offsite:{remote_root}/files" offsite=true
    {extra_copies}
    keep last=1
}}
"#
        );
        std::fs::write(dir.path().join("Sanctuary.kdl"), text).unwrap();
        Setup {
            dir,
            server,
            remote_root,
            remote_env: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The remote path of the backup's copy, as the manifest names it.
    fn remote(&self) -> String {
        format!("offsite:{}/files", self.remote_root)
    }

    /// The environment that defines the remote `offsite`, plus this setup's overrides.
    fn env(&self) -> Vec<(String, String)> {
        let s = &self.server;
        let mut env: Vec<(String, String)> = [
            ("RCLONE_CONFIG_OFFSITE_TYPE", "sftp"),
            ("RCLONE_CONFIG_OFFSITE_HOST", &s.host),
            ("RCLONE_CONFIG_OFFSITE_PORT", &s.port),
            ("RCLONE_CONFIG_OFFSITE_USER", &s.user),
            ("RCLONE_CONFIG_OFFSITE_KEY_FILE", &s.key_file),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // No config file: the remote exists only in the environment.
        let config = self.path("no-rclone.conf");
        env.push((
            "RCLONE_CONFIG".into(),
            config.to_string_lossy().into_owned(),
        ));
        for (k, v) in &self.remote_env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RCLONE_SFTP_KNOWN_HOSTS_FILE")
            .envs(self.env());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs sanctuary and asserts success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        crate::support::success_stdout(args, &self.run(args))
    }

    /// Runs plain rclone against the remote and asserts success, returning stdout.
    fn rclone(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command("rclone")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let (Some(bytes), Some(mut sin)) = (stdin, child.stdin.take()) {
            sin.write_all(bytes).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The file names in the remote copy, sorted.
    fn remote_files(&self) -> Vec<String> {
        let out = self
            .command("rclone")
            .args(["lsjson", &self.remote()])
            .output();
        let out = out.unwrap();
        if out.status.code() == Some(3) {
            return Vec::new(); // the directory does not exist (yet)
        }
        assert!(out.status.success(), "{out:?}");
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut names: Vec<String> = entries
            .iter()
            .map(|e| e["Name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    fn remote_file(&self, name: &str) -> Vec<u8> {
        self.rclone(&["cat", &format!("{}/{name}", self.remote())], None)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Best effort, and never a panic while a failing test is already unwinding.
        let _ = self
            .command("rclone")
            .args(["purge", &format!("offsite:{}", self.remote_root)])
            .output();
    }
}

/// Incompressible bytes, so the archive is not trivially small.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn local_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn with_suffix(names: &[String], suffix: &str) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.ends_with(suffix))
        .cloned()
        .collect()
}

/// `backups list --json`: the snapshot ids of one copy.
fn listed_ids(s: &Setup, copy: &str) -> Vec<String> {
    let out = s.ok(&["--json", "backups", "list"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let entry = v["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["copy"] == copy)
        .unwrap_or_else(|| panic!("no copy {copy} in {out}"));
    assert!(entry.get("error").is_none(), "{entry}");
    entry["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Flips one byte in the middle of `bytes`.
fn flipped(mut bytes: Vec<u8>) -> Vec<u8> {
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    bytes
}

fn assert_restored(s: &Setup, target: &Path) {
    assert_eq!(
        std::fs::read(target.join("a.txt")).unwrap(),
        std::fs::read(s.path("src/a.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read(target.join("sub/b.bin")).unwrap(),
        std::fs::read(s.path("src/sub/b.bin")).unwrap()
    );
}

#[test]
fn backup_writes_byte_identical_files_to_the_sftp_remote_which_lists_and_verifies() {
    let Some(server) = sftp_or_skip("sftp_backup_round_trip") else {
        return;
    };
    let s = Setup::new("round-trip", server, "");
    assert!(s.remote_files().is_empty(), "a fresh remote directory");

    let out = s.ok(&["backup"]);
    assert!(out.contains("local: created snapshot"), "{out}");
    assert!(out.contains("offsite: copied snapshot"), "{out}");

    let local = local_files(&s.path("b1"));
    let remote = s.remote_files();
    let archives = with_suffix(&remote, ".tar.zst");
    let manifests = with_suffix(&remote, ".json");
    assert_eq!(archives, with_suffix(&local, ".tar.zst"), "{remote:?}");
    assert_eq!(manifests, with_suffix(&local, ".json"), "{remote:?}");
    assert_eq!((archives.len(), manifests.len()), (1, 1), "{remote:?}");
    for name in archives.iter().chain(&manifests) {
        assert_eq!(
            s.remote_file(name),
            std::fs::read(s.path("b1").join(name)).unwrap(),
            "{name} is byte-identical on the remote"
        );
    }

    let ids = listed_ids(&s, "offsite");
    assert_eq!(ids.len(), 1);
    assert_eq!(ids, listed_ids(&s, "local"), "the same snapshot in both");
    let table = s.ok(&["backups", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("offsite") && l.contains(&ids[0][..12])),
        "{table}"
    );

    for level in [&["backups", "verify"][..], &["backups", "verify", "--full"]] {
        let out = s.ok(level);
        assert!(
            out.contains(&format!("files offsite {}: ok", &ids[0][..12]))
                || out.contains(&format!("files offsite {}: ok", ids[0])),
            "{level:?}: {out}"
        );
        assert!(!out.contains("FAILED"), "{level:?}: {out}");
    }

    // Unchanged source: nothing new is sent.
    let again = s.ok(&["backup"]);
    assert!(again.contains("offsite: unchanged, snapshot"), "{again}");
    assert_eq!(with_suffix(&s.remote_files(), ".json").len(), 1);
}

#[test]
fn a_flipped_byte_on_the_remote_is_caught_and_restore_skips_it() {
    let Some(server) = sftp_or_skip("sftp_remote_corrupt") else {
        return;
    };
    // A third copy after the remote, so a restore that gets past the remote has somewhere to go.
    let s = Setup::new(
        "remote-corrupt",
        server,
        r#"copy "usb" path="./b2" media="usb""#,
    );
    s.ok(&["backup"]);
    let archive = with_suffix(&s.remote_files(), ".tar.zst").remove(0);
    let bad = flipped(s.remote_file(&archive));
    s.rclone(&["rcat", &format!("{}/{archive}", s.remote())], Some(&bad));
    assert_eq!(s.remote_file(&archive), bad, "the remote holds the damage");

    let out = s.run(&["backups", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("files offsite") && l.contains("FAILED")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("files local") && l.ends_with(": ok")),
        "{text}"
    );

    // With the local copy gone, restore must skip the damaged remote and use the usb copy.
    std::fs::remove_dir_all(s.path("b1")).unwrap();
    let target = s.path("restored");
    let restored = s.ok(&["restore", "files", "--to", target.to_str().unwrap()]);
    assert!(restored.contains("skipped copy"), "{restored}");
    assert!(
        restored.contains(&s.remote()),
        "names the remote: {restored}"
    );
    assert!(restored.contains("b2"), "{restored}");
    assert_restored(&s, &target);
}

#[test]
fn a_flipped_byte_in_the_local_copy_is_survived_by_restoring_from_sftp() {
    let Some(server) = sftp_or_skip("sftp_local_corrupt") else {
        return;
    };
    let s = Setup::new("local-corrupt", server, "");
    s.ok(&["backup"]);
    let archive = s
        .path("b1")
        .join(with_suffix(&local_files(&s.path("b1")), ".tar.zst").remove(0));
    std::fs::write(&archive, flipped(std::fs::read(&archive).unwrap())).unwrap();

    let target = s.path("restored");
    let restored = s.ok(&["restore", "files", "--to", target.to_str().unwrap()]);
    assert!(restored.contains("skipped copy"), "{restored}");
    assert!(
        restored.contains(&format!("from rclone:{}", s.remote())),
        "{restored}"
    );
    assert_restored(&s, &target);
}

#[test]
fn prune_removes_old_snapshots_from_the_remote_too() {
    let Some(server) = sftp_or_skip("sftp_prune") else {
        return;
    };
    let s = Setup::new("prune", server, "");
    for i in 0..3 {
        std::fs::write(s.path("src/a.txt"), format!("version {i}")).unwrap();
        s.ok(&["backup"]);
        // Snapshot times have whole seconds: keep "newest" unambiguous.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(with_suffix(&s.remote_files(), ".tar.zst").len(), 3);
    let out = s.ok(&["backups", "prune"]);
    assert!(out.contains("files offsite"), "{out}");
    let remote = s.remote_files();
    assert_eq!(with_suffix(&remote, ".json").len(), 1, "{remote:?}");
    assert_eq!(
        with_suffix(&remote, ".tar.zst"),
        with_suffix(&local_files(&s.path("b1")), ".tar.zst"),
        "the remote keeps the same snapshot as the local copy"
    );
    let target = s.path("restored");
    std::fs::remove_dir_all(s.path("b1")).unwrap();
    let restored = s.ok(&["restore", "files", "--to", target.to_str().unwrap()]);
    assert!(restored.contains("from rclone:"), "{restored}");
    assert_eq!(
        std::fs::read_to_string(target.join("a.txt")).unwrap(),
        "version 2"
    );
}

/// A port on loopback that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `backup` with the remote made unusable by `env`: exit 1, the copy named with rclone's
/// reason, and the local copy written all the same.
fn assert_remote_failure_is_reported(test: &str, env: Vec<(String, String)>, reason: &str) {
    let Some(server) = sftp_or_skip(test) else {
        return;
    };
    let mut s = Setup::new(test, server, "");
    s.remote_env = env;
    // One attempt each, so the failure comes quickly.
    s.remote_env.push(("RCLONE_RETRIES".into(), "1".into()));
    s.remote_env
        .push(("RCLONE_LOW_LEVEL_RETRIES".into(), "1".into()));
    let out = s.run(&["backup"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = stdout
        .lines()
        .find(|l| l.contains("offsite: failed:"))
        .unwrap_or_else(|| panic!("no failure line for the copy: {stdout}"));
    assert!(line.contains(&s.remote()), "names the remote: {line}");
    assert!(line.contains(reason), "says why: {line}");
    assert!(stdout.contains("local: created snapshot"), "{stdout}");
    assert_eq!(with_suffix(&local_files(&s.path("b1")), ".json").len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not every copy holds snapshot"), "{stderr}");
}

#[test]
fn an_unreachable_remote_names_the_copy_and_the_local_copy_is_still_written() {
    let port = closed_port().to_string();
    assert_remote_failure_is_reported(
        "unreachable",
        vec![("RCLONE_CONFIG_OFFSITE_PORT".into(), port)],
        "connection refused",
    );
}

#[test]
fn a_refused_key_names_the_copy_and_the_local_copy_is_still_written() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("stranger");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        // ssh-keygen comes with the ssh client; without it the server check above decides.
        assert_ne!(
            std::env::var(REQUIRE).as_deref(),
            Ok("1"),
            "ssh-keygen is needed to make an unauthorized key"
        );
        return;
    }
    assert_remote_failure_is_reported(
        "refused-key",
        vec![(
            "RCLONE_CONFIG_OFFSITE_KEY_FILE".into(),
            key.to_string_lossy().into_owned(),
        )],
        "unable to authenticate",
    );
}

#[test]
fn the_server_variable_is_parsed_strictly() {
    let s = parse_server("127.0.0.1:2222:root:/tmp/k").unwrap();
    assert_eq!(
        (
            s.host.as_str(),
            s.port.as_str(),
            s.user.as_str(),
            s.key_file.as_str()
        ),
        ("127.0.0.1", "2222", "root", "/tmp/k")
    );
    assert!(parse_server("127.0.0.1:2222:root").is_none());
    assert!(parse_server("127.0.0.1::root:/k").is_none());
}
