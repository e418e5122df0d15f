//! The walk tested with a recording executor: no processes, no Docker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::exec::report::Silent;

/// How the recording executor treats one node.
#[derive(Clone, Default)]
struct Script {
    sleep_ms: u64,
    fail: bool,
    /// Cancel the run's token when this node starts (simulates Ctrl-C mid-run).
    cancel_on_start: bool,
}

#[derive(Default)]
struct Recorder {
    scripts: HashMap<String, Script>,
    events: Mutex<Vec<(String, &'static str)>>,
    now: AtomicUsize,
    max: AtomicUsize,
    saw_cancel: Mutex<Vec<String>>,
}

impl Recorder {
    fn with(scripts: &[(&str, Script)]) -> Self {
        Recorder {
            scripts: scripts
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        }
    }

    fn events(&self) -> Vec<(String, &'static str)> {
        self.events.lock().unwrap().clone()
    }

    fn pos(&self, node: &str, what: &str) -> usize {
        self.events()
            .iter()
            .position(|(n, w)| n == node && *w == what)
            .unwrap_or_else(|| panic!("{node} never {what}"))
    }

    fn started(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(_, w)| *w == "start")
            .map(|(n, _)| n)
            .collect()
    }
}

impl Executor<String> for Recorder {
    fn execute<'a>(&'a self, node: &'a String, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let script = self.scripts.get(node).cloned().unwrap_or_default();
            self.events.lock().unwrap().push((node.clone(), "start"));
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
            if script.cancel_on_start {
                ctx.cancel().cancel();
            }
            ctx.emit("working");
            let interrupted = tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(script.sleep_ms)) => false,
                _ = ctx.cancel().cancelled(), if !script.cancel_on_start => true,
            };
            if interrupted {
                self.saw_cancel.lock().unwrap().push(node.clone());
            }
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.events.lock().unwrap().push((node.clone(), "finish"));
            if interrupted {
                Outcome::Failed(crate::exec::Failure::interrupted())
            } else if script.fail {
                Outcome::Failed(crate::exec::Failure::work(format!("{node} broke")))
            } else {
                Outcome::ran()
            }
        })
    }
}

fn dag(names: &[&str], deps: &[&[usize]]) -> Dag<String> {
    Dag::new(
        names.iter().map(|s| s.to_string()).collect(),
        deps.iter().map(|d| d.to_vec()).collect(),
    )
    .unwrap()
}

async fn walk(dag: &Dag<String>, rec: &Recorder, jobs: usize, fail_fast: bool) -> Summary {
    run(
        dag,
        rec,
        Arc::new(Silent),
        Options { jobs, fail_fast },
        CancellationToken::new(),
    )
    .await
}

fn statuses(s: &Summary) -> Vec<(&str, &'static str)> {
    s.nodes
        .iter()
        .map(|n| (n.label.as_str(), n.status.name()))
        .collect()
}

fn sleepy(ms: u64) -> Script {
    Script {
        sleep_ms: ms,
        ..Default::default()
    }
}

