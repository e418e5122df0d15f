//! `sanctuary why TASK`: why a task would run now — never ran, or exactly what changed since
//! its last success — or that it is up to date.

use std::sync::Arc;

use super::engine;
use super::run::{task_dag, task_targets};
use super::Context;
use crate::error::{Error, ExitCode, Result};
use crate::run::{why, TaskExecutor, Why};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task to explain.
    task: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let targets = task_targets(&m, std::slice::from_ref(&args.task))?;
    let dag = task_dag(&m, &targets);
    let executor = TaskExecutor::new(Arc::clone(&m), engine::salt(&m)?, false);
    let answer = why(&executor, dag.nodes(), &targets[0])
        .map_err(|e| Error::usage(e, "fix the task's inputs"))?;
    executor.finish();
    let name = &targets[0].name;
    if ctx.json {
        let obj = match &answer {
            Why::NeverRan => {
                serde_json::json!({"task": name, "would_run": true, "reason": "never ran"})
            }
            Why::UpToDate { restore } => {
                serde_json::json!({"task": name, "would_run": false, "restore": restore})
            }
            Why::Changed(changes) => {
                serde_json::json!({"task": name, "would_run": true, "changes": changes})
            }
        };
        println!("{obj}");
        return Ok(ExitCode::Ok);
    }
    match answer {
        Why::NeverRan => println!("{name} would run: it never ran successfully"),
        Why::UpToDate { restore } if restore.is_empty() => {
            println!("{name} is up to date: nothing changed since its last success")
        }
        Why::UpToDate { restore } => {
            println!("{name} is up to date; these outputs would be restored from the cache:");
            for r in restore {
                println!("  {r}");
            }
        }
        Why::Changed(changes) => {
            println!("{name} would run because:");
            for c in changes {
                println!("  {c}");
            }
        }
    }
    Ok(ExitCode::Ok)
}
