//! `sanctuary backup`, `sanctuary backups list|verify|prune` and `sanctuary restore`: the
//! manifest's backup nodes run against the project (see `docs/backups.md`).
//!
//! Every backup named is attempted even when an earlier one fails; the exit code is 1 when
//! any failed, 3 when the cause was the container engine, 130 or 143 when SIGINT or SIGTERM
//! stopped a backup or restore (at a safe point: see `Runner`).

use std::sync::Arc;

use chrono::Utc;

use super::engine;
use super::Context;
use crate::backup::error::display_name;
use crate::backup::run_error::RunError;
use crate::backup::runner::{self, restore_needs_engine, RestoreTo, Runner, Swept};
use crate::backup::{skipped, RestoreReport, Selector, SpecialBits, Stop, VerifyLevel};
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::manifest::{Backup, BackupSource, Kind, Manifest, NodeId};
use crate::state::Lock;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Backups to take (all when none).
    names: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// Snapshots per copy, with size, age and verification.
    List {
        /// Only this backup.
        name: Option<String>,
    },
    /// Check every snapshot in every copy (size and sha256; every entry with --full).
    Verify {
        /// Decompress and check every entry against the manifest.
        #[arg(long)]
        full: bool,
        /// Only this backup.
        name: Option<String>,
    },
    /// Delete the snapshots the `keep` policy does not keep, in every copy.
    Prune {
        /// Show what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this backup.
        name: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    #[arg(required_unless_present = "all")]
    name: Option<String>,
    /// Snapshot id or unique id prefix (the newest when omitted).
    snapshot: Option<String>,
    /// Restore into this volume or host path instead of the backup's own source.
    #[arg(long, value_name = "VOLUME|PATH")]
    to: Option<String>,
    /// Every backed-up volume from its newest snapshot (volumes created when missing).
    #[arg(long, conflicts_with_all = ["name", "snapshot", "to", "archive"])]
    all: bool,
    /// Restore this `.tar.zst` made by another tool (e.g. `tar --zstd -cf`) instead of a
    /// snapshot; it is checked for unsafe entries first, but has no manifest to verify. Its
    /// fifos and device nodes are skipped and listed.
    #[arg(long, value_name = "FILE", conflicts_with = "snapshot")]
    archive: Option<std::path::PathBuf>,
    /// Keep the setuid and setgid bits of files in the --archive. Without this they are
    /// cleared and the files listed, since nothing vouches for the archive; a snapshot always
    /// keeps the bits its backup recorded.
    #[arg(long, requires = "archive")]
    keep_special_bits: bool,
}

/// The named backups, or all; an unknown name is a usage error with a suggestion.
fn select<'m>(m: &'m Manifest, names: &[String]) -> Result<Vec<&'m Backup>> {
    if names.is_empty() {
        return Ok(m.backups.values().collect());
    }
    names
        .iter()
        .map(|n| {
            m.backups.get(n).ok_or_else(|| Error::UnknownTarget {
                what: "backup",
                name: n.clone(),
                help: crate::manifest::diagnostic::did_you_mean(
                    n,
                    m.backups.keys().map(String::as_str),
                )
                .unwrap_or_else(|| {
                    format!(
                        "backups: {}",
                        m.backups.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }),
            })
        })
        .collect()
}

fn to_error(e: &RunError) -> Error {
    if e.is_infrastructure() {
        Error::Infrastructure(e.chain())
    } else {
        Error::Failed(e.chain())
    }
}

/// A runner for restores and the per-copy views, connected to Docker only when
/// `needs_engine`, stopping when `stop` is requested.
fn runner_for(
    m: &Arc<Manifest>,
    rt: &tokio::runtime::Runtime,
    needs_engine: bool,
    stop: Stop,
) -> Result<Runner> {
    let backend = if needs_engine {
        Some(rt.block_on(crate::engine::connect())?)
    } else {
        None
    };
    Ok(Runner {
        manifest: Arc::clone(m),
        backend,
        rt: rt.handle().clone(),
        stop,
    })
}

