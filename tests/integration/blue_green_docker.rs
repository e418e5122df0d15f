//! Blue-green services against the real engine: two busybox `httpd` versions answering "v1" and
//! "v2", replaced under load through the published port and through the service's name from
//! another container; a version that never becomes healthy; sanctuary killed in the middle of
//! a switch; the proxy container killed; a switch back; a proxy port already taken.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::apply_docker::{docker_available, expect, sanct, text};
use crate::docker_support::{
    docker_lines, kill_after, wait_for, write_busybox_context, TestProject,
};

/// A block of 20 host ports for this test process, apart from the other Docker tests' blocks.
fn port(slot: u16) -> u16 {
    assert!(slot < 20);
    65000 + (std::process::id() % 25) as u16 * 20 + slot
}

/// A manifest with a blue-green `web` answering `version` on `host`, and a `client` to call
/// it by name from inside the project network.
fn write(dir: &Path, project: &TestProject, version: &str, host: u16, extra: &str) {
    let kdl = format!(
        r#"project "{name}"
image "bb" {{
    context "ctx"
}}
service "web" {{
    image "bb"
    command "sh" "-c" "mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"
    stop-timeout "1s"
    ready-timeout "5s"
    port 8080 host={host} ip="127.0.0.1"
    update "blue-green"
    drain-timeout "20s"
{extra}
    health {{
        cmd "wget" "-q" "-O-" "http://127.0.0.1:8080/"
        interval "1s"
    }}
}}
service "client" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
}}
"#,
        name = project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
}

/// One HTTP/1.0 GET over a fresh connection; the body, or `None` when it failed.
fn get(host: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", host)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    body(&mut s)
}

fn body(s: &mut TcpStream) -> Option<String> {
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    if !raw.starts_with("HTTP/1.") || !raw.lines().next()?.contains(" 200 ") {
        return None;
    }
    Some(raw.split("\r\n\r\n").nth(1)?.trim().to_string())
}

/// Sequential requests until stopped: how many failed, and the answers in the order they
/// changed.
struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, usize, Vec<String>)>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Load {
    fn start(host: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (Arc::clone(&stop), Arc::clone(&seen));
        let handle = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !s.load(Ordering::SeqCst) {
                match get(host) {
                    Some(b) => {
                        ok += 1;
                        let mut v = v.lock().unwrap();
                        if v.last() != Some(&b) {
                            v.push(b);
                        }
                    }
                    None => failed += 1,
                }
            }
            (ok, failed, v.lock().unwrap().clone())
        });
        Load { stop, handle, seen }
    }

    fn latest(&self) -> Option<String> {
        self.seen.lock().unwrap().last().cloned()
    }

    fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// The names of the project's containers, sorted.
fn containers(project: &TestProject) -> Vec<String> {
    let filter = project.filter();
    let mut names = docker_lines(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]);
    names.sort();
    names
}

fn setup(name: &str) -> (TestProject, tempfile::TempDir) {
    let project = TestProject::new(name);
    let tmp = tempfile::tempdir().unwrap();
    write_busybox_context(&tmp.path().join("ctx")).unwrap();
    (project, tmp)
}

