//! `sanctuary plan` and `sanctuary apply`: converge Docker to the manifest, as Terraform
//! does for clouds — a plan with reasons first, then the changes, in dependency order and in
//! parallel, each node recorded in the state store as it finishes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::engine;
use super::graph::resolve_targets;
use super::run::{dag_of, RunOpts};
use super::Context;
use crate::apply::ApplyExecutor;
use crate::backend::Backend;
use crate::error::{Error, ExitCode, Result};
use crate::exec::{self, Options};
use crate::manifest::{Manifest, NodeId};
use crate::plan::{self, Plan};
use crate::run::TaskExecutor;
use crate::state::{Lock, StateFile};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Plan only these nodes and what they need.
    targets: Vec<String>,
    /// Save the plan to FILE, for `sanctuary apply FILE`.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Nodes to apply (and what they need), or a plan file saved with `plan -o`.
    targets: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    #[command(flatten)]
    opts: RunOpts,
}

/// A saved plan: the plan and the manifest text it was made from.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedPlan {
    manifest_sha256: String,
    targets: Vec<String>,
    plan: Plan,
}

pub(crate) fn prior_spec(
    state: &StateFile,
) -> impl Fn(&NodeId) -> Option<serde_json::Value> + Sync + '_ {
    move |id: &NodeId| {
        state
            .get(id.kind.as_str(), &id.name)
            .map(|r| r.spec.clone())
            .filter(|v| !v.is_null())
    }
}

async fn make_plan(
    m: &Manifest,
    backend: &dyn Backend,
    targets: &[NodeId],
    state: &StateFile,
) -> Result<Plan> {
    let salt = engine::salt(m)?;
    let graph = plan::apply_graph(m, targets);
    let prior = prior_spec(state);
    let tasks = TaskExecutor::new(Arc::new(m.clone()), salt.clone(), false);
    let plan = plan::make(
        m,
        backend,
        &graph,
        &salt,
        &prior,
        &tasks,
        targets.is_empty(),
    )
    .await?;
    tasks.finish();
    let mut plan = plan;
    plan::retry_unfinished(&mut plan, state);
    Ok(plan)
}

fn manifest_sha(m: &Manifest) -> String {
    plan::desired::sha256_hex(m.source.as_bytes())
}

pub fn plan(ctx: &Context, args: PlanArgs) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = loaded.manifest;
    let targets = resolve_targets(&m, &args.targets)?;
    let state = StateFile::load(&StateFile::path_in(&m.project.state_dir))?;
    let rt = engine::runtime()?;
    let plan = rt.block_on(async {
        let backend = engine::docker().await?;
        make_plan(&m, backend.as_ref(), &targets, &state).await
    })?;
    if ctx.json {
        println!("{}", serde_json::to_string(&plan).unwrap_or_default());
    } else {
        print!("{}", plan.render(true));
    }
    if let Some(out) = &args.out {
        let saved = SavedPlan {
            manifest_sha256: manifest_sha(&m),
            targets: args.targets.clone(),
            plan: plan.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&saved).unwrap_or_default();
        crate::fsutil::write_atomic(out, &bytes).map_err(|source| Error::Io {
            message: format!("cannot write the plan to {}", out.display()),
            source,
        })?;
        if !ctx.json {
            println!(
                "Saved the plan to {}; apply it with `sanctuary apply {}`.",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::Usage
    } else {
        ExitCode::Ok
    })
}

fn confirm(plan: &Plan) -> Result<bool> {
    eprint!("Apply these changes to project {}? [y/N] ", plan.project);
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            message: "cannot read the answer".into(),
            source,
        })?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