/// Prints what a command swept: a line when anything was removed, and what could not be.
fn print_swept(ctx: &Context, backup: &str, swept: &Swept) {
    if ctx.json {
        if *swept != Swept::default() {
            println!(
                "{}",
                serde_json::json!({"event": "swept", "backup": backup, "swept": swept.to_json()})
            );
        }
        return;
    }
    if let Some(line) = swept.summary() {
        println!("{backup}: {line}");
    }
    for f in &swept.failures {
        eprintln!("warning: {backup}: not swept: {f}");
    }
}

/// `backup [NAME…]`: a walk of the backups and what they depend on (a task that dumps a
/// database first); every backup is attempted even when another fails.
pub fn backup(ctx: &Context, args: BackupArgs) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    let targets: Vec<NodeId> = select(&m, &args.names)?
        .iter()
        .map(|b| NodeId::new(Kind::Backup, &b.name))
        .collect();
    if targets.is_empty() {
        println!("No backups are declared in the manifest.");
        return Ok(ExitCode::Ok);
    }
    let session = engine::session(Arc::clone(&m), ctx.json, Options::default())?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        let _lock = session.lock("backup")?;
        let plan = crate::engine::plan(&session, &Selection::Backups { targets }).await?;
        let (_, code) = engine::walk(&session, &plan, false, true).await?;
        Ok(code)
    })
}

fn age_text(age: chrono::Duration) -> String {
    let secs = age.num_seconds().max(0) as u64;
    // Whole units read better than "1h 2m 3s" in a table.
    let rounded = match secs {
        0..=59 => secs,
        60..=3599 => secs / 60 * 60,
        3600..=86_399 => secs / 3600 * 3600,
        _ => secs / 86_400 * 86_400,
    };
    humantime::format_duration(std::time::Duration::from_secs(rounded)).to_string()
}

fn verified_text(s: &crate::backup::SnapshotInfo) -> String {
    match &s.verified {
        None => "never".into(),
        Some(r) if r.ok => format!("ok ({})", r.at.format("%Y-%m-%d %H:%M")),
        Some(r) => format!("FAILED ({})", r.at.format("%Y-%m-%d %H:%M")),
    }
}

