//! Traces over OTLP, received by a real OTLP/HTTP receiver (oteltest's sink, started on
//! loopback by `tests/support/otlp_sink.py`): one span per node with its kind, action,
//! cache use and result under the command's span; nothing without the variable; a dead or
//! hanging collector fails nothing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::apply_docker::{docker_available, sanct_env, text};
use crate::docker_support::{write_busybox_context, TestProject};

/// The Python that has oteltest (scripts/test.sh makes a venv with it), or `None` to skip.
fn python() -> Option<PathBuf> {
    match std::env::var_os("SANCTUARY_TEST_OTLP_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("SANCTUARY_REQUIRE_OTLP").as_deref() == Ok("1") => {
            panic!("SANCTUARY_REQUIRE_OTLP=1 but SANCTUARY_TEST_OTLP_PYTHON is not set")
        }
        None => {
            eprintln!(
                "SKIPPED: no OTLP receiver (set SANCTUARY_TEST_OTLP_PYTHON; scripts/test.sh does)"
            );
            None
        }
    }
}

struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink(python: &Path, dir: &Path) -> Sink {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.join("spans.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/otlp_sink.py");
    let child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the OTLP sink never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    Sink { child, port, out }
}

/// Every span the sink received, flattened, with attributes as a map.
fn spans(out: &Path) -> Vec<Value> {
    let mut all = Vec::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let req: Value = serde_json::from_str(line).unwrap();
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let mut s = s.clone();
                    let attrs: serde_json::Map<String, Value> = s["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            let v = &a["value"];
                            let v = v
                                .get("stringValue")
                                .or(v.get("boolValue"))
                                .or(v.get("intValue"))
                                .cloned()
                                .unwrap_or(Value::Null);
                            (a["key"].as_str().unwrap().to_string(), v)
                        })
                        .collect();
                    s["attrs"] = Value::Object(attrs);
                    all.push(s);
                }
            }
        }
    }
    all
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

#[test]
fn a_traced_run_exports_one_span_per_node_under_the_commands_span() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = sink(&py, dir);
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        r#"project "traced"
task "gen" {
    run "echo made > out.txt"
    inputs "in.txt"
    outputs "out.txt"
}
task "use" {
    run "cat out.txt"
    depends-on "gen"
}
task "broken" {
    run "exit 3"
}
"#,
    )
    .unwrap();
    std::fs::write(dir.join("in.txt"), "x").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", sink.port);
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let out = sanct_env(dir, &["run", "use"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let first = spans(&sink.out);
    let root = named(&first, "sanctuary run");
    assert_eq!(root.len(), 1, "{first:#?}");
    let root = root[0];
    assert_eq!(root["attrs"]["sanctuary.exit_code"], "0");
    for (node, name) in [("task.gen", "gen"), ("task.use", "use")] {
        let s = named(&first, node);
        assert_eq!(s.len(), 1, "one span for {node}: {first:#?}");
        let s = s[0];
        assert_eq!(s["traceId"], root["traceId"]);
        assert_eq!(s["parentSpanId"], root["spanId"]);
        assert_eq!(s["attrs"]["sanctuary.kind"], "task");
        assert_eq!(s["attrs"]["sanctuary.name"], name);
        assert_eq!(s["attrs"]["sanctuary.result"], "ran");
        assert_eq!(s["attrs"]["sanctuary.cached"], false);
        assert_eq!(s["attrs"]["sanctuary.action"], "run");
        let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start);
    }
    assert_eq!(first.len(), 3, "nothing else: {first:#?}");

    // Again: gen comes from its fingerprint, and the span says so.
    std::fs::remove_file(&sink.out).unwrap();
    let out = sanct_env(dir, &["run", "use"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let again = spans(&sink.out);
    let gen = named(&again, "task.gen");
    assert_eq!(gen.len(), 1, "{again:#?}");
    assert!(
        gen[0]["attrs"]["sanctuary.result"] == "up-to-date"
            || gen[0]["attrs"]["sanctuary.cached"] == true,
        "{again:#?}"
    );

    // A failure: the node's span and the command's carry an error status and the exit code.
    std::fs::remove_file(&sink.out).unwrap();
    let out = sanct_env(dir, &["run", "broken"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = spans(&sink.out);
    let broken = named(&failed, "task.broken");
    assert_eq!(broken.len(), 1, "{failed:#?}");
    assert_eq!(broken[0]["attrs"]["sanctuary.result"], "failed");
    assert_eq!(broken[0]["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(
        named(&failed, "sanctuary run")[0]["attrs"]["sanctuary.exit_code"],
        "1"
    );

    // Without the variable nothing is sent.
    std::fs::remove_file(&sink.out).unwrap();
    let out = sanct_env(dir, &["run", "use"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(500));
    assert!(spans(&sink.out).is_empty());
}

#[test]
fn a_dead_or_hanging_collector_fails_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        "project \"traced-dead\"\ntask \"t\" {\n    run \"echo ok\"\n}\n",
    )
    .unwrap();
    // Nothing listens on the first; the second takes connections and never answers.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming().flatten() {
            held.push(s);
        }
    });
    for port in [dead, hang_port] {
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let out = sanct_env(
            dir,
            &["run", "t"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        // Bounded by the export timeout (1 s), not by the collector.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_traced_apply_has_a_span_for_each_node_with_its_kind_and_action() {
    let Some(py) = python() else { return };
    if !docker_available("traces") {
        return;
    }
    let project = TestProject::new("traces");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let sink = sink(&py, dir);
    std::fs::write(
        dir.join("Sanctuary.kdl"),
        format!(
            r#"project "{}"
image "bb" {{
    context "ctx"
}}
volume "data"
service "web" {{
    image "bb"
    command "sleep" "1000"
    stop-timeout "1s"
    mount "data" "/data"
}}
"#,
            project.name
        ),
    )
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{}", sink.port);
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let out = sanct_env(dir, &["apply", "-y"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let got = spans(&sink.out);
    let root = named(&got, "sanctuary apply");
    assert_eq!(root.len(), 1, "{got:#?}");
    for (node, kind) in [
        ("image.bb", "image"),
        ("volume.data", "volume"),
        ("service.web", "service"),
    ] {
        let s = named(&got, node);
        assert_eq!(s.len(), 1, "one span for {node}: {got:#?}");
        assert_eq!(s[0]["attrs"]["sanctuary.kind"], kind);
        assert_eq!(s[0]["attrs"]["sanctuary.result"], "ran");
        assert!(s[0]["attrs"]["sanctuary.action"].is_string(), "{:#?}", s[0]);
        assert_eq!(s[0]["parentSpanId"], root[0]["spanId"]);
    }
    let out = sanct_env(dir, &["destroy", "-y"], &[]);
    assert!(out.status.success(), "{}", text(&out));
}
