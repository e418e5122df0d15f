//! `sanctuary history [--json]` lists the generations; `history show N` prints one, with the
//! diff of its manifest against the generation before it. Recording a generation after an
//! apply is here too, so what is written and what is shown stay in one place.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::data::DataPlan;
use super::Context;
use crate::backend::names;
use crate::engine::Session;
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::history::{self, Generation, History, HistoryError, Outcome};
use crate::manifest::{ImageRef, Manifest, TestCheck};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print one generation: its record and the diff of its manifest against the one before.
    Show {
        /// The generation's number, as `history` lists it.
        number: u64,
    },
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = ctx.load_for_history()?;
    let h = History::in_state_dir(&m.project.state_dir);
    match args.command {
        None => list(ctx, &h),
        Some(Command::Show { number }) => show(ctx, &h, number),
    }
}

pub fn error(e: HistoryError) -> Error {
    match e {
        HistoryError::NotFound { .. } => Error::usage(
            e.to_string(),
            "`sanctuary history` lists the recorded generations",
        ),
        other => Error::Infrastructure(other.to_string()),
    }
}

fn list(ctx: &Context, h: &History) -> Result<ExitCode> {
    let all = h.all().map_err(error)?;
    if ctx.json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let mut v = summary_json(g);
                v["changed"] = serde_json::json!(changed(&all, i));
                v
            })
            .collect();
        println!("{}", serde_json::json!({ "generations": rows }));
        return Ok(ExitCode::Ok);
    }
    if all.is_empty() {
        println!("No generations yet: one is recorded by every apply that changes something.");
        return Ok(ExitCode::Ok);
    }
    let rows: Vec<[String; 7]> = all
        .iter()
        .enumerate()
        .map(|(i, g)| {
            [
                g.number.to_string(),
                g.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                g.who.clone(),
                g.outcome.as_str().to_string(),
                commit_text(g),
                changed(&all, i).len().to_string(),
                g.command.clone(),
            ]
        })
        .collect();
    let header = [
        "GEN",
        "TIME (UTC)",
        "WHO",
        "RESULT",
        "COMMIT",
        "CHANGED",
        "COMMAND",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (k, c) in cells.iter().enumerate() {
            if k + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[k]));
            }
        }
        out
    };
    println!("{}", line(&header.map(str::to_string)));
    for r in &rows {
        println!("{}", line(r));
    }
    Ok(ExitCode::Ok)
}

/// The nodes generation `i` of `all` changed against the one before it (all of them for the
/// first).
fn changed(all: &[Generation], i: usize) -> Vec<String> {
    match i.checked_sub(1).map(|p| &all[p]) {
        Some(prev) => history::changed_nodes(prev, &all[i]),
        None => all[i].fingerprints.keys().cloned().collect(),
    }
}

fn commit_text(g: &Generation) -> String {
    match &g.git {
        Some(git) => format!(
            "{}{}",
            &git.commit[..git.commit.len().min(10)],
            if git.dirty { "+dirty" } else { "" }
        ),
        None => "-".into(),
    }
}

fn summary_json(g: &Generation) -> serde_json::Value {
    serde_json::json!({
        "number": g.number,
        "time": g.time,
        "who": g.who,
        "command": g.command,
        "outcome": g.outcome,
        "manifest_sha256": g.manifest_sha256,
        "git": g.git,
        "images": g.images,
        "backups": g.backups,
        "rollback_of": g.rollback_of,
        "duration_ms": g.duration_ms,
    })
}

