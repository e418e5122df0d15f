//! `sanctuary plan` and `sanctuary apply`: converge Docker to the manifest, as Terraform
//! does for clouds — a plan with reasons first, then the changes, in dependency order and in
//! parallel, each node recorded in the state store as it finishes.

use std::path::PathBuf;
use std::sync::Arc;

use super::engine;
use super::graph::resolve_targets;
use super::history;
use super::run::RunOpts;
use super::Context;
use crate::engine::{Options, Selection, Session};
use crate::error::{Error, ExitCode, Result};
use crate::history::History;
use crate::manifest::AlertEvent;
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
    /// Plan the manifest of this commit (a branch, tag or commit id), not the working tree's.
    #[arg(long = "ref", value_name = "REF")]
    reference: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Nodes to apply (and what they need), or a plan file saved with `plan -o`.
    targets: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Apply the manifest, build contexts and task inputs of this commit (a branch, tag or
    /// commit id), read with libgit2 — never the working tree's.
    #[arg(long = "ref", value_name = "REF")]
    reference: Option<String>,
    #[command(flatten)]
    after: AfterApply,
    #[command(flatten)]
    opts: RunOpts,
}

/// What happens around the changes: backups before, tests after, and going back when it
/// went wrong.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct AfterApply {
    /// Before changing anything, take every declared backup whose source exists; the
    /// snapshots are recorded with the generation, for `rollback --with-data`.
    #[arg(long)]
    pub backup: bool,
    /// Run every test once the apply succeeded; a failing test fails the apply.
    #[arg(long)]
    pub test: bool,
    /// When a service does not become ready (or, with --test, a test fails), go back to the
    /// last generation that applied cleanly; exit 5 when that worked.
    #[arg(long)]
    pub rollback_on_failure: bool,
}

/// A saved plan: the plan and the manifest text it was made from.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SavedPlan {
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
    let m = Arc::new(ctx.load_from(args.reference.as_deref())?.manifest);
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
    let sourced = ctx.load_from(args.reference.as_deref())?;
    let saved = match saved_path {
        Some(p) => Some((read_saved(&p)?, p)),
        None => None,
    };
    let options = Options {
        jobs: engine::jobs(args.opts.jobs),
        fail_fast: args.opts.fail_fast,
        force: args.opts.force,
        ..Options::default()
    };
    let m = Arc::new(sourced.manifest);
    let session = engine::session(Arc::clone(&m), ctx.json, options)?.adopt(early);
    let converge = Converge {
        names: match &saved {
            Some((s, _)) => s.targets.clone(),
            None => args.targets.clone(),
        },
        yes: args.yes,
        saved,
        after: args.after,
        at: sourced.at,
        git: sourced.git,
    };
    rt.block_on(converge.run(ctx, &session))
}

/// One apply: plan, confirm, walk, test, record — and roll back when asked to and it failed.
pub(super) struct Converge {
    /// The nodes typed (all when empty).
    pub names: Vec<String>,
    pub yes: bool,
    /// The saved plan being applied, and its file.
    pub saved: Option<(SavedPlan, PathBuf)>,
    pub after: AfterApply,
    /// Where the working-tree manifest is (or would be): a rollback is loaded as if there.
    pub at: PathBuf,
    /// The commit the manifest was read from, under `--ref`.
    pub git: Option<crate::history::GitInfo>,
}

