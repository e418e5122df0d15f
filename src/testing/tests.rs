//! Tests through the engine without Docker: host tests walked by the real scheduler, for
//! caching by key, failures that are never cached, inputs that re-run a test, and timeouts.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::tally::{self, Tally};
use crate::engine::{self, Options, Selection, Session};
use crate::exec::report::Silent;
use crate::manifest::{self, Kind, NodeId};

const MANIFEST: &str = r#"project "unit"
test "ok" {
    run "test -f input.txt"
    inputs "input.txt"
}
test "bad" {
    run "echo broken-output"
    run "exit 4"
}
test "slow" {
    run "sleep 5"
    timeout "200ms"
}
"#;

/// Runs `names` once and returns the tally and the cases.
async fn run(dir: &std::path::Path, names: &[&str], no_cache: bool) -> (Tally, Vec<super::Case>) {
    let m = Arc::new(manifest::load(&dir.join("Sanctuary.kdl")).unwrap().manifest);
    let tests: Vec<NodeId> = names.iter().map(|n| NodeId::new(Kind::Test, *n)).collect();
    let options = Options {
        jobs: 2,
        no_cache,
        ..Options::default()
    };
    let session = Session::new(m, options).unwrap();
    let selection = Selection::Tests {
        tests,
        stack: false,
    };
    let plan = engine::plan(&session, &selection).await.unwrap();
    let summary = engine::walk(
        &session,
        &plan,
        false,
        Arc::new(Silent),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let cases = tally::cases(&summary, &session.test_outputs());
    (Tally::of(&cases), cases)
}

#[tokio::test]
async fn passing_tests_are_cached_until_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Sanctuary.kdl"), MANIFEST).unwrap();
    std::fs::write(dir.path().join("input.txt"), "one").unwrap();
    let (t, _) = run(dir.path(), &["ok"], false).await;
    assert_eq!(t.line(), "1 passed, 0 failed, 0 skipped, 0 cached");
    let (t, _) = run(dir.path(), &["ok"], false).await;
    assert_eq!(t.line(), "0 passed, 0 failed, 0 skipped, 1 cached");
    let (t, _) = run(dir.path(), &["ok"], true).await;
    assert_eq!(t.line(), "1 passed, 0 failed, 0 skipped, 0 cached");
    std::fs::write(dir.path().join("input.txt"), "two").unwrap();
    let (t, _) = run(dir.path(), &["ok"], false).await;
    assert_eq!(t.line(), "1 passed, 0 failed, 0 skipped, 0 cached");
}

#[tokio::test]
async fn failures_keep_their_output_and_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Sanctuary.kdl"), MANIFEST).unwrap();
    for _ in 0..2 {
        let (t, cases) = run(dir.path(), &["bad"], false).await;
        assert_eq!(t.line(), "0 passed, 1 failed, 0 skipped, 0 cached");
        assert_eq!(
            cases[0].status,
            super::CaseStatus::Failed {
                message: "exit status 4".into(),
                output: "broken-output\n".into()
            }
        );
    }
}

#[tokio::test]
async fn tests_stop_at_their_timeout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Sanctuary.kdl"), MANIFEST).unwrap();
    let started = std::time::Instant::now();
    let (t, cases) = run(dir.path(), &["slow"], false).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(t.failed, 1);
    assert!(
        matches!(&cases[0].status, super::CaseStatus::Failed { message, .. } if message.starts_with("timed out after 200ms")),
        "{:?}",
        cases[0].status
    );
}
