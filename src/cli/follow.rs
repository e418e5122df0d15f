//! `sanctuary follow REMOTE BRANCH [--interval D] [--test] [--rollback-on-failure]`: GitOps.
//! Every interval it fetches the branch with libgit2 and applies each commit that is new, once
//! and in order, from the commit itself (as `apply --ref` does), recording each as a
//! generation. A commit whose manifest does not validate is reported and skipped, never
//! half-applied; an apply that fails is reported and the follower keeps going; one that could
//! not start (the lock is held, the engine is down) is tried again at the next fetch. The last
//! commit dealt with is kept in `<state>/follow/`, so a restarted follower carries on where it
//! stopped. The lock is held only while an apply runs.
//!
//! Ctrl-C or SIGTERM while it waits stops it with exit 0; during an apply, the apply stops at
//! its next safe point (the commit is applied again on the next start) and follow exits with
//! the apply's code, 130 or 143. `--once` exits with the first failing commit's code (2 for
//! one skipped as invalid), 0 when every new commit applied cleanly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::apply::{AfterApply, Converge};
use super::{engine, output, Context};
use crate::engine::Options;
use crate::error::{Error, ExitCode, Result};
use crate::history::follow::{self, Cursor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The remote: a configured name such as `origin`, or a URL or path.
    remote: String,
    /// The branch to follow.
    branch: String,
    /// How long to wait between fetches.
    #[arg(long, value_name = "D", default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Fetch and apply what is new once, then exit (for a cron job or a CI step).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    after: AfterApply,
    /// Most nodes running at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
}

/// How one fetch-and-apply round ended.
enum Round {
    /// Every new commit was dealt with (or one will be tried again next time); the most
    /// serious exit code among them.
    Done(ExitCode),
    /// A signal stopped an apply: follow exits with its code.
    Interrupted,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let at = ctx.working_at()?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        // The same listener as every walk's: one signal stops the apply under way and the
        // following, however many rounds came before.
        let stop = engine::interrupt_token();
        if !ctx.json {
            eprintln!(
                "Following {} {} every {} (Ctrl-C stops).",
                args.remote,
                args.branch,
                humantime::format_duration(args.interval)
            );
        }
        loop {
            match round(ctx, &args, &at, &stop).await {
                // `--once` reports how the round went, so a CI step fails with its deploy.
                Ok(Round::Done(code)) if args.once => return Ok(code),
                Ok(Round::Done(_)) => {}
                Ok(Round::Interrupted) => return Ok(ExitCode::Interrupted),
                // A fetch that failed is tried again at the next interval.
                Err(e) if !args.once => output::eprint_diag(&e),
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    if !ctx.json {
                        eprintln!("Stopped following {} {}.", args.remote, args.branch);
                    }
                    return Ok(ExitCode::Ok);
                }
                _ = tokio::time::sleep(args.interval) => {}
            }
        }
    })
}

/// Fetches, then applies each new commit in order.
async fn round(ctx: &Context, args: &Args, at: &Path, stop: &CancellationToken) -> Result<Round> {
    let here = at.parent().unwrap_or(Path::new("/"));
    let git = |e: follow::FollowError| Error::Infrastructure(e.to_string());
    let tip = follow::fetch(here, &args.remote, &args.branch).map_err(git)?;
    // The cursor lives in the state directory the branch's manifest names.
    let state_dir = match ctx.load_commit(at, &tip) {
        Ok(s) => s.manifest.project.state_dir,
        Err(_) => here.join(".sanctuary"),
    };
    let cursor = Cursor::new(&state_dir, &args.remote, &args.branch);
    let commits = follow::new_commits(here, &tip, cursor.get().as_deref()).map_err(git)?;
    let mut worst = ExitCode::Ok;
    let mut note = |code: ExitCode| {
        if worst == ExitCode::Ok {
            worst = code;
        }
    };
    for commit in commits {
        if stop.is_cancelled() {
            return Ok(Round::Done(worst));
        }
        let short = &commit[..12];
        let result = match ctx.load_commit(at, &commit) {
            Err(e) => {
                event(ctx, &commit, "skipped", None);
                if !ctx.json {
                    eprintln!("Skipping commit {short}: its manifest cannot be applied.");
                }
                output::eprint_diag(&e);
                note(e.exit_code());
                None
            }
            Ok(mut sourced) => {
                if !ctx.json {
                    eprintln!(
                        "Applying commit {short} of {} {}.",
                        args.remote, args.branch
                    );
                }
                if let Some(g) = &mut sourced.git {
                    g.reference = Some(format!("{}/{}", args.remote, args.branch));
                }
                let options = Options {
                    jobs: engine::jobs(args.jobs),
                    ..Options::default()
                };
                let session = engine::session(Arc::new(sourced.manifest), ctx.json, options)?;
                let converge = Converge {
                    names: Vec::new(),
                    yes: true,
                    saved: None,
                    after: args.after,
                    at: at.to_path_buf(),
                    git: sourced.git,
                };
                Some(converge.run(ctx, &session).await)
            }
        };
        match result {
            Some(Ok(ExitCode::Interrupted)) => return Ok(Round::Interrupted),
            Some(Ok(code)) => {
                note(code);
                event(ctx, &commit, "applied", Some(code));
                if code != ExitCode::Ok && !ctx.json {
                    eprintln!(
                        "Commit {short} did not apply cleanly (exit {}); following on.",
                        code.code()
                    );
                }
            }
            // Nothing ran (the lock is held, the engine is down): the next round tries again.
            Some(Err(e)) if e.exit_code() != ExitCode::Usage => {
                output::eprint_diag(&e);
                note(e.exit_code());
                return Ok(Round::Done(worst));
            }
            Some(Err(e)) => {
                event(ctx, &commit, "skipped", None);
                output::eprint_diag(&e);
                note(e.exit_code());
            }
            None => {}
        }
        cursor.set(&commit).map_err(|source| Error::Io {
            message: format!("cannot record that commit {short} was dealt with"),
            source,
        })?;
    }
    Ok(Round::Done(worst))
}

fn event(ctx: &Context, commit: &str, what: &str, code: Option<ExitCode>) {
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({ "event": "commit", "commit": commit, "result": what, "exit_code": code.map(ExitCode::code) })
        );
    }
}
