//! `sanctuary supervise` against real components: containers whose health check reads a
//! file, Debian's `webhook` server receiving the alerts, a webhook that never answers,
//! Prometheus scraping the metrics endpoint, and scheduled backups of a volume.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::apply_docker::{docker_available, expect, sanct, text};
use crate::docker_support::{docker_inspect, json_lines, write_busybox_context, TestProject};

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process the test started, killed when the test ends however it ends.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's webhook server on `port`, appending each payload it gets to `alerts.jsonl`.
fn webhook_server(dir: &Path, port: u16) -> Started {
    let record = dir.join("record.sh");
    std::fs::write(
        &record,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\n",
            dir.join("alerts.jsonl").display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&record)
        .status()
        .unwrap();
    let hooks = serde_json::json!([{
        "id": "alert",
        "execute-command": record,
        "command-working-directory": dir,
        "pass-arguments-to-command": [{ "source": "entire-payload" }],
        // Only a request with the secret's header runs the hook: a missing or wrong header
        // is refused, and the alert counts as not delivered.
        "trigger-rule": { "match": {
            "type": "value",
            "value": "Bearer s3cret-hook",
            "parameter": { "source": "header", "name": "Authorization" },
        }},
        "trigger-rule-mismatch-http-response-code": 403,
    }]);
    std::fs::write(dir.join("hooks.json"), hooks.to_string()).unwrap();
    let child = Command::new("webhook")
        .args(["-hooks", "hooks.json", "-ip", "127.0.0.1", "-port"])
        .arg(port.to_string())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's `webhook` is installed (scripts/test.sh installs it)");
    let started = Started(child);
    wait_port(port, "webhook");
    started
}

/// Prometheus scraping `target` every second, its API on `port`.
fn prometheus(dir: &Path, port: u16, target: &str) -> Started {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sanctuary\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's `prometheus` is installed (scripts/test.sh installs it)");
    let started = Started(child);
    wait_port(port, "prometheus");
    started
}