fn show(ctx: &Context, h: &History, number: u64) -> Result<ExitCode> {
    let g = h.get(number).map_err(error)?;
    let previous = match number.checked_sub(1).filter(|p| *p > 0) {
        Some(p) => match h.get(p) {
            Ok(prev) => Some(prev),
            Err(HistoryError::NotFound { .. }) => None,
            Err(e) => return Err(error(e)),
        },
        None => None,
    };
    let diff = previous.as_ref().and_then(|p| {
        history::manifest_diff(
            &p.manifest,
            &g.manifest,
            &format!("generation {}", p.number),
            &format!("generation {}", g.number),
        )
    });
    let changed = match &previous {
        Some(p) => history::changed_nodes(p, &g),
        None => g.fingerprints.keys().cloned().collect(),
    };
    if ctx.json {
        let mut v = serde_json::to_value(&g).map_err(|e| Error::Infrastructure(e.to_string()))?;
        v["changed"] = serde_json::json!(changed);
        v["diff"] = serde_json::json!(diff);
        println!("{v}");
        return Ok(ExitCode::Ok);
    }
    println!("generation {}", g.number);
    println!("  time      {}", g.time.format("%Y-%m-%d %H:%M:%S UTC"));
    println!("  who       {}", g.who);
    println!("  command   {}", g.command);
    println!(
        "  result    {} in {}",
        g.outcome.as_str(),
        humantime::format_duration(Duration::from_millis(g.duration_ms))
    );
    match &g.git {
        Some(git) => println!(
            "  commit    {}{}{}",
            git.commit,
            git.reference
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            if git.dirty {
                ", with uncommitted changes"
            } else {
                ""
            }
        ),
        None => println!("  commit    none (the manifest is not in a git repository)"),
    }
    println!("  manifest  sha256 {}", g.manifest_sha256);
    if !g.images.is_empty() {
        println!("  images");
        for (svc, id) in &g.images {
            println!("    {svc:<20} {id}");
        }
    }
    if !changed.is_empty() {
        println!("  changed   {}", changed.join(", "));
    }
    if !g.backups.is_empty() {
        println!("  backups   taken before it changed anything (`rollback {} --with-data` restores them)", number.saturating_sub(1));
        for b in &g.backups {
            println!(
                "    {:<20} {}  {}",
                b.backup,
                &b.snapshot[..12.min(b.snapshot.len())],
                b.source
            );
        }
    }
    match (&previous, &diff) {
        (Some(_), Some(d)) => print!("\n{d}"),
        (Some(p), None) => println!("\nThe manifest is the same as generation {}'s.", p.number),
        (None, _) => println!("\nThe first generation: no manifest to compare with."),
    }
    Ok(ExitCode::Ok)
}

/// What an apply (or a rollback) that just ran did, for its generation.
pub struct Made {
    /// The command line, as `history` shows it (`apply web`, `rollback 3`).
    pub command: String,
    pub code: ExitCode,
    pub took: Duration,
    /// The generation a rollback went back to.
    pub rollback_of: Option<u64>,
    /// The commit, when the manifest was read from one (`--ref`); else the working tree's.
    pub git: Option<history::GitInfo>,
    /// The directory whose git config says who applied (the working tree's, under `--ref`).
    pub who_dir: std::path::PathBuf,
    /// Set when the apply failed and is being rolled back.
    pub rolled_back: bool,
    /// The backups it took before changing anything.
    pub backups: Vec<history::BackupTaken>,
}

