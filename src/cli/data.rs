//! Data around applies and rollbacks: the backups `apply --backup` takes before it changes
//! anything, and `rollback N --with-data`, which puts back the data generation N ran with.
//!
//! Generation N's data is what the generation after it saved: `apply --backup` snapshots the
//! volumes just before it replaces what N left, so those snapshots — recorded with N+1 — hold
//! the data as N last had it. A rollback with data takes the same kind of backups first (so it
//! can be undone in turn), stops the services that mount what it overwrites, restores each
//! snapshot through the verified restore, and only then converges the services: the old
//! version never starts on the newer data, nor the newer version on the old.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine;
use crate::backend::names;
use crate::backup::runner::{self, RestoreTo, Runner};
use crate::backup::{Selector, Stop};
use crate::engine::{Selection, Session};
use crate::error::{Error, ExitCode, Result};
use crate::history::{BackupTaken, Generation, History};
use crate::manifest::{Backup, BackupSource, Kind, Manifest, NodeId};

/// What a backup holds, as the plan and the generation say it.
fn source_text(m: &Manifest, b: &Backup) -> String {
    match &b.source {
        BackupSource::Volume(v) => format!("volume {}", names::volume(&m.project.name, v)),
        BackupSource::Path(p) => format!("directory {}", p.display()),
    }
}

/// Takes the backups of `session`'s manifest named in `only` (every one when `None`) whose
/// source exists — a volume not created yet holds nothing to save. `Ok(Err(code))` when one
/// failed: the caller changes nothing then.
pub async fn take(
    session: &Session,
    only: Option<&[String]>,
    json: bool,
) -> Result<std::result::Result<Vec<BackupTaken>, ExitCode>> {
    let m = &session.manifest;
    if m.backups.is_empty() {
        return Err(Error::usage(
            "--backup: the manifest declares no backup",
            "declare a `backup` node for each volume whose data a rollback should be able to \
             put back (docs/backups.md)",
        ));
    }
    let volumes: std::collections::BTreeSet<String> = if m
        .backups
        .values()
        .any(|b| matches!(b.source, BackupSource::Volume(_)))
    {
        let backend = session.backend().await?;
        backend
            .list_volumes(&crate::backend::LabelFilter::new())
            .await?
            .into_iter()
            .map(|v| v.name)
            .collect()
    } else {
        Default::default()
    };
    let mut targets = Vec::new();
    for b in m.backups.values() {
        if only.is_some_and(|names| !names.contains(&b.name)) {
            continue;
        }
        let exists = match &b.source {
            BackupSource::Volume(v) => volumes.contains(&names::volume(&m.project.name, v)),
            BackupSource::Path(p) => p.exists(),
        };
        if exists {
            targets.push(NodeId::new(Kind::Backup, &b.name));
        } else if !json {
            println!(
                "backup {}: {} does not exist yet; nothing to save",
                b.name,
                source_text(m, b)
            );
        }
    }
    if targets.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    if !json {
        println!("Backing up before anything changes:");
    }
    let plan = crate::engine::plan(
        session,
        &Selection::Backups {
            targets: targets.clone(),
        },
    )
    .await?;
    let (_, code) = engine::walk(session, &plan, false, true).await?;
    if code != ExitCode::Ok {
        return Ok(Err(code));
    }
    let snapshots = session
        .snapshots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Ok(targets
        .iter()
        .filter_map(|id| {
            let b = &m.backups[&id.name];
            snapshots.get(&b.name).map(|snapshot| BackupTaken {
                backup: b.name.clone(),
                snapshot: snapshot.clone(),
                source: source_text(m, b),
            })
        })
        .collect()))
}

/// One snapshot a rollback with data restores.
struct Restore {
    /// The backup node, as the generation that took the snapshot declared it: its copies are
    /// where the snapshot is.
    backup: Backup,
    taken: BackupTaken,
    created: DateTime<Utc>,
}