fn failing() -> Script {
    Script {
        fail: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_chain_runs_in_dependency_order() {
    let d = dag(&["c", "b", "a"], &[&[1], &[2], &[]]);
    let rec = Recorder::default();
    let s = walk(&d, &rec, 4, false).await;
    assert_eq!(rec.started(), ["a", "b", "c"]);
    assert!(rec.pos("a", "finish") < rec.pos("b", "start"));
    assert!(rec.pos("b", "finish") < rec.pos("c", "start"));
    assert!(s.is_success());
    assert_eq!(
        statuses(&s),
        [("c", "ran"), ("b", "ran"), ("a", "ran")],
        "summary keeps DAG order"
    );
}

#[tokio::test]
async fn a_diamond_runs_the_middle_concurrently_and_the_top_last() {
    // base <- left, right <- top
    let d = dag(
        &["base", "left", "right", "top"],
        &[&[], &[0], &[0], &[1, 2]],
    );
    let rec = Recorder::with(&[("left", sleepy(40)), ("right", sleepy(40))]);
    let s = walk(&d, &rec, 4, false).await;
    assert!(rec.pos("base", "finish") < rec.pos("left", "start"));
    assert!(rec.pos("base", "finish") < rec.pos("right", "start"));
    assert!(rec.pos("left", "finish") < rec.pos("top", "start"));
    assert!(rec.pos("right", "finish") < rec.pos("top", "start"));
    assert_eq!(
        rec.max.load(Ordering::SeqCst),
        2,
        "left and right overlapped"
    );
    assert_eq!(s.counts().ran, 4);
}

#[tokio::test]
async fn the_parallelism_bound_is_reached_and_never_exceeded() {
    let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let scripts: Vec<(&str, Script)> = names.iter().map(|n| (n.as_str(), sleepy(30))).collect();
    let rec = Recorder::with(&scripts);
    let d = Dag::new(names.clone(), vec![vec![]; 8]).unwrap();
    let s = walk(&d, &rec, 3, false).await;
    assert_eq!(rec.max.load(Ordering::SeqCst), 3);
    assert_eq!(s.counts().ran, 8);

    let rec = Recorder::with(&scripts);
    walk(&d, &rec, 0, false).await;
    assert_eq!(
        rec.max.load(Ordering::SeqCst),
        1,
        "jobs = 0 means one at a time"
    );
}

#[tokio::test]
async fn a_failure_skips_dependents_and_lets_independent_work_finish() {
    // a fails; b needs a; c needs b; x is independent and slow.
    let d = dag(&["a", "b", "c", "x"], &[&[], &[0], &[1], &[]]);
    let rec = Recorder::with(&[("a", failing()), ("x", sleepy(40))]);
    let s = walk(&d, &rec, 4, false).await;
    assert_eq!(
        statuses(&s),
        [
            ("a", "failed"),
            ("b", "skipped"),
            ("c", "skipped"),
            ("x", "ran")
        ]
    );
    assert_eq!(
        s.nodes[2].status,
        Status::Skipped {
            because: "a".into()
        },
        "transitive dependents name the node that failed"
    );
    assert_eq!(s.failed()[0].status.note().as_deref(), Some("a broke"));
    assert!(!rec.started().contains(&"b".to_string()));
}

#[tokio::test]
async fn fail_fast_starts_nothing_new_but_lets_running_nodes_finish() {
    // jobs = 2: `a` fails at once while `slow` is running; `later` would be next.
    let d = dag(&["a", "slow", "later", "after-a"], &[&[], &[], &[], &[0]]);
    let rec = Recorder::with(&[("a", failing()), ("slow", sleepy(40))]);
    let s = walk(&d, &rec, 2, true).await;
    assert_eq!(
        statuses(&s),
        [
            ("a", "failed"),
            ("slow", "ran"),
            ("later", "not_run"),
            ("after-a", "skipped")
        ]
    );
    assert_eq!(rec.started(), ["a", "slow"]);
}

#[tokio::test]
async fn cancellation_stops_new_work_and_running_nodes_see_the_token() {
    // `trigger` cancels the run when it starts, while `busy` is sleeping; `next` and
    // `dependent` must never start.
    let d = dag(
        &["busy", "trigger", "next", "dependent"],
        &[&[], &[], &[], &[0]],
    );
    let rec = Recorder::with(&[
        ("busy", sleepy(10_000)),
        (
            "trigger",
            Script {
                sleep_ms: 5,
                cancel_on_start: true,
                ..Default::default()
            },
        ),
    ]);
    let begun = Instant::now();
    let s = walk(&d, &rec, 2, false).await;
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "busy was interrupted"
    );
    assert!(s.interrupted);
    assert_eq!(*rec.saw_cancel.lock().unwrap(), ["busy"]);
    assert_eq!(
        statuses(&s),
        [
            ("busy", "failed"),
            ("trigger", "ran"),
            ("next", "cancelled"),
            ("dependent", "cancelled")
        ]
    );
    assert_eq!(s.cancelled().len(), 2);
}

#[tokio::test]
async fn a_token_cancelled_before_the_run_starts_nothing() {
    let d = dag(&["a", "b"], &[&[], &[0]]);
    let rec = Recorder::default();
    let token = CancellationToken::new();
    token.cancel();
    let s = run(&d, &rec, Arc::new(Silent), Options::default(), token).await;
    assert!(rec.started().is_empty());
    assert_eq!(statuses(&s), [("a", "cancelled"), ("b", "cancelled")]);
}

#[tokio::test]
async fn a_panicking_executor_fails_only_its_node() {
    struct Panics;
    impl Executor<String> for Panics {
        fn execute<'a>(&'a self, node: &'a String, _: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                if node == "bad" {
                    panic!("executor bug");
                }
                Outcome::UpToDate(None)
            })
        }
    }
    let d = dag(&["bad", "good", "after"], &[&[], &[], &[0]]);
    let s = run(
        &d,
        &Panics,
        Arc::new(Silent),
        Options::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        statuses(&s),
        [
            ("bad", "failed"),
            ("good", "up_to_date"),
            ("after", "skipped")
        ]
    );
}