#[test]
fn a_blue_green_replace_loses_no_request_and_held_connections_finish_on_the_old_version() {
    if !docker_available("blue_green_replace") {
        return;
    }
    let (project, tmp) = setup("bgswap");
    let dir = tmp.path();
    let host = port(0);
    write(dir, &project, "v1", host, "");
    expect(dir, &["apply", "-y"], 0);
    assert_eq!(get(host).as_deref(), Some("v1"));
    let status = expect(dir, &["status"], 0);
    assert!(status.contains("blue (proxy"), "{status}");

    // Twenty connections opened on v1 and held across the switch.
    let mut held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", host)).unwrap())
        .collect();
    // The same service called by name from inside the project network, all along.
    let client = project.object("client");
    let inside = Command::new("docker")
        .args(["exec", &client, "sh", "-c"])
        .arg(
            "mkdir -p /tmp; end=$(( $(date +%s) + 14 )); ok=0; bad=0; \
             while [ $(date +%s) -lt $end ]; do \
               if v=$(wget -q -O- http://web:8080/); then ok=$((ok+1)); echo \"$v\" >> /tmp/seen; \
               else bad=$((bad+1)); fi; done; \
             echo ok=$ok bad=$bad; uniq /tmp/seen",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let load = Load::start(host);
    std::thread::sleep(Duration::from_millis(500));

    write(dir, &project, "v2", host, "");
    let apply = {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || sanct(&dir, &["apply", "-y"]))
    };
    wait_for("the switch to v2", Duration::from_secs(60), || {
        load.latest().as_deref() == Some("v2")
    });
    // Held connections were accepted on v1: they finish there, after the switch.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(body(s).as_deref(), Some("v1"), "a held connection");
    }
    drop(held);
    let out = apply.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = text(&out);
    assert!(out.contains("switched to green (drained)"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed, seen) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(seen, ["v1", "v2"], "answers flip once, from v1 to v2");
    assert!(ok > 100, "only {ok} requests");

    let inside = inside.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&inside.stdout);
    assert!(
        report.contains(" bad=0"),
        "by name from another container: {report}"
    );
    assert!(report.ends_with("v1\nv2\n"), "{report}");

    assert_eq!(
        containers(&project),
        [
            project.object("client"),
            project.object("web"),
            project.object("web-proxy"),
        ]
    );
    let status = expect(dir, &["status"], 0);
    assert!(status.contains("green (proxy"), "{status}");
    expect(dir, &["plan", "--detailed-exitcode"], 0);
    expect(dir, &["destroy", "-y"], 0);
    assert!(
        containers(&project).is_empty(),
        "destroy removes the proxy too"
    );
}

#[test]
fn a_version_that_never_becomes_healthy_leaves_the_old_one_serving() {
    if !docker_available("blue_green_unhealthy") {
        return;
    }
    let (project, tmp) = setup("bgsick");
    let dir = tmp.path();
    let host = port(1);
    write(dir, &project, "v1", host, "");
    expect(dir, &["apply", "-y"], 0);
    // v2's page is somewhere its health check does not look.
    let manifest = std::fs::read_to_string(dir.join("Sanctuary.kdl"))
        .unwrap()
        .replace("echo v1 > /www/index.html", "echo v2 > /www/other.html");
    std::fs::write(dir.join("Sanctuary.kdl"), manifest).unwrap();
    let load = Load::start(host);
    let out = expect(dir, &["apply", "-y"], 3);
    assert!(out.contains("did not become healthy within 5s"), "{out}");
    assert!(
        out.contains(&format!(
            "{} keeps serving, untouched",
            project.object("web")
        )),
        "{out}"
    );
    let (ok, failed, seen) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(seen, ["v1"]);
    let plan = expect(dir, &["plan", "--detailed-exitcode"], 2);
    assert!(plan.contains("replace (command changed"), "{plan}");
    assert!(!containers(&project).contains(&project.object("web-next")));
}

#[test]
fn sanctuary_killed_mid_switch_converges_to_one_live_colour_and_the_port_keeps_answering() {
    if !docker_available("blue_green_kill") {
        return;
    }
    let (project, tmp) = setup("bgkill");
    let dir = tmp.path();
    let host = port(2);
    write(dir, &project, "v0", host, "");
    expect(dir, &["apply", "-y"], 0);
    let load = Load::start(host);
    // Killed earlier and later in the switch each round: before the new container is ready,
    // around the switch, while draining, before the rename.
    for (round, delay_ms) in [300u64, 900, 1500, 2200].into_iter().enumerate() {
        let version = format!("v{}", round + 1);
        write(dir, &project, &version, host, "");
        kill_after(dir, &["apply", "-y"], Duration::from_millis(delay_ms));
        expect(dir, &["apply", "-y"], 0);
        expect(dir, &["plan", "--detailed-exitcode"], 0);
        let names = containers(&project);
        assert_eq!(
            names,
            [
                project.object("client"),
                project.object("web"),
                project.object("web-proxy"),
            ],
            "round {round}"
        );
        assert_eq!(
            get(host).as_deref(),
            Some(version.as_str()),
            "round {round}"
        );
    }
    let (ok, failed, _) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
}

