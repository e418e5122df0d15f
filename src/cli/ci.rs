//! `sanctuary ci [--keep] [--junit FILE]`: the whole pipeline for a CI job, without prompts —
//! validate, one walk that brings the whole stack up and runs every test, then a teardown
//! walk that removes the project's containers, networks, volumes and images (it is a
//! throwaway stack), also after a failure or Ctrl-C, unless `--keep`. The manifest is loaded
//! once and both walks share one session.
//!
//! Exit codes: 0 every test passed · 1 a test failed · 2 the manifest is invalid · 3 the
//! stack could not be brought up (build, health timeout, Docker unreachable) · 130
//! interrupted. A failing teardown is reported and turns an otherwise passing run into 3.

use std::sync::Arc;

use super::test::{run_tests, select};
use super::{engine, Context};
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the stack running afterwards (for debugging a failure).
    #[arg(long)]
    keep: bool,
    /// Write the test results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// Most nodes running at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // An invalid manifest stops here with exit 2; nothing has been created yet.
    let m = Arc::new(ctx.load()?.manifest);
    let tests = select(&m, &[], &[])?;
    let options = Options {
        jobs: engine::jobs(args.jobs),
        ..Options::default()
    };
    let session = engine::session(Arc::clone(&m), ctx.json, options)?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        let selection = Selection::Tests { tests, stack: true };
        let outcome = run_tests(ctx, &session, &selection, args.junit.as_deref(), true).await;
        if args.keep {
            if !ctx.json {
                println!("Keeping the stack of project {} (--keep).", m.project.name);
            }
            return outcome;
        }
        let teardown = teardown(&session).await;
        match (outcome, teardown) {
            (Ok(ExitCode::Ok), Err(e)) => Err(Error::Infrastructure(format!(
                "the tests passed, but tearing the stack down failed: {e}"
            ))),
            // The run's own result decides the code; the teardown's error is still shown.
            (outcome, Err(e)) => {
                super::output::eprint_diag(&e);
                outcome
            }
            (outcome, Ok(())) => outcome,
        }
    })
}

/// The teardown walk: containers, networks, volumes (backed up and verified first where a
/// backup node reads them) and images.
async fn teardown(session: &crate::engine::Session) -> Result<()> {
    let selection = Selection::Destroy {
        volumes: true,
        images: true,
    };
    let plan = crate::engine::plan(session, &selection).await?;
    if plan.steps.is_empty() {
        return Ok(());
    }
    let _lock = session.lock(&format!("ci teardown {}", session.manifest.project.name))?;
    // A first Ctrl-C interrupted the tests; the teardown still runs (a second one exits at
    // once, as everywhere).
    let (summary, code) = engine::walk(session, &plan, false, false).await?;
    session.forget_stack(true);
    match code {
        ExitCode::Ok => Ok(()),
        _ => {
            let failed: Vec<String> = summary
                .failed()
                .iter()
                .map(|n| format!("{}: {}", n.label, n.status.note().unwrap_or_default()))
                .collect();
            Err(Error::Infrastructure(failed.join("; ")))
        }
    }
}