/// What `rollback N --with-data` will put back, checked before anything changes.
pub struct DataPlan {
    /// The generation whose backups are restored (N+1).
    saved_by: u64,
    /// Its manifest, whose backup nodes say where the snapshots are.
    saver: Arc<Manifest>,
    restores: Vec<Restore>,
}

impl DataPlan {
    /// The data generation `target` ran with: the snapshots the generation after it took.
    /// Fails, changing nothing, when there are none or a copy no longer holds one.
    pub fn for_target(at: &Path, h: &History, target: &Generation) -> Result<DataPlan> {
        let n = target.number;
        let next = match h.get(n + 1) {
            Ok(g) => g,
            Err(crate::history::HistoryError::NotFound { .. }) => {
                return Err(Error::usage(
                    format!(
                        "--with-data: generation {n} is the current one; its data is the data there is now"
                    ),
                    "`sanctuary history` lists the generations to go back to",
                ))
            }
            Err(e) => return Err(super::history::error(e)),
        };
        if next.backups.is_empty() {
            return Err(Error::usage(
                format!(
                    "--with-data: generation {} took no backups, so nothing saved the data generation {n} ran with",
                    next.number
                ),
                "`apply --backup` backs up every volume before it changes anything; without \
                 it, `sanctuary backups list` shows the snapshots there are and \
                 `sanctuary restore NAME SNAPSHOT` restores one",
            ));
        }
        let name = format!("generation {} of {}", next.number, at.display());
        let saver = Arc::new(crate::manifest::load_text(at, &name, &next.manifest)?.manifest);
        let now = Utc::now();
        let mut restores = Vec::new();
        for taken in &next.backups {
            let Some(b) = saver.backups.get(&taken.backup) else {
                return Err(Error::Failed(format!(
                    "--with-data: generation {} records backup {}, which its manifest does not declare",
                    next.number, taken.backup
                )));
            };
            let found = runner::list_copies(b, now)
                .into_iter()
                .filter_map(|(_, catalog)| catalog.ok())
                .find_map(|cat| {
                    cat.of_backup(&b.name)
                        .find(|s| s.id == taken.snapshot && s.archive_present)
                        .map(|s| s.created)
                });
            let Some(created) = found else {
                return Err(Error::usage(
                    format!(
                        "--with-data: snapshot {} of backup {} (taken by generation {}) is in none of its copies",
                        short(&taken.snapshot),
                        b.name,
                        next.number
                    ),
                    "it may have been pruned: `sanctuary backups list` shows what the copies hold",
                ));
            };
            restores.push(Restore {
                backup: b.clone(),
                taken: taken.clone(),
                created,
            });
        }
        Ok(DataPlan {
            saved_by: next.number,
            saver,
            restores,
        })
    }

    /// The backup names it restores.
    pub fn backups(&self) -> Vec<String> {
        self.restores
            .iter()
            .map(|r| r.backup.name.clone())
            .collect()
    }

    /// What it overwrites, for the confirmation question.
    pub fn targets(&self) -> Vec<String> {
        self.restores
            .iter()
            .map(|r| r.taken.source.clone())
            .collect()
    }

