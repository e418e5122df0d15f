//! `sanctuary sync [NAME…] [--dry-run] [--watch]` and `sanctuary sync status [NAME…]`: a walk
//! of the sync rules (and what they depend on), one three-way pass each between its host
//! directory (or file) and its container side, reported with what moved and why.
//!
//! Exit codes: 0 when every pass ran clean; 1 when a pass halted on a safety rule or an
//! action failed; 4 when conflicts stopped a pass under the `fail` policy; 3 when the
//! container side could not be set up (Docker, the service's container, the helper). Other rules still run after one fails.
//! `--watch` runs a pass when the host side changes (after the rule's quiet period) and
//! rescans the container side every two seconds, until Ctrl-C; each pass holds the project's
//! lock only while it runs.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::Watcher;

use super::{engine, Context};
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::manifest::{Kind, Manifest, NodeId, Sync};
use crate::state::Lock;
use crate::sync::last_pass::{self, LastPass};
use crate::sync::target::{self, Prepared};
use crate::sync::{sync_pass, BaseStore, HostSide, Report, SyncError, SyncOptions};
use tokio_util::sync::CancellationToken;

/// How often `--watch` rescans the container side (whose changes raise no host event).
const RESCAN: Duration = Duration::from_secs(2);

/// Arguments of `sanctuary sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sync rules to run (all when none). `sync status [NAME…]` shows each rule's last pass,
    /// files in its base and pending changes instead.
    pub names: Vec<String>,

    /// Show what would move and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Keep syncing: on every host change and every two seconds, until Ctrl-C.
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,

    /// Sync two local directories two-way (no manifest, no Docker); for benchmarks.
    #[arg(long, hide = true, num_args = 2, value_names = ["DIR_A", "DIR_B"])]
    pub local_dirs: Option<Vec<PathBuf>>,

    /// Where `--local-dirs` keeps its base (default: beside DIR_A).
    #[arg(long, hide = true, requires = "local_dirs")]
    pub base_file: Option<PathBuf>,
}

/// How a pass printed by `--watch` or `--local-dirs` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Clean,
    Failed,
    Conflict,
}

impl Outcome {
    fn code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::Ok,
            Outcome::Failed => ExitCode::Failed,
            Outcome::Conflict => ExitCode::Conflict,
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    if let Some(dirs) = &args.local_dirs {
        return local(ctx, dirs, args.base_file.as_deref(), args.dry_run);
    }
    let m = Arc::new(ctx.load()?.manifest);
    let (status, names) = match args.names.split_first() {
        Some((first, rest)) if first == "status" => (true, rest.to_vec()),
        _ => (false, args.names.clone()),
    };
    let rules = select(&m, &names)?;
    if status {
        return show_statuses(ctx, &m, &rules);
    }
    let targets: Vec<NodeId> = rules
        .iter()
        .map(|r| NodeId::new(Kind::Sync, &r.name))
        .collect();
    let options = Options {
        dry_run: args.dry_run,
        ..Options::default()
    };
    let session = engine::session(Arc::clone(&m), ctx.json, options)?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        // A dry run changes nothing and may run beside an apply.
        let lock = if args.dry_run {
            None
        } else {
            Some(session.lock("sync")?)
        };
        let plan = crate::engine::plan(&session, &Selection::Syncs { targets }).await?;
        let (_, code) = engine::walk(&session, &plan, false, true).await?;
        if !args.watch || code == ExitCode::Interrupted {
            return Ok(code);
        }
        // From here each pass takes the lock for its own length, so an apply can run
        // between passes (and waits out one under way).
        drop(lock);
        let backend = session.backend().await?;
        let token = engine::interrupt_token();
        let mut prepared = Vec::new();
        for rule in &rules {
            match target::prepare(
                backend.clone(),
                tokio::runtime::Handle::current(),
                &m,
                rule,
                token.clone(),
            )
            .await
            {
                Ok(p) => prepared.push(p),
                Err(e) => report_error(ctx, &rule.name, &error_chain(&e)),
            }
        }
        let state_dir = m.project.state_dir.clone();
        if !prepared.is_empty() {
            let watched = &prepared;
            // The watch loop blocks on file events: it runs on a thread of its own.
            tokio::task::block_in_place(|| watch(ctx, watched, &state_dir, &token));
        }
        for p in prepared {
            let name = p.name.clone();
            if let Err(e) = p.finish().await {
                report_error(ctx, &name, &format!("removing the helper container: {e}"));
            }
        }
        Ok(code)
    })
}