pub fn backups(ctx: &Context, cmd: BackupsCommand) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = loaded.manifest;
    let now = Utc::now();
    match cmd {
        BackupsCommand::List { name } => {
            let targets = select(&m, name.as_slice())?;
            let mut out = Vec::new();
            let mut unreadable = Vec::new();
            let mut debris = Vec::new();
            let mut rows = vec![[
                "BACKUP", "COPY", "SNAPSHOT", "CREATED", "AGE", "SIZE", "VERIFIED",
            ]
            .map(String::from)];
            for b in &targets {
                for (copy, catalog) in runner::list_copies(b, now) {
                    match catalog {
                        Err(e) => {
                            out.push(serde_json::json!({"backup": b.name, "copy": copy.name, "error": e.to_string()}));
                            // The reason goes below the table: it is too long for a column.
                            unreadable.push(format!("{} {}: {e}", b.name, copy.name));
                            rows.push([
                                b.name.clone(),
                                copy.name.clone(),
                                "(unreadable)".into(),
                                String::new(),
                                String::new(),
                                String::new(),
                                String::new(),
                            ]);
                        }
                        Ok(cat) => {
                            let snaps: Vec<_> = cat.of_backup(&b.name).collect();
                            out.push(serde_json::json!({
                                "backup": b.name, "copy": copy.name, "where": cat.copy,
                                "snapshots": snaps.iter().map(|s| serde_json::json!({
                                    "id": s.id, "created": s.created, "age_seconds": s.age.num_seconds(),
                                    "size": s.size, "entries": s.entries,
                                    "archive_present": s.archive_present,
                                    "verified": s.verified.as_ref().map(|r| serde_json::json!({"at": r.at, "ok": r.ok, "level": r.level})),
                                })).collect::<Vec<_>>(),
                                "orphans": cat.orphans.iter().map(|o| &o.name).collect::<Vec<_>>(),
                                "debris": cat.debris_total(),
                            }));
                            let held = cat.debris_total();
                            if held.entries > 0 {
                                debris.push(format!(
                                    "{} {}: {} temporary file{} of interrupted runs, {} bytes",
                                    b.name,
                                    copy.name,
                                    held.entries,
                                    if held.entries == 1 { "" } else { "s" },
                                    held.bytes
                                ));
                            }
                            if snaps.is_empty() {
                                rows.push([
                                    b.name.clone(),
                                    copy.name.clone(),
                                    "(none)".into(),
                                    String::new(),
                                    String::new(),
                                    String::new(),
                                    String::new(),
                                ]);
                            }
                            for s in snaps {
                                rows.push([
                                    b.name.clone(),
                                    copy.name.clone(),
                                    s.id[..12.min(s.id.len())].to_string(),
                                    s.created.format("%Y-%m-%d %H:%M:%S").to_string(),
                                    age_text(s.age),
                                    s.size.to_string(),
                                    verified_text(s),
                                ]);
                            }
                        }
                    }
                }
            }
            if ctx.json {
                println!("{}", serde_json::json!({ "copies": out }));
            } else {
                print_table(&rows);
                for line in &unreadable {
                    println!("unreadable copy {line}");
                }
                for line in &debris {
                    println!("debris in {line} (removed by the next backup, restore or prune)");
                }
            }
            Ok(ExitCode::Ok)
        }
        BackupsCommand::Verify { full, name } => {
            let level = if full {
                VerifyLevel::Full
            } else {
                VerifyLevel::Quick
            };
            let targets = select(&m, name.as_slice())?;
            let mut bad = 0usize;
            let mut out = Vec::new();
            for b in &targets {
                for (copy, result) in runner::verify_copies(b, level, now) {
                    match result {
                        Err(e) => {
                            bad += 1;
                            out.push(serde_json::json!({"backup": b.name, "copy": copy, "error": e.to_string()}));
                            if !ctx.json {
                                println!("{} {copy}: cannot verify: {e}", b.name);
                            }
                        }
                        Ok(reports) => {
                            for r in reports {
                                let problems: Vec<String> =
                                    r.problems.iter().map(|p| p.to_string()).collect();
                                if !problems.is_empty() {
                                    bad += 1;
                                }
                                if !ctx.json {
                                    let id = &r.snapshot[..12.min(r.snapshot.len())];
                                    if problems.is_empty() {
                                        println!("{} {copy} {id}: ok", b.name);
                                    } else {
                                        println!(
                                            "{} {copy} {id}: FAILED: {}",
                                            b.name,
                                            problems.join("; ")
                                        );
                                    }
                                }
                                out.push(serde_json::json!({
                                    "backup": b.name, "copy": copy, "snapshot": r.snapshot,
                                    "ok": problems.is_empty(), "problems": problems,
                                }));
                            }
                        }
                    }
                }
            }
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({ "level": level, "results": out, "failed": bad })
                );
            }
            if bad > 0 {
                return Err(Error::Failed(format!(
                    "{bad} snapshot cop{} failed verification",
                    if bad == 1 { "y" } else { "ies" }
                )));
            }
            Ok(ExitCode::Ok)
        }
        BackupsCommand::Prune { dry_run, name } => {
            let targets = select(&m, name.as_slice())?;
            let _lock = Lock::acquire(&m.project.state_dir, "backups prune")?;
            if !dry_run {
                sweep_helpers_for_prune(ctx, &m, &targets)?;
            }
            let pinned = super::data::pinned_snapshots(&m)?;
            let mut failed = None;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for b in &targets {
                if keep_is_empty(b) {
                    println!("{}: no keep policy, nothing pruned", b.name);
                    continue;
                }
                let pinned = pinned.get(&b.name).cloned().unwrap_or_default();
                for (copy, result) in runner::prune_copies(b, &pinned, now, dry_run) {
                    match result {
                        Err(e) => {
                            println!("{} {copy}: prune failed: {e}", b.name);
                            failed.get_or_insert_with(|| e.to_string());
                        }
                        Ok(r) => {
                            let gone: Vec<_> = r.decisions.iter().filter(|d| !d.keep).collect();
                            let kept = r.decisions.len() - gone.len();
                            println!(
                                "{} {copy}: keeping {kept}, {verb} {} snapshot(s), {} file(s)",
                                b.name,
                                gone.len(),
                                r.deleted_files.len()
                            );
                            for d in gone {
                                println!("  {verb} {}", &d.id[..12.min(d.id.len())]);
                            }
                        }
                    }
                }
            }
            match failed {
                Some(e) => Err(Error::Failed(e)),
                None => Ok(ExitCode::Ok),
            }
        }
    }
}

