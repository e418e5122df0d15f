//! `sanctuary ci [--keep] [--junit FILE]`: the whole pipeline for a CI job, without prompts —
//! validate, plan and apply the whole stack, run every test, then tear the stack down: the
//! project's containers, networks, volumes and images (it is a throwaway stack), also after a
//! failure or Ctrl-C, unless `--keep`.
//!
//! Exit codes: 0 every test passed · 1 a test failed · 2 the manifest is invalid · 3 the
//! stack could not be brought up (build, health timeout, Docker unreachable) · 130
//! interrupted. A failing teardown is reported and turns an otherwise passing run into 3.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
use clap::{Args as _, FromArgMatches as _};

use super::test::{apply_nodes, run_tests, select, TestOpts};
use super::Context;
use crate::backend::docker::DockerBackend;
use crate::backend::names;
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
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let opts = TestOpts {
        tags: Vec::new(),
        no_cache: false,
        junit: args.junit.clone(),
        jobs: args.jobs,
    };
    let outcome = pipeline(ctx, &m, &opts);
    if args.keep {
        if !ctx.json {
            println!("Keeping the stack of project {} (--keep).", m.project.name);
        }
        return outcome;
    }
    let teardown = teardown(ctx, &m.project.name);
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
}

fn pipeline(
    ctx: &Context,
    m: &Arc<crate::manifest::Manifest>,
    opts: &TestOpts,
) -> Result<ExitCode> {
    match apply_nodes(ctx, &[], opts.jobs)? {
        ExitCode::Ok => {}
        ExitCode::Interrupted => return Ok(ExitCode::Interrupted),
        // Any failed apply is the stack's fault, not a test's.
        ExitCode::Failed => return Ok(ExitCode::Infrastructure),
        other => return Ok(other),
    }
    let all = select(m, &[], &[])?;
    run_tests(ctx, Arc::clone(m), &all, opts)
}

/// `destroy --volumes`, then the project's images.
fn teardown(ctx: &Context, project: &str) -> Result<()> {
    let cmd = super::stack::DestroyArgs::augment_args(clap::Command::new("destroy"));
    let args = cmd
        .try_get_matches_from(["destroy", "--volumes"])
        .and_then(|m| super::stack::DestroyArgs::from_arg_matches(&m))
        .map_err(|e| Error::usage(format!("cannot prepare the teardown: {e}"), "this is a bug"))?;
    super::stack::destroy(ctx, args)?;
    let rt = super::engine::runtime()?;
    let removed = rt.block_on(remove_images(project))?;
    if !ctx.json && removed > 0 {
        println!("Removed {removed} images of project {project}.");
    }
    Ok(())
}

/// Removes every image labelled with the project; returns how many.
async fn remove_images(project: &str) -> Result<usize> {
    let backend = DockerBackend::connect().await?;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={project}", names::LABEL_PROJECT)],
    )]);
    let images = backend
        .client()
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::Infrastructure(format!("cannot list the images of {project}: {e}")))?;
    let mut removed = 0;
    for image in images {
        backend
            .client()
            .remove_image(
                &image.id,
                // Parent layers stay: another build on the same engine may be using them
                // as its cache right now, and removing them under it fails that build.
                Some(RemoveImageOptions {
                    force: true,
                    noprune: true,
                    ..Default::default()
                }),
                None,
            )
            .await
            .map_err(|e| {
                Error::Infrastructure(format!(
                    "cannot remove image {} of {project}: {e}",
                    image.id
                ))
            })?;
        removed += 1;
    }
    Ok(removed)
}
