//! `sanctuary test [NAME…] [--tag T] [--no-cache] [--junit FILE] [-j N]`: one walk that
//! brings up what the chosen tests need and runs them in parallel, then each failure's
//! output and `N passed, N failed, N skipped, N cached`. Exit 0 when all passed, 1 when a
//! test failed, 3 when what they need could not be brought up.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::engine;
use super::Context;
use crate::engine::{Options, Selection, Session};
use crate::error::{Error, ExitCode, Result};
use crate::manifest::{diagnostic::did_you_mean, Kind, Manifest, NodeId};
use crate::testing::{self, junit, tally, Tally};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tests to run (all when none and no --tag).
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    #[command(flatten)]
    opts: TestOpts,
}

/// Options shared by `test` and `ci`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestOpts {
    /// Only tests with this tag (repeatable: a test with any of them runs).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Run tests even when they passed before with nothing changed.
    #[arg(long)]
    pub no_cache: bool,
    /// Write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Most tests running at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    let tests = select(&m, &args.names, &args.opts.tags)?;
    let options = Options {
        jobs: engine::jobs(args.opts.jobs),
        no_cache: args.opts.no_cache,
        ..Options::default()
    };
    let session = engine::session(m, ctx.json, options)?;
    let rt = engine::runtime()?;
    let selection = Selection::Tests {
        tests,
        stack: false,
    };
    rt.block_on(run_tests(
        ctx,
        &session,
        &selection,
        args.opts.junit.as_deref(),
        true,
    ))
}

/// The tests named (with suggestions for typos) and tagged; all tests when neither is given.
pub fn select(m: &Manifest, names: &[String], tags: &[String]) -> Result<Vec<NodeId>> {
    let mut chosen = Vec::new();
    for name in names {
        let bare = name.strip_prefix("test.").unwrap_or(name);
        if !m.tests.contains_key(bare) {
            let help = did_you_mean(name, m.tests.keys().map(String::as_str))
                .unwrap_or_else(|| "`sanctuary list` shows every test".to_string());
            return Err(Error::UnknownTarget {
                what: "test",
                name: name.clone(),
                help,
            });
        }
        chosen.push(NodeId::new(Kind::Test, bare));
    }
    if !tags.is_empty() {
        let tagged: Vec<NodeId> = m
            .tests
            .values()
            .filter(|t| t.tags.iter().any(|tag| tags.contains(tag)))
            .map(|t| NodeId::new(Kind::Test, &t.name))
            .collect();
        if tagged.is_empty() {
            let all: BTreeSet<&str> = m
                .tests
                .values()
                .flat_map(|t| t.tags.iter().map(String::as_str))
                .collect();
            return Err(Error::usage(
                format!("no test has the tag {}", tags.join(" or ")),
                if all.is_empty() {
                    "no test declares `tags`".to_string()
                } else {
                    format!(
                        "tags in use: {}",
                        all.into_iter().collect::<Vec<_>>().join(", ")
                    )
                },
            ));
        }
        chosen.extend(tagged);
    }
    if names.is_empty() && tags.is_empty() {
        chosen = m.tests.keys().map(|n| NodeId::new(Kind::Test, n)).collect();
    }
    let mut seen = BTreeSet::new();
    chosen.retain(|id| seen.insert(id.clone()));
    Ok(chosen)
}

/// Walks `selection` (tests and what they need), then reports the tests: failures with
/// their output, the counts line, JUnit when asked. The exit code follows the worst
/// failure: 1 a test (or a task) failed, 3 what the tests need could not be brought up.
/// `lock`: take the lock when the walk changes the stack (false when the caller holds it).
pub(super) async fn run_tests(
    ctx: &Context,
    session: &Session,
    selection: &Selection,
    junit_path: Option<&std::path::Path>,
    lock: bool,
) -> Result<ExitCode> {
    let m = &session.manifest;
    let plan = crate::engine::plan(session, selection).await?;
    let _lock = if lock && plan.changes_the_stack() {
        Some(session.lock(&format!("test {}", m.project.name))?)
    } else {
        None
    };
    let (summary, code) = engine::walk(session, &plan, false, true).await?;
    let cases = tally::cases(&summary, &session.test_outputs());
    let counts = Tally::of(&cases);
    if let Some(path) = junit_path {
        let xml = junit::render(&m.project.name, &cases);
        crate::fsutil::write_atomic(path, xml.as_bytes()).map_err(|source| Error::Io {
            message: format!("cannot write the JUnit report {}", path.display()),
            source,
        })?;
    }
    if ctx.json {
        let failures: Vec<_> = cases
            .iter()
            .filter_map(|c| match &c.status {
                testing::CaseStatus::Failed { message, output } => Some(serde_json::json!({
                    "test": c.name, "message": message, "output": output,
                })),
                _ => None,
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "event": "tests",
                "passed": counts.passed,
                "failed": counts.failed,
                "skipped": counts.skipped,
                "cached": counts.cached,
                "failures": failures,
            })
        );
    } else {
        print!("{}", tally::failure_report(&cases));
        if code == ExitCode::Infrastructure && counts.skipped > 0 {
            eprintln!(
                "error: what the tests need could not be brought up; {} test(s) did not run",
                counts.skipped
            );
        }
        println!("{}", counts.line());
    }
    Ok(code)
}
