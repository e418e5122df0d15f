//! `sanctuary run TASK… [-- ARGS]` and the shorthand `sanctuary TASK`: run tasks after their
//! dependencies, in parallel, skipping what is up to date.

use std::sync::Arc;

use super::engine;
use super::Context;
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::manifest::{diagnostic::did_you_mean, Kind, Manifest, NodeId};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tasks to run; their dependencies run first.
    #[arg(required = true, value_name = "TASK")]
    pub tasks: Vec<String>,
    /// Arguments for the named tasks, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub opts: RunOpts,
}

/// Options shared by commands that walk a graph.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOpts {
    /// Most nodes running at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Stop starting new work after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run even what is up to date.
    #[arg(long)]
    pub force: bool,
}

/// Resolves task names typed by a user, with suggestions for typos.
pub fn task_targets(m: &Manifest, names: &[String]) -> Result<Vec<NodeId>> {
    names
        .iter()
        .map(|name| {
            let id = NodeId::new(Kind::Task, name.strip_prefix("task.").unwrap_or(name));
            if m.contains(&id) {
                Ok(id)
            } else {
                let help = did_you_mean(name, m.tasks.keys().map(String::as_str))
                    .unwrap_or_else(|| "`sanctuary list` shows every task".to_string());
                Err(Error::UnknownTarget {
                    what: "task",
                    name: name.clone(),
                    help,
                })
            }
        })
        .collect()
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    run_loaded(ctx, ctx.load()?.manifest, args)
}

/// `run` with the manifest already loaded (the `sanctuary TASK` shorthand loads it first to
/// tell a task from a typo).
pub fn run_loaded(ctx: &Context, m: Manifest, args: Args) -> Result<ExitCode> {
    let m = Arc::new(m);
    let targets = task_targets(&m, &args.tasks)?;
    let options = Options {
        jobs: engine::jobs(args.opts.jobs),
        fail_fast: args.opts.fail_fast,
        force: args.opts.force,
        task_args: args.args,
        arg_targets: targets.clone(),
        ..Options::default()
    };
    let session = engine::session(Arc::clone(&m), ctx.json, options)?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        let plan = crate::engine::plan(&session, &Selection::Tasks { targets }).await?;
        // A task that needs a service brings the stack up, as apply would: take the lock.
        let _lock = if plan.changes_the_stack() {
            Some(session.lock(&format!("run {}", args.tasks.join(" ")))?)
        } else {
            None
        };
        let (_, code) = engine::walk(&session, &plan, false, true).await?;
        Ok(code)
    })
}