    /// The services of `m` (the manifest rolled back to) and of the saver that mount a
    /// restored volume: stopped before the restore, started by the converge after it.
    fn consumers(&self, m: &Manifest) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.restores {
            if let BackupSource::Volume(v) = &r.backup.source {
                out.extend(crate::backup::targets::consumers(m, v));
                out.extend(crate::backup::targets::consumers(&self.saver, v));
            }
        }
        out.into_iter().collect()
    }

    /// Says exactly what will be overwritten and from which snapshot.
    pub fn show(&self, m: &Manifest, target: u64, json: bool) {
        let stopped = self.consumers(m);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "event": "data-plan", "rollback_to": target, "saved_by": self.saved_by,
                    "restores": self.restores.iter().map(|r| serde_json::json!({
                        "backup": r.backup.name, "snapshot": r.taken.snapshot,
                        "created": r.created, "overwrites": r.taken.source,
                    })).collect::<Vec<_>>(),
                    "stopped": stopped,
                })
            );
            return;
        }
        println!(
            "Data (--with-data): what generation {target} ran with, saved by generation {} before it changed anything:",
            self.saved_by
        );
        for r in &self.restores {
            println!(
                "  {} ← snapshot {} of backup {} ({}): everything in it now is replaced",
                r.taken.source,
                short(&r.taken.snapshot),
                r.backup.name,
                r.created.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        println!("  The data there is now is backed up first, so this rollback can be undone too.");
        if !stopped.is_empty() {
            println!(
                "  Stopped until the rollback starts them again: {}.",
                stopped.join(", ")
            );
        }
    }

    /// Stops the consumers, then restores every snapshot. The caller took the safety backups
    /// and holds the lock; the converge that follows starts what was stopped.
    pub async fn restore(&self, session: &Session, json: bool) -> Result<()> {
        let m = &session.manifest;
        let backend = session.backend().await?;
        for svc in self.consumers(m) {
            let container = names::container(&m.project.name, &svc);
            let timeout = m
                .services
                .get(&svc)
                .or_else(|| self.saver.services.get(&svc))
                .map_or(std::time::Duration::from_secs(10), |s| s.stop_timeout.0);
            backend
                .stop_container(&container, timeout)
                .await
                .map_err(|e| {
                    Error::Infrastructure(format!(
                        "stopping {container} before restoring its data: {e}"
                    ))
                })?;
        }
        let token = engine::interrupt_token();
        for r in &self.restores {
            let runner = Runner {
                manifest: Arc::clone(&self.saver),
                backend: Some(Arc::clone(&backend)),
                rt: tokio::runtime::Handle::current(),
                stop: Stop::on(token.clone()),
            };
            let b = r.backup.clone();
            let which = Selector::Id(r.taken.snapshot.clone());
            // The restore library blocks; it gets a thread of its own.
            let run = tokio::task::spawn_blocking(move || {
                runner.restore(&b, &which, &RestoreTo::Source, Utc::now())
            })
            .await
            .map_err(|e| Error::Failed(format!("the restore thread failed: {e}")))?;
            let report = match run {
                Ok(run) => run.report,
                Err(crate::backup::run_error::RunError::Interrupted { .. }) => {
                    return Err(Error::Interrupted)
                }
                Err(e) if e.is_infrastructure() => return Err(Error::Infrastructure(e.chain())),
                Err(e) => return Err(Error::Failed(e.chain())),
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "event": "restore", "backup": r.backup.name,
                        "snapshot": r.taken.snapshot, "from": report.from,
                        "entries": report.entries, "overwrote": r.taken.source,
                    })
                );
            } else {
                println!(
                    "restored {} from snapshot {} of backup {} ({}, {} entries)",
                    r.taken.source,
                    short(&r.taken.snapshot),
                    r.backup.name,
                    report.from,
                    report.entries
                );
            }
        }
        Ok(())
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Backup name → (snapshot id → why), for the snapshots the last `keep-generations`
/// generations recorded: `backups prune` keeps them whatever the `keep` policy says, since a
/// `rollback --with-data` within that window needs them.
pub fn pinned_snapshots(
    m: &Manifest,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>> {
    let h = History::in_state_dir(&m.project.state_dir);
    let numbers = h.numbers().map_err(super::history::error)?;
    let window = numbers
        .len()
        .saturating_sub(m.project.keep_generations as usize);
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
        Default::default();
    for &n in &numbers[window..] {
        let g = h.get(n).map_err(super::history::error)?;
        for b in g.backups {
            out.entry(b.backup).or_default().insert(
                b.snapshot,
                format!("recorded by generation {n} (rollback --with-data)"),
            );
        }
    }
    Ok(out)
}