/// Removes the helper containers and staging volumes interrupted runs left, when a selected
/// backup works with the engine at all. Prune is about files: an unreachable engine is
/// reported and not fatal.
fn sweep_helpers_for_prune(ctx: &Context, m: &Manifest, targets: &[&Backup]) -> Result<()> {
    if !targets.iter().any(|b| runner::backup_needs_engine(b)) {
        return Ok(());
    }
    let rt = engine::runtime()?;
    match runner_for(&Arc::new(m.clone()), &rt, true, Stop::never()) {
        Ok(runner) => print_swept(ctx, "project", &runner.sweep_helpers()),
        Err(e) => eprintln!("warning: helper containers and staging volumes not swept: {e}"),
    }
    Ok(())
}

fn keep_is_empty(b: &Backup) -> bool {
    crate::backup::targets::keep_policy(&b.keep).is_empty()
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

pub fn restore(ctx: &Context, args: RestoreArgs) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    let _lock = Lock::acquire(&m.project.state_dir, "restore")?;
    let rt = engine::runtime()?;
    let jobs: Vec<(&Backup, Selector, RestoreTo)> = if args.all {
        // One backup per volume: the first declared wins, as it does for `destroy --volumes`.
        let mut seen = std::collections::BTreeSet::new();
        m.backups
            .values()
            .filter(|b| matches!(&b.source, BackupSource::Volume(v) if seen.insert(v.clone())))
            .map(|b| (b, Selector::NewestGood, RestoreTo::Source))
            .collect()
    } else {
        let name = args.name.clone().unwrap_or_default();
        let b = select(&m, std::slice::from_ref(&name))?[0];
        let which = args.snapshot.clone().map_or(Selector::Latest, Selector::Id);
        let to = args
            .to
            .as_deref()
            .map_or(RestoreTo::Source, RestoreTo::parse);
        vec![(b, which, to)]
    };
    // Restores into host paths work without a Docker engine.
    let needs_engine = jobs.iter().any(|(b, _, to)| restore_needs_engine(b, to));
    // The signal handlers need the runtime's context to be installed.
    let token = {
        let _entered = rt.enter();
        engine::interrupt_token()
    };
    let runner = runner_for(&m, &rt, needs_engine, Stop::on(token.clone()))?;
    let bits = if args.keep_special_bits {
        SpecialBits::Keep
    } else {
        SpecialBits::Clear
    };
    let mut first = None;
    for (b, which, to) in jobs {
        if token.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let restored = match &args.archive {
            Some(archive) => runner.restore_archive(b, archive, &to, bits, Utc::now()),
            None => runner.restore(b, &which, &to, Utc::now()),
        };
        if let Ok(run) = &restored {
            print_swept(ctx, &b.name, &run.swept);
        }
        match restored.map(|run| run.report) {
            Ok(r) if r.snapshot.is_none() => {
                if ctx.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "event": "restore", "backup": b.name, "archive": r.from,
                            "verified": false, "entries": r.entries,
                            "skipped": skipped_json(&r),
                            "special_bits_cleared": cleared_json(&r),
                        })
                    );
                } else {
                    println!(
                        "restored {} from archive {} ({} entries; no manifest, so unverified)",
                        b.name, r.from, r.entries
                    );
                    print_not_restored(&r);
                    if let Some(left) = &r.leftover {
                        println!("  the old tree could not be removed: {}", left.display());
                    }
                }
            }
            Ok(r) => {
                let id = r.snapshot.clone().unwrap_or_default();
                if ctx.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "event": "restore", "backup": b.name, "snapshot": id,
                            "from": r.from, "entries": r.entries,
                            "rejected_copies": r.rejected_copies,
                            "passed_over": r.passed_over,
                            "skipped": skipped_json(&r),
                            "special_bits_cleared": cleared_json(&r),
                        })
                    );
                } else {
                    println!(
                        "restored {} snapshot {} from {} ({} entries)",
                        b.name,
                        &id[..12.min(id.len())],
                        r.from,
                        r.entries
                    );
                    for rej in &r.rejected_copies {
                        println!("  skipped copy {rej}");
                    }
                    for newer in &r.passed_over {
                        println!(
                            "  passed over newer snapshot {}: no copy of it is usable",
                            &newer[..12.min(newer.len())]
                        );
                    }
                    print_not_restored(&r);
                    if let Some(left) = &r.leftover {
                        println!("  the old tree could not be removed: {}", left.display());
                    }
                }
            }
            Err(RunError::Interrupted { backup }) => {
                eprintln!(
                    "restore of {backup} stopped on request: the target is as it was, and nothing it staged is left"
                );
                return Err(Error::Interrupted);
            }
            Err(e) => {
                if first.is_none() {
                    first = Some(to_error(&e));
                } else {
                    eprintln!("{}", e.chain());
                }
            }
        }
    }
    first.map_or(Ok(ExitCode::Ok), Err)
}

