//! `sanctuary run TASK… [-- ARGS]` and the shorthand `sanctuary TASK`: run tasks after their
//! dependencies, in parallel, skipping what is up to date.

use std::sync::Arc;

use super::engine;
use super::Context;
use crate::error::{Error, ExitCode, Result};
use crate::exec::{self, Dag, Options};
use crate::graph::Graph;
use crate::manifest::{diagnostic::did_you_mean, Kind, Manifest, NodeId};
use crate::run::TaskExecutor;

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

/// The tasks `targets` need, in a DAG the scheduler can walk.
pub fn task_dag(m: &Manifest, targets: &[NodeId]) -> Dag<NodeId> {
    let graph = Graph::from_manifest(m)
        .select(targets)
        .filter(|n| n.kind == Kind::Task);
    dag_of(&graph)
}

pub fn dag_of(graph: &Graph) -> Dag<NodeId> {
    let nodes: Vec<NodeId> = graph.nodes().to_vec();
    let deps = (0..graph.len())
        .map(|i| graph.dependencies(i).iter().map(|e| e.to).collect())
        .collect();
    // The manifest validator has rejected cycles already.
    Dag::new(nodes, deps).expect("a validated manifest has no cycles")
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let targets = task_targets(&m, &args.tasks)?;
    let dag = task_dag(&m, &targets);
    let salt = engine::salt(&m)?;
    let executor =
        TaskExecutor::new(Arc::clone(&m), salt, args.opts.force).with_args(&targets, args.args);
    let reporter = engine::reporter(ctx.json);
    let options = Options {
        jobs: engine::jobs(args.opts.jobs),
        fail_fast: args.opts.fail_fast,
    };
    let rt = engine::runtime()?;
    let cancel = rt.block_on(async { engine::interrupt_token() });
    let summary = rt.block_on(exec::run(
        &dag,
        &executor,
        reporter,
        options,
        cancel.clone(),
    ));
    executor.finish();
    Ok(engine::exit_of(&summary, &cancel))
}