/// One instant query to Prometheus: the value of each series it answers.
fn query(port: u16, promql: &str) -> Vec<f64> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://127.0.0.1:{port}/api/v1/query"),
        &[("query", promql)],
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body: Value = rt.block_on(async {
        match reqwest::get(url).await {
            Ok(r) => {
                serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    });
    body["data"]["result"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alerts(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn count(alerts: &[Value], event: &str, status: &str, node: &str) -> usize {
    alerts
        .iter()
        .filter(|a| a["event"] == event && a["status"] == status && a["node"] == node)
        .count()
}

/// Reads the supervisor's lines until one matches `what`, or fails after `within`.
fn wait_line(
    lines: &Receiver<Value>,
    seen: &mut Vec<Value>,
    within: Duration,
    what: impl Fn(&Value) -> bool,
) -> Value {
    if let Some(v) = seen.iter().find(|v| what(v)) {
        return v.clone();
    }
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(v) => {
                seen.push(v.clone());
                if what(&v) {
                    return v;
                }
            }
            Err(_) => panic!("the supervisor never said what was waited for; it said {seen:#?}"),
        }
    }
}

fn is(v: &Value, event: &str, node: &str) -> bool {
    v["event"] == event && v["node"] == node
}

#[test]
fn supervise_restarts_the_unhealthy_gives_up_past_the_limit_alerts_once_and_is_scraped() {
    if !docker_available("supervise") {
        return;
    }
    let project = TestProject::new("supervise");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let hook_port = free_port();
    let _webhook = webhook_server(dir, hook_port);
    // A webhook that takes every connection and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for s in hang.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let kdl = format!(
        r#"project "{name}"
image "bb" {{
    context "ctx"
}}
volume "data"
service "web" {{
    image "bb"
    command "sh" "-c" "touch /ok; exec sleep 1000"
    stop-timeout "1s"
    health {{
        cmd "test" "-f" "/ok"
        interval "1s"
        retries 1
    }}
}}
service "sick" {{
    image "bb"
    command "sh" "-c" "[ -e /seen ] || touch /ok /seen; exec sleep 1000"
    stop-timeout "1s"
    restart-limit 2 within="10m"
    health {{
        cmd "test" "-f" "/ok"
        interval "1s"
        retries 1
    }}
}}
backup "data" {{
    volume "data"
    every "1h"
    copy "local" path="backups/data"
}}
backup "broken" {{
    path "no-such-dir"
    every "1h"
    copy "local" path="backups/broken"
}}
backup "never" {{
    volume "data"
    max-age "1m"
    copy "local" path="backups/never"
}}
secret "hook-token" {{
    env "SUPERVISE_TEST_HOOK_TOKEN"
}}
alert "hook" {{
    webhook url="http://127.0.0.1:{hook_port}/hooks/alert" {{
        header "Authorization" secret="hook-token" prefix="Bearer "
    }}
    on "unhealthy" "restart-limit" "backup-stale" "backup-failed"
}}
alert "hangs" {{
    webhook url="http://127.0.0.1:{hang_port}/never"
    timeout "60s"
}}
"#,
        name = project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), kdl).unwrap();
    // Both start healthy; once its file is removed, `sick` never makes it again.
    let out = sanct(dir, &["apply", "-y"]);
    assert!(out.status.success(), "{}", text(&out));

    let metrics_port = free_port();
    let prom_port = free_port();
    let _prom = prometheus(dir, prom_port, &format!("127.0.0.1:{metrics_port}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["--json", "supervise", "--interval", "1s", "--metrics"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("SUPERVISE_TEST_HOOK_TOKEN", "s3cret-hook")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sup = Started(child);
    let lines = json_lines(sup.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    wait_line(&lines, &mut seen, Duration::from_secs(30), |v| {
        v["event"] == "started"
    });

    // `status` sees the supervisor.
    let out = sanct(dir, &["--json", "status"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    wait_line(&lines, &mut seen, Duration::from_secs(30), |v| {
        v["event"] == "backup-done" || v["event"] == "backup-failed"
    });
    let out = sanct(dir, &["--json", "status"]);
    let later: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["supervisor"]["state"] == "running" || later["supervisor"]["state"] == "running",
        "{status} {later}"
    );

    // web turns unhealthy; it is restarted (its command makes the file again) and recovers,
    // while the hanging webhook holds its connections.
    let web = project.object("web");
    let before = docker_inspect(&web)["State"]["StartedAt"].clone();
    for service in ["web", "sick"] {
        let out = sanct(dir, &["exec", "-T", service, "rm", "/ok"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    wait_line(&lines, &mut seen, Duration::from_secs(20), |v| {
        is(v, "unhealthy", "service.web")
    });
    wait_line(&lines, &mut seen, Duration::from_secs(10), |v| {
        is(v, "restarted", "service.web")
    });
    assert_ne!(docker_inspect(&web)["State"]["StartedAt"], before);
    wait_line(&lines, &mut seen, Duration::from_secs(20), |v| {
        is(v, "recovered", "service.web")
    });
    assert!(
        !held.lock().unwrap().is_empty(),
        "the hanging webhook was called"
    );

    // sick is restarted twice, the second time after a pause, then given up on.
    let limit = wait_line(&lines, &mut seen, Duration::from_secs(60), |v| {
        is(v, "restart-limit", "service.sick")
    });
    let restarts: Vec<&Value> = seen
        .iter()
        .filter(|v| is(v, "restarted", "service.sick"))
        .collect();
    assert_eq!(restarts.len(), 2, "{seen:#?}");
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
    assert!(
        t(restarts[1]) - t(restarts[0]) >= chrono::Duration::milliseconds(1900),
        "the second restart waited for its backoff: {restarts:?}"
    );
    assert!(t(&limit) > t(restarts[1]));

    // The scheduled backup ran (never run before, so due at once); `never` is stale.
    wait_line(&lines, &mut seen, Duration::from_secs(60), |v| {
        is(v, "backup-done", "backup.data")
    });

    // Prometheus scraped the endpoint: web healthy, sick not, the backup's age known.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let web_h = query(prom_port, r#"sanctuary_service_healthy{service="web"}"#);
        let sick_h = query(prom_port, r#"sanctuary_service_healthy{service="sick"}"#);
        let age = query(prom_port, r#"sanctuary_backup_age_seconds{backup="data"}"#);
        let restarts = query(
            prom_port,
            r#"sanctuary_service_restarts_total{service="sick"}"#,
        );
        if web_h == [1.0] && sick_h == [0.0] && age.len() == 1 && restarts == [2.0] {
            assert!(age[0] >= 0.0 && age[0] < 3600.0, "{age:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series: web {web_h:?} sick {sick_h:?} age {age:?} restarts {restarts:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Each alert arrived once: the conditions are not sent again while they hold.
    std::thread::sleep(Duration::from_secs(3));
    let got = alerts(dir);
    assert_eq!(
        count(&got, "unhealthy", "firing", "service.web"),
        1,
        "{got:#?}"
    );
    assert_eq!(
        count(&got, "unhealthy", "resolved", "service.web"),
        1,
        "{got:#?}"
    );
    assert_eq!(
        count(&got, "restart-limit", "firing", "service.sick"),
        1,
        "{got:#?}"
    );
    assert_eq!(
        count(&got, "backup-stale", "firing", "backup.never"),
        1,
        "{got:#?}"
    );
    assert_eq!(
        count(&got, "backup-failed", "firing", "backup.broken"),
        1,
        "{got:#?}"
    );
    assert!(
        seen.iter().any(|v| is(v, "backup-failed", "backup.broken")),
        "{seen:#?}"
    );
    let one = got.iter().find(|a| a["event"] == "restart-limit").unwrap();
    assert_eq!(one["project"], serde_json::json!(project.name));
    assert!(one["time"].as_str().is_some() && one["reason"].as_str().is_some());

    // Stopped on purpose: never started again.
    expect(dir, &["stop", "web"], 0);
    let stopped_at = seen.len();
    std::thread::sleep(Duration::from_secs(4));
    while let Ok(v) = lines.try_recv() {
        seen.push(v);
    }
    assert_eq!(docker_inspect(&web)["State"]["Running"], false);
    assert!(
        !seen[stopped_at..]
            .iter()
            .any(|v| v["node"] == "service.web" && v["event"] == "restarting"),
        "{seen:#?}"
    );

    // SIGTERM ends it cleanly: exit 0, its status record gone.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(sup.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let code = sup.0.wait().unwrap().code();
    let mut err = String::new();
    if let Some(mut e) = sup.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(code, Some(0), "{err}");
    assert!(!dir.join(".sanctuary/supervisor.json").exists());
    expect(dir, &["destroy", "-y"], 0);
}

#[test]
fn a_taken_metrics_address_is_named_and_nothing_runs() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("Sanctuary.kdl"),
        "project \"metrics-taken\"\n",
    )
    .unwrap();
    let out = sanct(
        tmp.path(),
        &["supervise", "--metrics", &format!("127.0.0.1:{port}")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert!(!tmp.path().join(".sanctuary/supervisor.json").exists());
}

#[test]
fn supervise_keeps_watched_syncs_going_beside_an_apply_and_a_failed_apply_alerts() {
    if !docker_available("supervise-sync") {
        return;
    }
    let project = TestProject::new("supervise-sync");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/a.txt"), "first\n").unwrap();
    std::fs::create_dir_all(dir.join("other")).unwrap();
    let record = dir.join("alerts.jsonl");
    let manifest = |ready: &str| {
        format!(
            r#"project "{name}"
image "bb" {{
    context "ctx"
}}
volume "conf"
volume "other"
service "app" {{
    image "bb"
    command "sh" "-c" "touch /ok; exec sleep 1000"
    stop-timeout "1s"
    mount "conf" "/conf"
    mount "other" "/other"
    health {{
        cmd "test" "-f" "{ready}"
        interval "1s"
    }}
    ready-timeout "3s"
}}
sync "conf" {{
    host "conf"
    volume "conf" path="/"
    mode "to-container"
    quiet-period "200ms"
    watch true
}}
sync "other" {{
    host "other"
    volume "other" path="/"
}}
alert "log" {{
    command "sh" "-c" "cat >> '{record}'; echo >> '{record}'"
    on "apply-failed" "rolled-back" "sync-conflict"
}}
"#,
            name = project.name,
            record = record.display()
        )
    };
    std::fs::write(dir.join("Sanctuary.kdl"), manifest("/ok")).unwrap();
    let out = sanct(dir, &["apply", "-y"]);
    assert!(out.status.success(), "{}", text(&out));

    let child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .args(["--json", "supervise", "--interval", "1s"])
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join("supervise.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("supervise.err")).unwrap())
        .spawn()
        .unwrap();
    let _sup = Started(child);
    let read = |path: &str| {
        let out = sanct(dir, &["exec", "-T", "app", "cat", path]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The watched rule carries a new host file into the volume.
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(dir.join("conf/b.txt"), "second\n").unwrap();
    crate::docker_support::wait_for("b.txt in the volume", Duration::from_secs(30), || {
        read("/conf/b.txt") == "second\n"
    });

    // An apply from the terminal runs while the supervisor and its watch run; this one fails
    // (the health check it asks for never passes), and the alert says so.
    std::fs::write(dir.join("Sanctuary.kdl"), manifest("/never")).unwrap();
    let out = sanct(dir, &["apply", "-y"]);
    // 3: the service never became ready; never 4, the lock held by someone else.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        !text(&out).contains("another sanctuary is running"),
        "{}",
        text(&out)
    );
    let got: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["event"], "apply-failed");
    assert_eq!(got[0]["project"], serde_json::json!(project.name));

    // Failing again with --rollback-on-failure: generation 1 comes back, and the alert says
    // it was rolled back instead.
    std::fs::write(dir.join("Sanctuary.kdl"), manifest("/never-either")).unwrap();
    let out = sanct(dir, &["apply", "-y", "--rollback-on-failure"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let got: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1]["event"], "rolled-back");
    assert!(
        got[1]["reason"].as_str().unwrap().contains("generation 1"),
        "{got:#?}"
    );

    // The watch still runs after the apply.
    std::fs::write(dir.join("conf/a.txt"), "changed\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read("/conf/a.txt") != "changed\n" {
        assert!(
            Instant::now() < deadline,
            "a.txt never changed in the volume; the supervisor said:\n{}\n{}",
            std::fs::read_to_string(dir.join("supervise.out")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("supervise.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A rule the supervisor does not watch still has its conflicts alerted: both sides change
    // one file differently, the pass stops on the conflict, and a later clean pass resolves it.
    let alerts = || -> Vec<Value> {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|a: &Value| a["event"] == "sync-conflict")
            .collect()
    };
    std::fs::write(dir.join("other/f"), "base\n").unwrap();
    expect(dir, &["sync", "other"], 0);
    std::fs::write(dir.join("other/f"), "host\n").unwrap();
    let out = sanct(
        dir,
        &["exec", "-T", "app", "sh", "-c", "echo container > /other/f"],
    );
    assert!(out.status.success(), "{}", text(&out));
    expect(dir, &["sync", "other"], 4);
    crate::docker_support::wait_for("the sync-conflict alert", Duration::from_secs(20), || {
        alerts()
            .iter()
            .any(|a| a["status"] == "firing" && a["node"] == "sync.other")
    });
    std::fs::write(dir.join("other/f"), "container\n").unwrap();
    expect(dir, &["sync", "other"], 0);
    crate::docker_support::wait_for(
        "the sync-conflict resolved",
        Duration::from_secs(20),
        || {
            alerts()
                .iter()
                .any(|a| a["status"] == "resolved" && a["node"] == "sync.other")
        },
    );
    assert_eq!(alerts().len(), 2, "{:#?}", alerts());

    drop(_sup);
    std::fs::write(dir.join("Sanctuary.kdl"), manifest("/ok")).unwrap();
    expect(dir, &["destroy", "-y"], 0);
}