/// Records the apply that just ran as a generation and returns its number. A generation
/// that cannot be written does not undo the apply: the failure is reported on stderr.
pub async fn record(session: &Session, made: Made, json: bool) -> Option<u64> {
    let m = &session.manifest;
    let outcome = match made.code {
        _ if made.rolled_back => Outcome::RolledBack,
        ExitCode::Ok => Outcome::Applied,
        ExitCode::Interrupted => Outcome::Interrupted,
        _ => Outcome::Failed,
    };
    let fingerprints = fingerprints(session);
    let mut images = std::collections::BTreeMap::new();
    let mut containers = std::collections::BTreeMap::new();
    if let Ok(backend) = session.backend().await {
        for svc in m.services.keys() {
            let name = names::container(&m.project.name, svc);
            if let Ok(Some(info)) = backend.inspect_container(&name).await {
                images.insert(svc.clone(), info.image_id);
                containers.insert(svc.clone(), info.id);
            }
        }
    }
    let git = made.git.or_else(|| history::git_info(&m.dir));
    let mut generation = Generation {
        number: 0,
        time: chrono::Utc::now(),
        who: history::who(&made.who_dir),
        command: made.command,
        manifest: m.source.clone(),
        manifest_sha256: crate::plan::desired::sha256_hex(m.source.as_bytes()),
        git,
        images,
        containers,
        fingerprints,
        outcome,
        backups: made.backups,
        duration_ms: u64::try_from(made.took.as_millis()).unwrap_or(u64::MAX),
        rollback_of: made.rollback_of,
    };
    let h = History::in_state_dir(&m.project.state_dir);
    let n = match h.record(&mut generation) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warning: {e}");
            return None;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": "generation", "number": n, "outcome": outcome })
        );
    } else {
        eprintln!("Recorded generation {n} ({}).", outcome.as_str());
    }
    if let Err(e) = keep_images(session, &h, &generation).await {
        eprintln!("warning: cannot name the images of generation {n}: {e}");
    }
    prune_checkouts(m, &h, &generation);
    Some(n)
}

/// Node (`service.web`) → fingerprint, of everything the state store records.
fn fingerprints(session: &Session) -> std::collections::BTreeMap<String, String> {
    session
        .state()
        .nodes
        .values()
        .map(|r| (format!("{}.{}", r.kind, r.name), r.fingerprint.clone()))
        .collect()
}

