//! `sanctuary test [NAME…] [--tag T] [--no-cache] [--junit FILE] [-j N]`: bring up what the
//! chosen tests need (as `apply -y` would, restricted to those nodes), run the tests in
//! parallel, show each failure's output, and end with `N passed, N failed, N skipped, N
//! cached`. Exit 0 when all passed, 1 when a test failed, 3 when what they need could not be
//! brought up.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args as _, FromArgMatches as _};

use super::engine;
use super::run::dag_of;
use super::Context;
use crate::error::{Error, ExitCode, Result};
use crate::exec::{self, Options};
use crate::graph::Graph;
use crate::manifest::{diagnostic::did_you_mean, ImageRef, Kind, Manifest, NodeId, TestCheck};
use crate::testing::{self, junit, tally, Tally, TestExecutor};

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
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let selected = select(&m, &args.names, &args.opts.tags)?;
    run_tests(ctx, m, &selected, &args.opts)
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

/// What `apply` must bring up before `tests` run: needed services, declared images tests
/// run in, and the non-test nodes they depend on.
pub fn apply_targets(m: &Manifest, tests: &[NodeId]) -> Vec<NodeId> {
    let mut out = BTreeSet::new();
    for id in tests {
        let Some(t) = m.tests.get(&id.name) else {
            continue;
        };
        for svc in testing::needed_services(t) {
            out.insert(NodeId::new(Kind::Service, &svc));
        }
        if let TestCheck::Command {
            image: Some(ImageRef::Declared(img)),
            ..
        } = &t.check
        {
            out.insert(NodeId::new(Kind::Image, img));
        }
        for d in &t.depends_on {
            if matches!(
                d.node.kind,
                Kind::Image | Kind::Volume | Kind::Network | Kind::Service | Kind::Task
            ) {
                out.insert(d.node.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Runs `apply -y TARGETS` (everything when `targets` is empty) through the apply command
/// itself, so tests and `ci` bring the stack up exactly as a user's apply would.
pub(super) fn apply_nodes(
    ctx: &Context,
    targets: &[NodeId],
    jobs: Option<usize>,
) -> Result<ExitCode> {
    let mut argv = vec!["apply".to_string(), "-y".to_string()];
    if let Some(j) = jobs {
        argv.push(format!("--jobs={j}"));
    }
    argv.push("--".to_string());
    argv.extend(targets.iter().map(|t| t.to_string()));
    let cmd = super::apply::ApplyArgs::augment_args(clap::Command::new("apply"));
    let args = cmd
        .try_get_matches_from(argv)
        .and_then(|m| super::apply::ApplyArgs::from_arg_matches(&m))
        .map_err(|e| Error::usage(format!("cannot prepare the apply: {e}"), "this is a bug"))?;
    super::apply::apply(ctx, args)
}

/// Applies what `selected` needs, then runs them (and the tests they depend on).
pub(super) fn run_tests(
    ctx: &Context,
    m: Arc<Manifest>,
    selected: &[NodeId],
    opts: &TestOpts,
) -> Result<ExitCode> {
    let graph = Graph::from_manifest(&m)
        .select(selected)
        .filter(|n| n.kind == Kind::Test);
    let dag = dag_of(&graph);
    let tests: Vec<NodeId> = graph.nodes().to_vec();
    let targets = apply_targets(&m, &tests);
    if !targets.is_empty() {
        match apply_nodes(ctx, &targets, opts.jobs)? {
            ExitCode::Ok => {}
            ExitCode::Interrupted => return Ok(ExitCode::Interrupted),
            other => {
                if !ctx.json {
                    eprintln!("error: cannot bring up what the tests need; no test ran");
                }
                return Ok(if other == ExitCode::Failed {
                    ExitCode::Infrastructure
                } else {
                    other
                });
            }
        }
    }
    let docker = tests
        .iter()
        .filter_map(|id| m.tests.get(&id.name))
        .any(testing::needs_docker);
    let rt = engine::runtime()?;
    let json = ctx.json;
    let (summary, outputs, cancelled) = rt.block_on(async {
        let backend = if docker {
            Some(engine::docker().await?)
        } else {
            None
        };
        let executor = TestExecutor::new(Arc::clone(&m), backend, opts.no_cache);
        let cancel = engine::interrupt_token();
        let options = Options {
            jobs: engine::jobs(opts.jobs),
            fail_fast: false,
        };
        let summary = exec::run(
            &dag,
            &executor,
            engine::reporter(json),
            options,
            cancel.clone(),
        )
        .await;
        executor.finish();
        Ok::<_, Error>((summary, executor.outputs(), cancel.is_cancelled()))
    })?;
    let cases = tally::cases(&summary, &outputs);
    let counts = Tally::of(&cases);
    if let Some(path) = &opts.junit {
        let xml = junit::render(&m.project.name, &cases);
        crate::fsutil::write_atomic(path, xml.as_bytes()).map_err(|source| Error::Io {
            message: format!("cannot write the JUnit report {}", path.display()),
            source,
        })?;
    }
    if json {
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
        println!("{}", counts.line());
    }
    Ok(if cancelled {
        ExitCode::Interrupted
    } else if counts.failed > 0 || counts.skipped > 0 {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}
