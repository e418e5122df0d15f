//! `sanctuary events` across a daemon restart, on a Docker daemon of the test's own (its own
//! data root, exec root, pidfile and socket, and its own network namespace, so nothing it
//! does to bridges or firewall rules reaches the shared daemon's network): the watch
//! says the engine went away, resumes when it is back, and an event that happened before it
//! had reconnected is still delivered.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::apply_docker::docker_available;

/// A dockerd of its own under a temp dir, stopped and removed on drop.
struct OwnDaemon {
    root: tempfile::TempDir,
    process: Option<Child>,
}

impl OwnDaemon {
    fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("sanct-dd")
            .tempdir()
            .unwrap();
        let mut d = OwnDaemon {
            root,
            process: None,
        };
        d.up();
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path("sock").display())
    }

    fn up(&mut self) {
        let log = std::fs::File::create(self.path("log")).unwrap();
        // `unshare --net` execs dockerd in a network namespace of its own (the pid is
        // dockerd's): without it, `--bridge=none` would delete the host's docker0.
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--data-root")
            .arg(self.path("data"))
            .arg("--exec-root")
            .arg(self.path("exec"))
            .arg("--pidfile")
            .arg(self.path("pid"))
            .args(["-H", &self.host()])
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.docker(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the test's dockerd did not start:\n{}",
                std::fs::read_to_string(self.path("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the daemon as a service manager would (SIGTERM, then waits).
    fn down(&mut self) {
        if let Some(mut child) = self.process.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for OwnDaemon {
    fn drop(&mut self) {
        self.down();
    }
}

fn next_until(
    lines: &Receiver<serde_json::Value>,
    seen: &mut Vec<serde_json::Value>,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(&wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(v) => seen.push(v),
            Err(_) => panic!("never saw {what}; saw {seen:#?}"),
        }
    }
}

fn watch(dir: &Path, host: &str) -> (Child, Receiver<serde_json::Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["--json", "events"])
        .current_dir(dir)
        .env("DOCKER_HOST", host)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = crate::docker_support::json_lines(child.stdout.take().unwrap());
    (child, rx)
}

#[test]
fn events_ride_out_a_daemon_restart_and_lose_nothing_in_between() {
    if !docker_available("events_restart") {
        return;
    }
    let mut daemon = OwnDaemon::start();
    let tmp = tempfile::tempdir().unwrap();
    let project = format!("evrestart{}", std::process::id());
    std::fs::write(
        tmp.path().join("Sanctuary.kdl"),
        format!("project \"{project}\"\nvolume \"data\"\n"),
    )
    .unwrap();
    let volume = format!("{project}-data");
    let (mut child, lines) = watch(tmp.path(), &daemon.host());
    std::thread::sleep(Duration::from_millis(800));
    let mut seen = Vec::new();
    assert!(daemon
        .docker(&["volume", "create", &volume])
        .status
        .success());
    // Another project's volume is not this project's event.
    assert!(daemon
        .docker(&["volume", "create", "someone-else"])
        .status
        .success());
    next_until(&lines, &mut seen, "the volume's create", |e| {
        e["action"] == "create" && e["object"] == serde_json::json!(volume)
    });

    let down_at = Instant::now();
    daemon.down();
    next_until(&lines, &mut seen, "engine-lost", |e| {
        e["event"] == "engine-lost"
    });
    daemon.up();
    // At once, before the watch can have reconnected (it retries every second).
    assert!(daemon.docker(&["volume", "rm", &volume]).status.success());
    next_until(&lines, &mut seen, "engine-back", |e| {
        e["event"] == "engine-back"
    });
    next_until(&lines, &mut seen, "the volume's destroy", |e| {
        e["action"] == "destroy" && e["object"] == serde_json::json!(volume)
    });
    eprintln!("events: the daemon was away for {:?}", down_at.elapsed());
    assert!(
        seen.iter().all(|e| e["object"] != "someone-else"),
        "{seen:#?}"
    );
    let creates = seen
        .iter()
        .filter(|e| e["action"] == "create" && e["object"] == serde_json::json!(volume))
        .count();
    assert_eq!(
        creates, 1,
        "nothing is repeated after the reconnect: {seen:#?}"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let _ = daemon.docker(&["volume", "rm", "someone-else"]);
}

#[test]
fn supervise_rides_out_a_daemon_restart_and_acts_on_what_happened_meanwhile() {
    if !docker_available("supervise_restart") {
        return;
    }
    let mut daemon = OwnDaemon::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::docker_support::write_busybox_context(&dir.join("ctx")).unwrap();
    let project = format!("suprestart{}", std::process::id());
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        format!(
            r#"project "{project}"
image "bb" {{
    context "ctx"
}}
service "web" {{
    image "bb"
    command "sh" "-c" "touch /ok; exec sleep 100000"
    restart "unless-stopped"
    stop-timeout "1s"
    health {{
        cmd "test" "-f" "/ok"
        interval "1s"
        retries 1
    }}
}}
"#
        ),
    )
    .unwrap();
    let host = daemon.host();
    let sanct = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sanctuary"))
            .args(args)
            .current_dir(dir)
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap()
    };
    let out = sanct(&["apply", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["--json", "supervise", "--interval", "1s"])
        .current_dir(dir)
        .env("DOCKER_HOST", daemon.host())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = crate::docker_support::json_lines(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    next_until(&lines, &mut seen, "started", |e| e["event"] == "started");
    std::thread::sleep(Duration::from_millis(800));

    daemon.down();
    next_until(&lines, &mut seen, "engine-lost", |e| {
        e["event"] == "engine-lost"
    });
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".sanctuary/supervisor.json")).unwrap())
            .unwrap();
    assert!(status["degraded"].is_string(), "{status}");

    // The daemon brings web back (unless-stopped); at once, before the supervisor can have
    // reconnected, its health file goes: the unhealthy event happens while it is away.
    daemon.up();
    let web = format!("{project}-web");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.docker(&["exec", &web, "rm", "/ok"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "web never came back with the daemon"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    next_until(&lines, &mut seen, "engine-back", |e| {
        e["event"] == "engine-back"
    });
    next_until(&lines, &mut seen, "web's restart", |e| {
        e["event"] == "restarted" && e["node"] == "service.web"
    });
    assert!(
        seen.iter()
            .any(|e| e["event"] == "unhealthy" && e["node"] == "service.web"),
        "{seen:#?}"
    );
    // Healthy again after the restart, and no longer degraded.
    next_until(&lines, &mut seen, "web's recovery", |e| {
        e["event"] == "recovered" && e["node"] == "service.web"
    });
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".sanctuary/supervisor.json")).unwrap())
            .unwrap();
    assert!(status["degraded"].is_null(), "{status}");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let out = sanct(&["destroy", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
