//! Machine-readable events: one JSON object per line.
//!
//! `{"event":"run_started","nodes":N}` first, then `{"event":"started","node":..}`,
//! `{"event":"output","node":..,"line":..}`, one finish event per node named for how it
//! ended (`finished` for ran, `cached`, `up_to_date`, `failed`, `skipped`, `not_run`,
//! `cancelled`) with `duration_ms` and, when there is one, `detail`, `message` or
//! `because`; and last a `summary` event listing every node with counts and totals.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::Reporter;
use crate::exec::outcome::Status;
use crate::exec::summary::Summary;

/// Writes one JSON object per line.
pub struct Json {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Json {
    /// A JSON-lines reporter writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Json {
            out: Mutex::new(out),
        }
    }

    fn emit(&self, v: Value) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Serialising a `Value` cannot fail; a closed pipe loses events, not work.
        let _ = writeln!(out, "{v}").and_then(|()| out.flush());
    }
}

/// The event name of a node's final status.
fn finish_event(status: &Status) -> &'static str {
    match status {
        Status::Ran { .. } => "finished",
        other => other.name(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The status-specific fields (`detail`, `message`, `because`) added to an event.
fn status_fields(status: &Status, obj: &mut Map<String, Value>) {
    match status {
        Status::Ran { detail } | Status::Cached { detail } | Status::UpToDate { detail } => {
            if let Some(d) = detail {
                obj.insert("detail".into(), json!(d));
            }
        }
        Status::Failed { class, message } => {
            obj.insert("class".into(), json!(class.name()));
            obj.insert("message".into(), json!(message));
        }
        Status::Skipped { because } => {
            obj.insert("because".into(), json!(because));
        }
        Status::NotRun | Status::Cancelled => {}
    }
}

impl Reporter for Json {
    fn run_started(&self, total: usize) {
        self.emit(json!({"event": "run_started", "nodes": total}));
    }

    fn node_started(&self, node: &str) {
        self.emit(json!({"event": "started", "node": node}));
    }

    fn output(&self, node: &str, line: &str) {
        self.emit(json!({"event": "output", "node": node, "line": line}));
    }

    fn node_finished(&self, node: &str, status: &Status, duration: Duration) {
        let mut obj = Map::new();
        obj.insert("event".into(), json!(finish_event(status)));
        obj.insert("node".into(), json!(node));
        obj.insert("duration_ms".into(), json!(millis(duration)));
        status_fields(status, &mut obj);
        self.emit(Value::Object(obj));
    }

    fn data(&self, node: &str, value: &Value) {
        self.emit(json!({"event": "result", "node": node, "result": value}));
    }

    fn run_finished(&self, summary: &Summary) {
        let nodes: Vec<Value> = summary
            .nodes
            .iter()
            .map(|n| {
                let mut obj = Map::new();
                obj.insert("node".into(), json!(n.label));
                obj.insert("status".into(), json!(n.status.name()));
                obj.insert("duration_ms".into(), json!(millis(n.duration)));
                status_fields(&n.status, &mut obj);
                Value::Object(obj)
            })
            .collect();
        self.emit(json!({
            "event": "summary",
            "success": summary.is_success(),
            "interrupted": summary.interrupted,
            "duration_ms": millis(summary.elapsed),
            "counts": summary.counts(),
            "nodes": nodes,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::plain::tests::Shared;
    use super::*;
    use crate::exec::summary::NodeResult;

    #[test]
    fn every_event_is_one_json_object_per_line() {
        let buf = Shared::default();
        let r = Json::new(Box::new(buf.clone()));
        r.node_started("a");
        r.output("a", "hello \"world\"");
        r.node_finished(
            "a",
            &Status::Cached {
                detail: Some("restored 2 outputs".into()),
            },
            Duration::from_millis(15),
        );
        r.node_finished(
            "b",
            &Status::Failed {
                class: crate::exec::FailureClass::Work,
                message: "exit 2".into(),
            },
            Duration::from_millis(7),
        );
        r.node_finished("c", &Status::Cancelled, Duration::ZERO);
        r.run_finished(&Summary {
            nodes: vec![NodeResult {
                index: 0,
                label: "b".into(),
                status: Status::Failed {
                    class: crate::exec::FailureClass::Work,
                    message: "exit 2".into(),
                },
                duration: Duration::from_millis(7),
            }],
            elapsed: Duration::from_millis(30),
            interrupted: false,
        });
        let lines: Vec<Value> = buf
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0], json!({"event": "started", "node": "a"}));
        assert_eq!(
            lines[1],
            json!({"event": "output", "node": "a", "line": "hello \"world\""})
        );
        assert_eq!(
            lines[2],
            json!({"event": "cached", "node": "a", "duration_ms": 15, "detail": "restored 2 outputs"})
        );
        assert_eq!(
            lines[3],
            json!({"event": "failed", "node": "b", "duration_ms": 7, "class": "work", "message": "exit 2"})
        );
        assert_eq!(
            lines[4],
            json!({"event": "cancelled", "node": "c", "duration_ms": 0})
        );
        assert_eq!(lines[5]["event"], "summary");
        assert_eq!(lines[5]["success"], false);
        assert_eq!(lines[5]["counts"]["failed"], 1);
        assert_eq!(
            lines[5]["nodes"][0],
            json!({"node": "b", "status": "failed", "duration_ms": 7, "class": "work", "message": "exit 2"})
        );
    }

    #[test]
    fn a_ran_node_finishes_with_the_finished_event() {
        let buf = Shared::default();
        Json::new(Box::new(buf.clone())).node_finished(
            "a",
            &Status::Ran { detail: None },
            Duration::from_millis(1),
        );
        let v: Value = serde_json::from_str(buf.text().trim()).unwrap();
        assert_eq!(
            v,
            json!({"event": "finished", "node": "a", "duration_ms": 1})
        );
    }
}
