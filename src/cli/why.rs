//! `sanctuary why NODE`: why any node would change now — a task that never ran or whose
//! input changed, a service whose env or image changed, a missing container — and what
//! changes upstream of it; or that it is up to date. It plans the node and what it needs,
//! exactly as apply or run would, and changes nothing.

use std::sync::Arc;

use super::engine;
use super::graph::resolve_targets;
use super::Context;
use crate::engine::{Options, Selection};
use crate::error::{ExitCode, Result};
use crate::manifest::Kind;
use crate::plan::{Action, Step};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node to explain: a task by name, or any node as `kind.name` (`service.web`).
    node: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    // A bare name is a task first: `why build` asks about the task users type.
    let target = if m.tasks.contains_key(&args.node) {
        crate::manifest::NodeId::new(Kind::Task, &args.node)
    } else {
        resolve_targets(&m, std::slice::from_ref(&args.node))?.remove(0)
    };
    let session = engine::session(Arc::clone(&m), ctx.json, Options::default())?;
    let rt = engine::runtime()?;
    let plan = rt.block_on(crate::engine::plan(
        &session,
        &Selection::Node {
            target: target.clone(),
        },
    ))?;
    session.finish();
    let Some(i) = plan.index_of(&target) else {
        return Ok(ExitCode::Ok);
    };
    let step = &plan.steps[i];
    let upstream: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| s.action.is_change() && s.subject.node() != Some(&target))
        .collect();
    if ctx.json {
        let mut obj = serde_json::json!({
            "node": step.node,
            "action": step.action,
            "would_change": step.action.is_change(),
            "reasons": step.reasons,
            "upstream": upstream.iter().map(|s| serde_json::json!({
                "node": s.node, "action": s.action, "reasons": s.reasons,
            })).collect::<Vec<_>>(),
        });
        if target.kind == Kind::Task {
            obj["task"] = serde_json::json!(target.name);
            obj["would_run"] = serde_json::json!(step.action == Action::Run);
            match step.action {
                Action::Restore => obj["restore"] = serde_json::json!(restores(step)),
                Action::Run if never_ran(step) => obj["reason"] = serde_json::json!("never ran"),
                Action::Run => obj["changes"] = serde_json::json!(step.reasons),
                _ => {}
            }
        }
        println!("{obj}");
        return Ok(ExitCode::Ok);
    }
    print!("{}", explain(step, &upstream));
    Ok(ExitCode::Ok)
}

fn never_ran(step: &Step) -> bool {
    step.reasons
        .iter()
        .any(|r| r == "never ran" || r == "never passed")
}

/// The outputs a restore brings back, from its reasons.
fn restores(step: &Step) -> Vec<String> {
    step.reasons
        .iter()
        .filter_map(|r| {
            r.strip_prefix("output ")
                .and_then(|r| r.strip_suffix(" missing (restored from the cache)"))
                .map(str::to_string)
        })
        .collect()
}

/// The explanation people read.
fn explain(step: &Step, upstream: &[&Step]) -> String {
    let name = &step.node;
    let mut out = match step.action {
        Action::UpToDate => {
            format!("{name} is up to date: nothing changed since its last success\n")
        }
        Action::Restore => {
            let mut s =
                format!("{name} is up to date; these outputs would be restored from the cache:\n");
            for r in restores(step) {
                s.push_str(&format!("  {r}\n"));
            }
            s
        }
        Action::Run if never_ran(step) => {
            format!("{name} would run: it never ran successfully\n")
        }
        Action::Run => {
            let mut s = format!("{name} would run because:\n");
            for r in &step.reasons {
                s.push_str(&format!("  {r}\n"));
            }
            s
        }
        action => {
            let mut s = format!("{name} would be {}:\n", past(action));
            for r in &step.reasons {
                s.push_str(&format!("  {r}\n"));
            }
            s
        }
    };
    if !upstream.is_empty() {
        out.push_str("upstream:\n");
        for u in upstream {
            let why = if u.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", u.reasons.join("; "))
            };
            out.push_str(&format!("  {} would {}{why}\n", u.node, u.action));
        }
    }
    out
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Build => "built",
        Action::Pull => "pulled",
        Action::Replace => "replaced",
        Action::Start => "started",
        Action::Delete => "deleted",
        Action::Blocked => "blocked",
        Action::VerifiedBackup => "backed up and verified",
        Action::Run => "run",
        Action::Restore => "restored",
        Action::UpToDate => "left alone",
    }
}