#[test]
fn a_cycle_is_rejected_before_anything_runs() {
    let err = Dag::new(
        vec!["a".to_string(), "b".to_string()],
        vec![vec![1], vec![0]],
    )
    .unwrap_err();
    assert!(matches!(err, crate::exec::DagError::Cycle { .. }));
}

/// Records reporter calls as short strings.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Reporter for Log {
    fn run_started(&self, total: usize) {
        self.0.lock().unwrap().push(format!("run {total}"));
    }
    fn node_started(&self, node: &str) {
        self.0.lock().unwrap().push(format!("start {node}"));
    }
    fn output(&self, node: &str, line: &str) {
        self.0.lock().unwrap().push(format!("[{node}] {line}"));
    }
    fn node_finished(&self, node: &str, status: &Status, _: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {node}", status.name()));
    }
    fn run_finished(&self, summary: &Summary) {
        self.0
            .lock()
            .unwrap()
            .push(format!("done {}", summary.nodes.len()));
    }
}

#[tokio::test]
async fn the_reporter_hears_every_node_exactly_once_and_output_under_its_label() {
    let d = dag(&["a", "b", "c"], &[&[], &[0], &[]]);
    let rec = Recorder::with(&[("a", failing())]);
    let log = Arc::new(Log::default());
    run(
        &d,
        &rec,
        log.clone(),
        Options {
            jobs: 1,
            fail_fast: false,
        },
        CancellationToken::new(),
    )
    .await;
    let events = log.0.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "run 3",
            "start a",
            "[a] working",
            "failed a",
            "skipped b",
            "start c",
            "[c] working",
            "ran c",
            "done 3"
        ]
    );
}

#[tokio::test]
async fn a_node_with_one_failed_and_one_slow_dependency_never_starts() {
    // `top` needs `fast-fail` and `slow`; `slow` succeeds after the failure is known.
    let d = dag(&["fast-fail", "slow", "top"], &[&[], &[], &[0, 1]]);
    let rec = Recorder::with(&[("fast-fail", failing()), ("slow", sleepy(30))]);
    let s = walk(&d, &rec, 2, false).await;
    assert_eq!(
        statuses(&s),
        [("fast-fail", "failed"), ("slow", "ran"), ("top", "skipped")]
    );
    assert_eq!(rec.started(), ["fast-fail", "slow"]);
}

#[test]
fn the_walk_is_send_so_callers_can_spawn_it() {
    fn assert_send<T: Send>(_: &T) {}
    let d = dag(&["a"], &[&[]]);
    let rec = Recorder::default();
    let fut = run(
        &d,
        &rec,
        Arc::new(Silent),
        Options::default(),
        CancellationToken::new(),
    );
    assert_send(&fut);
}