#[test]
fn a_killed_proxy_is_restarted_by_docker_and_switch_goes_back_to_the_kept_colour() {
    if !docker_available("blue_green_proxy") {
        return;
    }
    let (project, tmp) = setup("bgproxy");
    let dir = tmp.path();
    let host = port(3);
    write(dir, &project, "v1", host, "    keep-previous true");
    expect(dir, &["apply", "-y"], 0);
    write(dir, &project, "v2", host, "    keep-previous true");
    expect(dir, &["apply", "-y"], 0);
    assert_eq!(get(host).as_deref(), Some("v2"));
    assert!(containers(&project).contains(&project.object("web-previous")));

    // The proxy process dies: Docker starts it again, pointing where it pointed.
    let proxy = project.object("web-proxy");
    let pid = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", &proxy])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let killed = Instant::now();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(50));
    wait_for("the proxy to answer again", Duration::from_secs(30), || {
        get(host).is_some()
    });
    eprintln!(
        "the proxy answered again {} ms after it was killed",
        killed.elapsed().as_millis()
    );
    assert_eq!(get(host).as_deref(), Some("v2"), "the upstream survived");

    // Back to the kept colour, under load, and forth again.
    let load = Load::start(host);
    std::thread::sleep(Duration::from_millis(300));
    let out = expect(dir, &["switch", "web"], 0);
    assert!(out.contains("web: switched to blue"), "{out}");
    assert_eq!(get(host).as_deref(), Some("v1"));
    expect(dir, &["switch", "web"], 0);
    assert_eq!(get(host).as_deref(), Some("v2"));
    let (ok, failed, seen) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(seen, ["v2", "v1", "v2"]);

    // A service that is not blue-green, or one with nothing kept, cannot be switched.
    let out = expect(dir, &["switch", "client"], 2);
    assert!(out.contains("is not blue-green"), "{out}");

    // Back to `recreate`: the proxy and the kept container go, the service holds its port.
    let manifest = std::fs::read_to_string(dir.join("Sanctuary.kdl")).unwrap();
    let recreated: String = manifest
        .lines()
        .filter(|l| {
            !["update", "drain-timeout", "keep-previous"]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("Sanctuary.kdl"), recreated).unwrap();
    expect(dir, &["apply", "-y"], 0);
    assert_eq!(
        containers(&project),
        [project.object("client"), project.object("web")]
    );
    assert_eq!(get(host).as_deref(), Some("v2"));
    let out = expect(dir, &["switch", "web"], 2);
    assert!(out.contains("is not blue-green"), "{out}");
}

#[test]
fn a_taken_proxy_port_is_named_and_nothing_else_changes() {
    if !docker_available("blue_green_port") {
        return;
    }
    let (project, tmp) = setup("bgport");
    let dir = tmp.path();
    let host = port(4);
    let _holder = std::net::TcpListener::bind(("127.0.0.1", host)).unwrap();
    write(dir, &project, "v1", host, "");
    let out = expect(dir, &["apply", "-y"], 3);
    assert!(
        out.contains(&format!("its proxy cannot hold host port 127.0.0.1:{host}")),
        "{out}"
    );
    let names = containers(&project);
    assert!(!names.contains(&project.object("web-proxy")), "{names:?}");
    assert!(!names.contains(&project.object("web")), "{names:?}");
}