/// Whether the stack the state store records differs from the last generation's: an apply
/// killed after its changes but before its record left them unrecorded. Only the stack's
/// kinds count; `run` and `test` record tasks and tests without applying anything.
pub fn unrecorded(session: &Session) -> bool {
    let stack = |fps: &std::collections::BTreeMap<String, String>| {
        fps.iter()
            .filter(|(k, _)| {
                ["image.", "volume.", "network.", "service."]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let now = stack(&fingerprints(session));
    let h = History::in_state_dir(&session.manifest.project.state_dir);
    match h.last().ok().flatten().and_then(|n| h.get(n).ok()) {
        Some(g) => stack(&g.fingerprints) != now,
        None => false,
    }
}

/// Removes the checkouts (`--ref`) no generation in the `keep-generations` window came from.
fn prune_checkouts(m: &Manifest, h: &History, g: &Generation) {
    let dir = m.project.state_dir.join(history::checkout::DIR_NAME);
    if !dir.is_dir() {
        return;
    }
    let first = g
        .number
        .saturating_sub(m.project.keep_generations - 1)
        .max(1);
    let keep = (first..=g.number)
        .filter_map(|n| h.get(n).ok())
        .filter_map(|g| g.git.map(|git| git.commit))
        .collect();
    history::checkout::prune(&dir, &keep);
}

/// The repository whose tags keep the images of recent generations: `<project>-generations`.
pub fn generations_repo(project: &str) -> String {
    format!("{project}-generations")
}

/// How far back a shrunken `keep-generations` is caught up with, beyond the one generation
/// that leaves the window at each apply.
const UNTAG_BACKLOG: u64 = 10;

/// Names every image generation `g` ran `<project>-generations:g<N>-<service>`, so that no
/// prune or re-pull can take an image a rollback may need, and takes those names from the
/// generations that fell out of the last `keep-generations`.
async fn keep_images(session: &Session, h: &History, g: &Generation) -> Result<()> {
    if g.images.is_empty() {
        return Ok(());
    }
    let m = &session.manifest;
    let backend = session.backend().await?;
    let repo = generations_repo(&m.project.name);
    for (svc, id) in &g.images {
        backend
            .tag_image(id, &repo, &format!("g{}-{svc}", g.number))
            .await?;
    }
    let Some(newest_out) = g.number.checked_sub(m.project.keep_generations) else {
        return Ok(());
    };
    let oldest = newest_out.saturating_sub(UNTAG_BACKLOG).max(1);
    for n in oldest..=newest_out {
        let Ok(old) = h.get(n) else { continue };
        for svc in old.images.keys() {
            // Gone already, or refused: nothing a later apply cannot retry.
            let _ = backend.remove_image(&format!("{repo}:g{n}-{svc}")).await;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The generation to go back to (default: the last one that applied cleanly before the
    /// current one).
    number: Option<u64>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Also put back the data generation N ran with: the backups the generation after it
    /// took (`apply --backup`), restored after the data there is now is backed up.
    #[arg(long)]
    with_data: bool,
}

/// `sanctuary rollback [N]`: converges the stack to generation N's manifest, with every
/// service on the image id it ran then (nothing is rebuilt), through the same plan and
/// confirmation as apply, and records the result as a new generation.
pub fn rollback(ctx: &Context, args: RollbackArgs) -> Result<ExitCode> {
    let current = ctx.load_for_history()?;
    let h = History::in_state_dir(&current.project.state_dir);
    let target = match args.number {
        Some(n) => h.get(n).map_err(error)?,
        None => default_target(&h)?,
    };
    let session = rollback_session(&current.path, &target, ctx.json)?;
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        let _lock = session.lock(&format!(
            "rollback {} {}",
            target.number, session.manifest.project.name
        ))?;
        // Checked under the lock: a prune cannot take a snapshot between check and restore.
        let data = match args.with_data {
            true => Some(DataPlan::for_target(&current.path, &h, &target)?),
            false => None,
        };
        roll_back(&session, &target, data.as_ref(), args.yes, ctx.json).await
    })
}

/// A session on generation `target`'s manifest, pinned to its image ids, as if the manifest
/// stood at `at`.
pub fn rollback_session(at: &Path, target: &Generation, json: bool) -> Result<Session> {
    let m = Arc::new(pinned(at, target)?);
    super::engine::session(m, json, Options::default())
}

/// Plans, confirms (unless `yes`) and walks the rollback to `target`, then records it; with
/// `data`, the current data is backed up and `data` restored before the walk. The caller
/// holds the lock.
pub async fn roll_back(
    session: &Session,
    target: &Generation,
    data: Option<&DataPlan>,
    yes: bool,
    json: bool,
) -> Result<ExitCode> {
    missing_images(session, target).await?;
    let plan = crate::engine::plan(
        session,
        &Selection::Apply {
            targets: Vec::new(),
        },
    )
    .await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": "plan", "rollback_to": target.number, "plan": plan, "summary": plan.summary_line() })
        );
    } else {
        println!(
            "Rolling back to generation {} ({}, {}).",
            target.number,
            target.time.format("%Y-%m-%d %H:%M:%S UTC"),
            commit_text(target)
        );
        print!("{}", plan.render(false));
    }
    if let Some(data) = data {
        data.show(&session.manifest, target.number, json);
    }
    if !plan.has_changes() && data.is_none() {
        session.finish();
        return Ok(ExitCode::Ok);
    }
    let question = match data {
        Some(d) => format!(
            "Roll project {} back to generation {}, replacing the data of {}?",
            plan.project,
            target.number,
            d.targets().join(", ")
        ),
        None => format!(
            "Roll project {} back to generation {}?",
            plan.project, target.number
        ),
    };
    if !super::engine::confirmed(&question, yes, json)? {
        println!("Nothing changed.");
        return Ok(ExitCode::Ok);
    }
    let started = Instant::now();
    let made = |code: ExitCode, backups: Vec<history::BackupTaken>| Made {
        command: match data {
            Some(_) => format!("rollback {} --with-data", target.number),
            None => format!("rollback {}", target.number),
        },
        code,
        took: started.elapsed(),
        rollback_of: Some(target.number),
        git: target.git.clone(),
        who_dir: session.manifest.dir.clone(),
        rolled_back: false,
        backups,
    };
    let mut backups = Vec::new();
    let mut plan = plan;
    if let Some(d) = data {
        backups = match super::data::take(session, Some(&d.backups()), json).await? {
            Ok(taken) => taken,
            Err(code) => {
                eprintln!("error: backing up the data there is now failed; nothing was changed");
                return Ok(code);
            }
        };
        if let Err(e) = d.restore(session, json).await {
            eprintln!(
                "error: the data was not all restored; the services that use it are stopped \
                 until `sanctuary rollback {} --with-data` is run again or `sanctuary apply` starts them",
                target.number
            );
            // Something did change (services stopped, maybe a volume replaced): on record.
            record(session, made(e.exit_code(), backups), json).await;
            return Err(e);
        }
        // The services the restore stopped are started (or replaced) by this plan.
        plan = crate::engine::plan(
            session,
            &Selection::Apply {
                targets: Vec::new(),
            },
        )
        .await?;
    }
    let (_, code) = super::engine::walk(session, &plan, false, true).await?;
    record(session, made(code, backups), json).await;
    Ok(code)
}

/// The last generation that applied cleanly before the current (last) one.
fn default_target(h: &History) -> Result<Generation> {
    let numbers = h.numbers().map_err(error)?;
    let Some((_, earlier)) = numbers.split_last() else {
        return Err(Error::usage(
            "there is nothing to roll back to: no generation has been recorded",
            "every apply that changes something records one; `sanctuary history` lists them",
        ));
    };
    last_applied(h, earlier)?.ok_or_else(|| {
        Error::usage(
            "there is nothing to roll back to: no generation before the current one applied cleanly",
            "`sanctuary history` lists the generations; `rollback N` goes back to a given one",
        )
    })
}

/// The last of `numbers` whose generation applied cleanly.
pub fn last_applied(h: &History, numbers: &[u64]) -> Result<Option<Generation>> {
    for &n in numbers.iter().rev() {
        let g = h.get(n).map_err(error)?;
        if g.outcome == Outcome::Applied {
            return Ok(Some(g));
        }
    }
    Ok(None)
}

/// Generation `g`'s manifest, loaded as if it stood where the current one does, with each
/// service it recorded an image for pinned to that image id. Declared images that nothing
/// uses any more once the services are pinned are left out, so nothing is rebuilt.
fn pinned(at: &Path, g: &Generation) -> Result<Manifest> {
    let name = format!("generation {} of {}", g.number, at.display());
    let mut m = crate::manifest::load_text(at, &name, &g.manifest)?.manifest;
    for (svc, id) in &g.images {
        if let Some(s) = m.services.get_mut(svc) {
            s.image = ImageRef::External(id.clone());
        }
    }
    let used =
        |img: &str| {
            let declared = |r: &ImageRef| matches!(r, ImageRef::Declared(n) if n == img);
            m.services.values().any(|s| declared(&s.image))
            || m.tasks.values().any(|t| t.image.as_ref().is_some_and(declared))
            || m.tests.values().any(|t| {
                matches!(&t.check, TestCheck::Command { image: Some(r), .. } if declared(r))
            })
            || m.images.values().any(|i| {
                i.depends_on
                    .iter()
                    .any(|d| d.node.kind == crate::manifest::Kind::Image && d.node.name == img)
            })
        };
    let unused: Vec<String> = m.images.keys().filter(|i| !used(i)).cloned().collect();
    for i in unused {
        m.images.shift_remove(&i);
    }
    Ok(m)
}

/// Fails, naming them, when images generation `g` ran are no longer on the engine.
pub async fn missing_images(session: &Session, g: &Generation) -> Result<()> {
    let backend = session.backend().await?;
    let mut missing = Vec::new();
    for (svc, id) in &g.images {
        if backend.inspect_image(id).await?.is_none() {
            missing.push(format!("{svc} ({id})"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let help = match &g.git {
        Some(git) => format!(
            "rebuild them from the commit it was applied from: `sanctuary apply --ref {}`",
            &git.commit[..git.commit.len().min(12)]
        ),
        None => "apply a manifest that builds them again".to_string(),
    };
    Err(Error::usage(
        format!(
            "cannot roll back to generation {}: the images of {} are gone",
            g.number,
            missing.join(", ")
        ),
        help,
    ))
}
