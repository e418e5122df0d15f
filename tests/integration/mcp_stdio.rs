//! `sanctuary mcp` driven by a real MCP client (the PyPI `mcp` SDK's stdio client, from the
//! test venv scripts/test.sh makes): tools and their annotations, structured answers, plan ids
//! that change with the stack, a manifest edited under the running server, and bad calls
//! answered as errors without ending the session.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::apply_docker::docker_available;
use crate::docker_support::{write_busybox_context, TestProject};

fn python() -> Option<PathBuf> {
    match std::env::var_os("SANCTUARY_TEST_MCP_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("SANCTUARY_REQUIRE_MCP").as_deref() == Ok("1") => {
            panic!("SANCTUARY_REQUIRE_MCP=1 but SANCTUARY_TEST_MCP_PYTHON is not set")
        }
        None => {
            eprintln!(
                "SKIPPED: no MCP client (set SANCTUARY_TEST_MCP_PYTHON; scripts/test.sh does)"
            );
            None
        }
    }
}

fn session(python: &Path, dir: &Path, calls: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_session.py");
    let out = Command::new(python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_sanctuary"))
        .arg(dir)
        .arg(calls.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the MCP session failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

#[test]
fn an_mcp_client_lists_the_tools_and_calls_them_against_the_stack() {
    let Some(py) = python() else { return };
    if !docker_available("mcp") {
        return;
    }
    let project = TestProject::new("mcp");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_busybox_context(&dir.join("ctx")).unwrap();
    let good = format!(
        r#"project "{}"
image "bb" {{
    context "ctx"
}}
service "web" {{
    image "bb"
    command "sh" "-c" "echo web says hello; exec sleep 1000"
    stop-timeout "1s"
}}
"#,
        project.name
    );
    std::fs::write(dir.join("Sanctuary.kdl"), &good).unwrap();
    let broken = good.replace("image \"bb\"\n    command", "image \"nb\"\n    command");
    let got = session(
        &py,
        dir,
        json!([
            ["validate", {}],
            ["list", {}],
            ["plan", {}],
            ["plan", {}],
            ["__sanctuary", {"args": ["apply", "-y"]}],
            ["plan", {}],
            ["status", {}],
            ["logs", {"service": "web", "tail": 10}],
            ["history", {}],
            ["__write", {"path": "Sanctuary.kdl", "text": broken}],
            ["validate", {}],
            ["__write", {"path": "Sanctuary.kdl", "text": good}],
            ["nosuch", {}],
            ["logs", {}],
            ["logs", {"service": "nope"}],
            ["plan", {"targets": ["nope"]}],
            ["validate", {}],
            ["__sanctuary", {"args": ["destroy", "-y"]}],
        ]),
    );
    assert_eq!(got["server"], "sanctuary");
    let tools: Vec<&Value> = got["tools"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["validate", "list", "status", "plan", "history", "logs"] {
        assert!(names.contains(&name), "{names:?}");
    }
    for t in &tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
        assert!(t["inputSchema"]["type"] == "object", "{t}");
        assert!(
            t["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{t}"
        );
    }
    let logs_schema = &tools.iter().find(|t| t["name"] == "logs").unwrap()["inputSchema"];
    assert_eq!(logs_schema["required"], json!(["service"]));

    let calls = got["calls"].as_array().unwrap();
    let call = |i: usize| &calls[i];
    // validate, list
    assert_eq!(call(0)["error"], false);
    assert_eq!(call(0)["structured"]["valid"], true);
    assert_eq!(
        call(0)["structured"]["nodes"],
        json!({"image": 1, "service": 1})
    );
    let nodes: Vec<&str> = call(1)["structured"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["image.bb", "service.web"]);
    // A plan has an id that stays while nothing changes and moves when the stack does.
    let (p1, p2, p3) = (
        &call(2)["structured"],
        &call(3)["structured"],
        &call(4)["structured"],
    );
    assert_eq!(p1["has_changes"], true, "{p1}");
    assert_eq!(p1["plan_id"], p2["plan_id"]);
    assert_eq!(p3["has_changes"], false, "{p3}");
    assert_ne!(p1["plan_id"], p3["plan_id"]);
    // status, logs, history of the applied stack
    let services = call(5)["structured"]["services"].as_array().unwrap();
    assert_eq!(services[0]["service"], "web");
    assert_eq!(services[0]["state"], "running");
    let lines = call(6)["structured"]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["line"] == "web says hello"),
        "{lines:?}"
    );
    assert_eq!(
        call(7)["structured"]["generations"][0]["outcome"],
        "applied"
    );
    // The manifest broke under the running server: the diagnostic, with where it is.
    assert_eq!(call(8)["error"], true, "{}", call(8));
    let text = call(8)["text"][0].as_str().unwrap();
    assert!(text.contains("nb"), "{text}");
    assert!(text.contains("Sanctuary.kdl"), "{text}");
    // An unknown tool is a protocol error; bad or unknown arguments are tool errors.
    assert!(call(9)["exception"].as_str().is_some(), "{}", call(9));
    assert_eq!(call(10)["error"], true);
    assert!(call(10)["text"][0].as_str().unwrap().contains("service"));
    assert_eq!(call(11)["error"], true);
    assert!(call(11)["text"][0].as_str().unwrap().contains("nope"));
    assert_eq!(call(12)["error"], true);
    assert!(call(12)["text"][0].as_str().unwrap().contains("nope"));
    // …and the server still answers.
    assert_eq!(call(13)["structured"]["valid"], true);
}

#[test]
fn garbage_on_stdin_is_answered_as_json_rpc_and_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("Sanctuary.kdl"),
        "project \"mcp-garbage\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sanctuary"))
        .arg("mcp")
        .current_dir(tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"this is not json\n{\"jsonrpc\":\"2.0\",\"id\":7}\n")
            .unwrap();
        // After the garbage, a session still starts.
        stdin
            .write_all(
                br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            )
            .unwrap();
        stdin.write_all(b"\n").unwrap();
        let huge = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"validate\",\"arguments\":{{\"x\":\"{}\"}}}}}}\n",
            "a".repeat(1 << 20)
        );
        stdin.write_all(huge.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(answers.iter().all(|v| v["jsonrpc"] == "2.0"), "{answers:?}");
    assert!(
        answers
            .iter()
            .any(|v| v["id"] == 1 && v["result"]["serverInfo"]["name"] == "sanctuary"),
        "{answers:?}"
    );
    assert!(out.status.code().is_some(), "ended by a signal");
}
