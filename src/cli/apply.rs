//! `sanctuary plan` and `sanctuary apply`: converge Docker to the manifest, as Terraform
//! does for clouds — a plan with reasons first, then the changes, in dependency order and in
//! parallel, each node recorded in the state store as it finishes.

use std::path::PathBuf;
use std::sync::Arc;

use super::engine;
use super::graph::resolve_targets;
use super::run::RunOpts;
use super::Context;
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::manifest::Manifest;
use crate::plan::Plan;

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

fn manifest_sha(m: &Manifest) -> String {
    crate::plan::desired::sha256_hex(m.source.as_bytes())
}

pub fn plan(ctx: &Context, args: PlanArgs) -> Result<ExitCode> {
    let rt = engine::runtime()?;
    let early = crate::engine::connect_early(&rt);
    let m = Arc::new(ctx.load()?.manifest);
    let targets = resolve_targets(&m, &args.targets)?;
    let session = engine::session(Arc::clone(&m), ctx.json, Options::default())?.adopt(early);
    let plan = rt.block_on(crate::engine::plan(&session, &Selection::Apply { targets }))?;
    session.finish();
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

fn read_saved(p: &std::path::Path) -> Result<SavedPlan> {
    let bytes = std::fs::read(p).map_err(|source| Error::Io {
        message: format!("cannot read the plan {}", p.display()),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(
            format!("{} is not a saved plan: {e}", p.display()),
            "save one with `sanctuary plan -o FILE`",
        )
    })
}

pub fn apply(ctx: &Context, args: ApplyArgs) -> Result<ExitCode> {
    // `apply plan.json` applies a saved plan; anything else names nodes.
    let saved_path = match args.targets.as_slice() {
        [one] if std::path::Path::new(one).is_file() => Some(PathBuf::from(one)),
        _ => None,
    };
    let rt = engine::runtime()?;
    let early = crate::engine::connect_early(&rt);
    let m = Arc::new(ctx.load()?.manifest);
    let saved = saved_path.as_deref().map(read_saved).transpose()?;
    let names = match &saved {
        Some(s) => s.targets.clone(),
        None => args.targets.clone(),
    };
    let targets = resolve_targets(&m, &names)?;
    let options = Options {
        jobs: engine::jobs(args.opts.jobs),
        fail_fast: args.opts.fail_fast,
        force: args.opts.force,
        ..Options::default()
    };
    let session = engine::session(Arc::clone(&m), ctx.json, options)?.adopt(early);
    let json = ctx.json;
    rt.block_on(async {
        // The lock comes first: an apply still under way elsewhere would otherwise look
        // like a stack with nothing to do.
        let _lock = session.lock(&format!("apply {}", m.project.name))?;
        let plan = crate::engine::plan(&session, &Selection::Apply { targets }).await?;
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
            session.finish();
            return Ok(ExitCode::Ok);
        }
        let question = format!("Apply these changes to project {}?", plan.project);
        if saved.is_none() && !engine::confirmed(&question, args.yes, json)? {
            println!("Nothing applied.");
            return Ok(ExitCode::Ok);
        }
        let started = std::time::Instant::now();
        let (_, code) = engine::walk(&session, &plan, saved.is_some(), true).await?;
        let command = std::iter::once("apply".to_string())
            .chain(names.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        super::history::record(&session, &command, code, started.elapsed(), json, None).await;
        Ok(code)
    })
}