pub fn apply(ctx: &Context, args: ApplyArgs) -> Result<ExitCode> {
    // `apply plan.json` applies a saved plan; anything else names nodes.
    let saved_path = match args.targets.as_slice() {
        [one] if std::path::Path::new(one).is_file() => Some(PathBuf::from(one)),
        _ => None,
    };
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let (target_names, saved) = match &saved_path {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|source| Error::Io {
                message: format!("cannot read the plan {}", p.display()),
                source,
            })?;
            let saved: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| {
                Error::usage(
                    format!("{} is not a saved plan: {e}", p.display()),
                    "save one with `sanctuary plan -o FILE`",
                )
            })?;
            (saved.targets.clone(), Some(saved))
        }
        None => (args.targets.clone(), None),
    };
    let targets = resolve_targets(&m, &target_names)?;
    let state_dir = m.project.state_dir.clone();
    let lock = Lock::acquire(&state_dir, &format!("apply {}", m.project.name))?;
    let state_path = StateFile::path_in(&state_dir);
    let state = StateFile::load(&state_path)?;
    let rt = engine::runtime()?;
    let json = ctx.json;
    let result = rt.block_on(async {
        let backend = engine::docker().await?;
        let plan = make_plan(&m, backend.as_ref(), &targets, &state).await?;
        if let (Some(saved), Some(path)) = (&saved, &saved_path) {
            if saved.manifest_sha256 != manifest_sha(&m) {
                return Err(Error::StalePlan {
                    path: path.clone(),
                    reason: "the manifest changed since it was saved".into(),
                });
            }
            if saved.plan.changes() != plan.changes() {
                return Err(Error::StalePlan {
                    path: path.clone(),
                    reason: "what Docker holds changed since it was saved".into(),
                });
            }
        }
        if json {
            println!(
                "{}",
                serde_json::json!({ "event": "plan", "plan": plan, "summary": plan.summary_line() })
            );
        } else {
            print!("{}", plan.render(false));
        }
        if !plan.has_changes() {
            return Ok(ExitCode::Ok);
        }
        // On a terminal, ask; off a terminal (CI, scripts) proceed, as documented.
        if saved.is_none()
            && !args.yes
            && std::io::stdin().is_terminal()
            && !json
            && !confirm(&plan)?
        {
            println!("Nothing applied.");
            return Ok(ExitCode::Ok);
        }
        // Orphans first: a deleted service frees its port and name for the rest.
        for step in plan
            .steps
            .iter()
            .filter(|s| s.action == plan::Action::Delete)
        {
            if step.node.starts_with("container ") {
                backend.remove_container(&step.object, true).await?;
            } else if step.node.starts_with("network ") {
                backend.remove_network(&step.object).await?;
            }
            if !json {
                println!("- deleted {}", step.node);
            }
        }
        let salt = engine::salt(&m)?;
        let tasks = Arc::new(TaskExecutor::new(Arc::clone(&m), salt.clone(), false));
        let executor = ApplyExecutor::new(
            Arc::clone(&m),
            Arc::clone(&backend),
            salt,
            tasks.clone(),
            state,
            state_path.clone(),
        );
        let graph = plan::apply_graph(&m, &targets);
        let dag = dag_of(&graph);
        let reporter = engine::reporter(json);
        let options = Options {
            jobs: engine::jobs(args.opts.jobs),
            fail_fast: args.opts.fail_fast,
        };
        let cancel = engine::interrupt_token();
        let summary = exec::run(&dag, &executor, reporter, options, cancel.clone()).await;
        tasks.finish();
        let code = engine::exit_of(&summary, &cancel);
        if code == ExitCode::Failed {
            // A failed apply is an infrastructure problem (build, health, port), not a test.
            return Ok(ExitCode::Infrastructure);
        }
        Ok(code)
    });
    // Rules marked `on-apply` are part of apply: once the stack converged, one pass each.
    let result = match result {
        Ok(ExitCode::Ok) if targets.is_empty() => {
            let rules: Vec<String> = m
                .syncs
                .values()
                .filter(|s| s.on_apply)
                .map(|s| s.name.clone())
                .collect();
            if rules.is_empty() {
                Ok(ExitCode::Ok)
            } else {
                super::sync::run(ctx, super::sync::Args::passes(rules))
            }
        }
        other => other,
    };
    drop(lock);
    result
}