impl Converge {
    pub async fn run(self, ctx: &Context, session: &Session) -> Result<ExitCode> {
        let m = &session.manifest;
        let json = ctx.json;
        let targets = resolve_targets(m, &self.names)?;
        // The lock comes first: an apply still under way elsewhere would otherwise look
        // like a stack with nothing to do.
        let _lock = session.lock(&format!("apply {}", m.project.name))?;
        let plan = crate::engine::plan(session, &Selection::Apply { targets }).await?;
        if let Some((saved, path)) = &self.saved {
            if saved.manifest_sha256 != manifest_sha(m) {
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
            if history::unrecorded(session) {
                let made = history::Made {
                    command: format!(
                        "{} (recording changes made since the last generation)",
                        self.command()
                    ),
                    code: ExitCode::Ok,
                    took: std::time::Duration::ZERO,
                    rollback_of: None,
                    git: self.git.clone(),
                    who_dir: self.who_dir(),
                    rolled_back: false,
                    backups: Vec::new(),
                };
                history::record(session, made, json).await;
            }
            // Nothing was applied, so there is nothing to go back from.
            if self.after.test {
                return self.tests(ctx, session).await;
            }
            session.finish();
            return Ok(ExitCode::Ok);
        }
        let question = format!("Apply these changes to project {}?", plan.project);
        if self.saved.is_none() && !engine::confirmed(&question, self.yes, json)? {
            println!("Nothing applied.");
            return Ok(ExitCode::Ok);
        }
        let started = std::time::Instant::now();
        let backups = match self.after.backup {
            true => match super::data::take(session, None, json).await? {
                Ok(taken) => taken,
                Err(code) => {
                    eprintln!("error: a backup before the apply failed; nothing was applied");
                    return Ok(code);
                }
            },
            false => Vec::new(),
        };
        let (_, mut code) = engine::walk(session, &plan, self.saved.is_some(), true).await?;
        if code == ExitCode::Ok && self.after.test {
            code = self.tests(ctx, session).await?;
        }
        let failed = !matches!(code, ExitCode::Ok | ExitCode::Interrupted);
        let h = History::in_state_dir(&m.project.state_dir);
        // Chosen before this apply is recorded: the stack as it was when the apply began.
        let mut target = match failed && self.after.rollback_on_failure {
            true => history::last_applied(&h, &h.numbers().map_err(history::error)?)?,
            false => None,
        };
        let nowhere = failed && self.after.rollback_on_failure && target.is_none();
        // Checked before the record says `rolled-back`: a rollback that cannot start leaves
        // the apply plainly failed.
        let mut back = None;
        if let Some(t) = &target {
            let ready = match history::rollback_session(&self.at, t, json) {
                Ok(session) => history::missing_images(&session, t).await.map(|()| session),
                Err(e) => Err(e),
            };
            match ready {
                Ok(session) => back = Some(session),
                Err(e) => {
                    eprintln!("error: cannot roll back (--rollback-on-failure): {e}");
                    target = None;
                }
            }
        }
        let made = history::Made {
            command: self.command(),
            code,
            took: started.elapsed(),
            rollback_of: None,
            git: self.git.clone(),
            who_dir: self.who_dir(),
            rolled_back: target.is_some(),
            backups,
        };
        history::record(session, made, json).await;
        let alert = |event, reason: String| async move {
            crate::observe::alerts::notify(m, event, "project", &reason).await
        };
        let (Some(target), Some(back)) = (target, back) else {
            if nowhere {
                eprintln!("error: nothing to roll back to: no generation before this apply applied cleanly");
            }
            if failed {
                alert(
                    AlertEvent::ApplyFailed,
                    format!("`{}` exited with {}", self.command(), code.code()),
                )
                .await;
            }
            return Ok(code);
        };
        if !json {
            eprintln!(
                "The apply failed; rolling back to generation {} (--rollback-on-failure).",
                target.number
            );
        }
        let back_code = history::roll_back(&back, &target, None, true, json).await?;
        if back_code != ExitCode::Ok {
            eprintln!(
                "error: the rollback to generation {} failed too; `sanctuary plan` shows what is left",
                target.number
            );
            alert(
                AlertEvent::ApplyFailed,
                format!(
                    "`{}` failed and so did the rollback to generation {}",
                    self.command(),
                    target.number
                ),
            )
            .await;
            return Ok(back_code);
        }
        alert(
            AlertEvent::RolledBack,
            format!(
                "`{}` failed; the stack runs generation {} again",
                self.command(),
                target.number
            ),
        )
        .await;
        if !json {
            eprintln!(
                "Rolled back: the stack runs generation {} again.",
                target.number
            );
        }
        Ok(ExitCode::RolledBack)
    }

    /// The command line, as `history` shows it.
    fn command(&self) -> String {
        let reference = self
            .git
            .as_ref()
            .map(|g| format!("--ref {}", g.reference.as_deref().unwrap_or(&g.commit)));
        std::iter::once("apply".to_string())
            .chain(reference)
            .chain(self.after.backup.then(|| "--backup".to_string()))
            .chain(self.names.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Where git says who applies: the working directory.
    fn who_dir(&self) -> PathBuf {
        self.at.parent().map(PathBuf::from).unwrap_or_default()
    }

    /// Every test, against the stack just applied, under the lock already held.
    async fn tests(&self, ctx: &Context, session: &Session) -> Result<ExitCode> {
        let tests = super::test::select(&session.manifest, &[], &[])?;
        let selection = Selection::Tests {
            tests,
            stack: false,
        };
        super::test::run_tests(ctx, session, &selection, None, false).await
    }
}