/// How many paths a restore report lists before it says how many more there are.
const LISTED_PATHS: usize = 20;

/// The entries a restore skipped and the files whose setuid/setgid bits it cleared, each a
/// count line followed by the paths.
fn print_not_restored(r: &RestoreReport) {
    if let Some(line) = skipped::summary(&r.skipped) {
        println!("  {line}");
        print_paths(r.skipped.iter().map(|s| s.to_string()), r.skipped.len());
    }
    let n = r.special_bits_cleared.len();
    if n > 0 {
        println!(
            "  cleared setuid/setgid bits of {n} file{} (--keep-special-bits keeps them)",
            if n == 1 { "" } else { "s" }
        );
        print_paths(r.special_bits_cleared.iter().map(|p| display_name(p)), n);
    }
}

fn print_paths(lines: impl Iterator<Item = String>, total: usize) {
    for line in lines.take(LISTED_PATHS) {
        println!("    {line}");
    }
    if total > LISTED_PATHS {
        println!("    and {} more", total - LISTED_PATHS);
    }
}

/// `{"count": N, "by_kind": {"fifo": N, …}, "entries": [{"path", "kind"}, …]}`: every entry,
/// with `tar_type` on those of kind `other`.
fn skipped_json(r: &RestoreReport) -> serde_json::Value {
    let by_kind: serde_json::Map<String, serde_json::Value> = skipped::counts(&r.skipped)
        .into_iter()
        .map(|(kind, n)| (kind.key().to_string(), n.into()))
        .collect();
    let entries: Vec<serde_json::Value> = r
        .skipped
        .iter()
        .map(|s| {
            let mut e = serde_json::json!({ "path": s.path, "kind": s.kind.key() });
            if let Some(t) = s.kind.tar_type() {
                e["tar_type"] = t.into();
            }
            e
        })
        .collect();
    serde_json::json!({ "count": r.skipped.len(), "by_kind": by_kind, "entries": entries })
}

/// `{"count": N, "paths": [...]}`: every file whose setuid/setgid bits were cleared.
fn cleared_json(r: &RestoreReport) -> serde_json::Value {
    serde_json::json!({
        "count": r.special_bits_cleared.len(),
        "paths": r.special_bits_cleared,
    })
}