/// `sync status [NAME…]`: each rule's last pass, what its base holds and what is pending.
fn show_statuses(ctx: &Context, m: &Arc<Manifest>, rules: &[&Sync]) -> Result<ExitCode> {
    let rt = engine::runtime()?;
    let state_dir = m.project.state_dir.clone();
    rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let mut worst = ExitCode::Ok;
        for rule in rules {
            match target::prepare(
                backend.clone(),
                tokio::runtime::Handle::current(),
                m,
                rule,
                CancellationToken::new(),
            )
            .await
            {
                Ok(p) => {
                    tokio::task::block_in_place(|| show_status(ctx, &p, &state_dir));
                    if let Err(e) = p.finish().await {
                        report_error(
                            ctx,
                            &rule.name,
                            &format!("removing the helper container: {e}"),
                        );
                    }
                }
                Err(e) => {
                    worst = ExitCode::Infrastructure;
                    report_error(ctx, &rule.name, &error_chain(&e));
                }
            }
        }
        Ok(worst)
    })
}

/// The rules named, in manifest order (all when none named).
fn select<'m>(m: &'m Manifest, names: &[String]) -> Result<Vec<&'m Sync>> {
    if m.syncs.is_empty() {
        return Err(Error::usage(
            "the manifest declares no sync rules",
            "add a `sync \"NAME\" { host …; volume … }` node (see docs/sync.md)",
        ));
    }
    for n in names {
        if !m.syncs.contains_key(n) {
            let known: Vec<&str> = m.syncs.keys().map(String::as_str).collect();
            return Err(Error::UnknownTarget {
                what: "sync rule",
                name: n.clone(),
                help: format!("sync rules: {}", known.join(", ")),
            });
        }
    }
    Ok(m.syncs
        .values()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn report_error(ctx: &Context, name: &str, message: &str) {
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"event": "sync-error", "name": name, "message": message})
        );
    }
    eprintln!("error: {message}");
}

/// Prints a pass's result; returns its severity.
fn print_result(
    ctx: &Context,
    name: &str,
    store: &BaseStore,
    result: &std::result::Result<Report, SyncError>,
) -> Outcome {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let message = format!("sync `{name}` halted: {}", error_chain(e));
            report_error(ctx, name, &message);
            return match e {
                SyncError::Conflicts { .. } => Outcome::Conflict,
                _ => Outcome::Failed,
            };
        }
    };
    let outcome = if report.failed.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Failed
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"event": "sync", "name": name, "report": report})
        );
        return outcome;
    }
    print!("{}", crate::sync::report::render(name, report, store));
    outcome
}

fn show_status(ctx: &Context, p: &Prepared, state_dir: &Path) {
    let last = last_pass::load(&target::rule_dir(state_dir, &p.name))
        .ok()
        .flatten();
    let base_entries = p.store.load().map(|b| b.entries.len()).ok();
    let opts = SyncOptions {
        dry_run: true,
        ..p.opts.clone()
    };
    let pending = sync_pass(p.host.as_ref(), p.container.as_ref(), &p.store, &opts);
    if ctx.json {
        let pending = match &pending {
            Ok(r) => serde_json::json!({"actions": r.plan.actions, "conflicts": r.plan.conflicts}),
            Err(e) => serde_json::json!({"halted": error_chain(e)}),
        };
        println!(
            "{}",
            serde_json::json!({
                "event": "sync-status", "name": p.name, "last_pass": last,
                "base_entries": base_entries, "pending": pending,
            })
        );
        return;
    }
    let last = match last {
        Some(l) => match &l.halted {
            Some(why) => format!("{} (halted: {why})", l.finished_at),
            None => format!(
                "{} ({} applied, {} deferred, {} failed)",
                l.finished_at, l.applied, l.deferred, l.failed
            ),
        },
        None => "never".to_string(),
    };
    println!("{}", p.name);
    println!("  host:      {}", p.host.describe());
    println!("  container: {}", p.container.describe());
    println!("  last pass: {last}");
    match base_entries {
        Some(n) => println!("  in base:   {n} entries"),
        None => println!("  in base:   unreadable ({})", p.store.path().display()),
    }
    match pending {
        Ok(r) if r.plan.actions.is_empty() => println!("  pending:   nothing"),
        Ok(r) => {
            println!("  pending:   {} action(s)", r.plan.actions.len());
            for a in &r.plan.actions {
                println!("    {a}");
            }
        }
        Err(e) => println!("  pending:   the next pass would halt: {}", error_chain(&e)),
    }
}

/// Re-runs passes on host events (after the quiet period) and every [`RESCAN`], until Ctrl-C.
fn watch(
    ctx: &Context,
    prepared: &[Prepared],
    state_dir: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<usize>();
    let mut watchers = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let tx = tx.clone();
        let w = p.watch.clone();
        let made = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // A file rule watches the file's directory and keeps only events about the file.
            if ev.is_ok_and(|ev| w.wants(&ev.paths)) {
                let _ = tx.send(i);
            }
        });
        let mode = if p.watch.recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        let watching = made.and_then(|mut w| w.watch(&p.watch.dir, mode).map(|()| w));
        match watching {
            Ok(w) => watchers.push(w),
            Err(e) => eprintln!(
                "warning: cannot watch {} ({e}); it is rescanned every {}s instead",
                p.watch.dir.display(),
                RESCAN.as_secs()
            ),
        }
    }
    if !ctx.json {
        eprintln!("watching {} sync rule(s); Ctrl-C stops", prepared.len());
    }
    let mut due: Vec<Option<Instant>> = vec![None; prepared.len()];
    let mut next_rescan = Instant::now() + RESCAN;
    while !cancel.is_cancelled() {
        if let Ok(i) = rx.recv_timeout(Duration::from_millis(200)) {
            // A burst of events moves the pass to one quiet period after the last of them.
            if let (Some(slot), Some(p)) = (due.get_mut(i), prepared.get(i)) {
                *slot = Some(Instant::now() + p.opts.quiet_period);
            }
            continue;
        }
        let now = Instant::now();
        let rescan = now >= next_rescan;
        if rescan {
            next_rescan = now + RESCAN;
        }
        for (i, p) in prepared.iter().enumerate() {
            let ready = due[i].is_some_and(|t| now >= t);
            if !(ready || rescan) {
                continue;
            }
            due[i] = None;
            let _lock = match Lock::acquire_brief(state_dir, &format!("sync --watch {}", p.name)) {
                Ok(l) => l,
                Err(e) => {
                    // Someone is changing the stack: this pass waits for the next round.
                    tracing::info!(rule = %p.name, "pass postponed: {e}");
                    due[i] = Some(Instant::now() + RESCAN);
                    continue;
                }
            };
            let result = sync_pass(p.host.as_ref(), p.container.as_ref(), &p.store, &p.opts);
            let quiet = matches!(&result, Ok(r) if r.plan.actions.is_empty() && r.deferred.is_empty() && r.failed.is_empty());
            if !quiet {
                print_result(ctx, &p.name, &p.store, &result);
                let record = LastPass::of(&result, |e| error_chain(e));
                let _ = last_pass::save(&target::rule_dir(state_dir, &p.name), &record);
            }
            // Deferred work (still changing, half-written JSON) is retried after a quiet period.
            if matches!(&result, Ok(r) if !r.deferred.is_empty()) {
                due[i] = Some(Instant::now() + p.opts.quiet_period.max(Duration::from_millis(200)));
            }
        }
    }
    drop(watchers);
}

/// `--local-dirs A B`: a two-way pass between two host directories.
fn local(ctx: &Context, dirs: &[PathBuf], base: Option<&Path>, dry_run: bool) -> Result<ExitCode> {
    let [a, b] = dirs else {
        return Err(Error::usage(
            "--local-dirs takes two directories",
            "sanctuary sync --local-dirs DIR_A DIR_B",
        ));
    };
    let base = match base {
        Some(p) => p.to_path_buf(),
        None => {
            let file = format!(
                ".{}.sync-base.json",
                a.file_name().map_or("dir".into(), |n| n.to_string_lossy())
            );
            a.parent().unwrap_or(Path::new(".")).join(file)
        }
    };
    let store = BaseStore::at(base);
    let opts = SyncOptions {
        dry_run,
        quiet_period: Duration::ZERO,
        ..SyncOptions::default()
    };
    let result = sync_pass(&HostSide::new(a), &HostSide::new(b), &store, &opts);
    Ok(print_result(ctx, "local", &store, &result).code())
}
