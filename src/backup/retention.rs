//! Which snapshots to keep, and pruning the rest.
//!
//! [`select_keep`] is pure and follows restic/borg semantics: snapshots are taken newest
//! first, and each bucket (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`) keeps
//! the newest snapshot of each of its N most recent periods that hold a snapshot. Periods
//! are UTC calendar periods (ISO weeks). On top of the policy, the newest verified snapshot
//! is always kept (or the newest snapshot, if none was verified), snapshots dated after
//! `now` are kept (a clock problem is no reason to delete), and an empty policy keeps all.
//!
//! [`prune`] deletes only files this module wrote: names that parse as snapshot files, each
//! removed snapshot's manifest first (so a crash leaves an orphan, never a manifest without
//! its archive), orphans left by interrupted backups and the debris of interrupted writes
//! ([`sweep`](super::sweep)).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};

use super::catalog::list_snapshots;
use super::error::BackupError;
use super::store::Store;

/// How many snapshots to keep per bucket; zero disables a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The N newest snapshots.
    pub last: u32,
    /// One per hour for the N most recent hours with snapshots.
    pub hourly: u32,
    /// One per day.
    pub daily: u32,
    /// One per ISO week.
    pub weekly: u32,
    /// One per month.
    pub monthly: u32,
    /// One per year.
    pub yearly: u32,
}

impl KeepPolicy {
    /// Whether every bucket is zero.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What retention needs to know about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Snapshot id.
    pub id: String,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// Whether its last verification passed.
    pub verified: bool,
}

/// The decision for one snapshot, with the reasons it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepDecision {
    /// Snapshot id.
    pub id: String,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// Keep or delete.
    pub keep: bool,
    /// Why it is kept (empty when deleted).
    pub reasons: Vec<String>,
}

/// Decides which snapshots to keep; the result is ordered newest first.
pub fn select_keep(
    snapshots: &[Candidate],
    policy: &KeepPolicy,
    now: DateTime<Utc>,
) -> Vec<KeepDecision> {
    let mut order: Vec<&Candidate> = snapshots.iter().collect();
    order.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    let mut decisions: Vec<KeepDecision> = order
        .iter()
        .map(|c| KeepDecision {
            id: c.id.clone(),
            created: c.created,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    let keep = |d: &mut KeepDecision, why: String| {
        d.keep = true;
        d.reasons.push(why);
    };
    if policy.is_empty() {
        for d in &mut decisions {
            keep(d, "no keep policy: everything is kept".into());
        }
        return decisions;
    }
    type Period = fn(usize, DateTime<Utc>) -> String;
    let buckets: [(&str, u32, Period); 6] = [
        ("last", policy.last, |i, _| i.to_string()),
        ("hourly", policy.hourly, |_, t| {
            t.format("%Y-%m-%d %H:00").to_string()
        }),
        ("daily", policy.daily, |_, t| {
            t.format("%Y-%m-%d").to_string()
        }),
        ("weekly", policy.weekly, |_, t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |_, t| {
            t.format("%Y-%m").to_string()
        }),
        ("yearly", policy.yearly, |_, t| t.format("%Y").to_string()),
    ];
    for (name, count, period) in buckets {
        let mut left = count;
        let mut last: Option<String> = None;
        for (i, d) in decisions.iter_mut().enumerate() {
            if d.created > now || left == 0 {
                continue;
            }
            let p = period(i, d.created);
            if last.as_deref() != Some(p.as_str()) {
                keep(d, format!("{name} {p}"));
                last = Some(p);
                left -= 1;
            }
        }
    }
    for d in decisions.iter_mut().filter(|d| d.created > now) {
        keep(d, "dated after now".into());
    }
    let newest_verified = order.iter().position(|c| c.verified);
    match newest_verified {
        Some(i) => keep(&mut decisions[i], "newest verified snapshot".into()),
        None => {
            if let Some(d) = decisions.first_mut() {
                keep(d, "newest snapshot (none verified yet)".into());
            }
        }
    }
    decisions
}

/// What prune did (or would do, when dry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// The decision for every snapshot of the backup, newest first.
    pub decisions: Vec<KeepDecision>,
    /// Files deleted (or to delete).
    pub deleted_files: Vec<String>,
}

/// Applies `policy` to the snapshots of `backup` in one copy and removes orphans and debris.
/// Snapshots in `pinned` (id → why) are kept whatever the policy says: recent generations
/// recorded them for `rollback --with-data`.
pub fn prune(
    store: &dyn Store,
    backup: &str,
    policy: &KeepPolicy,
    pinned: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, BackupError> {
    let catalog = list_snapshots(store, now)?;
    let snaps: Vec<_> = catalog.of_backup(backup).collect();
    let candidates: Vec<Candidate> = snaps
        .iter()
        .map(|s| Candidate {
            id: s.id.clone(),
            created: s.created,
            verified: s.verified_ok(),
        })
        .collect();
    let mut decisions = select_keep(&candidates, policy, now);
    for d in &mut decisions {
        if let Some(why) = pinned.get(&d.id) {
            d.keep = true;
            d.reasons.push(why.clone());
        }
    }
    let mut deleted_files = Vec::new();
    for d in decisions.iter().filter(|d| !d.keep) {
        for s in snaps
            .iter()
            .filter(|s| s.id == d.id && s.created == d.created)
        {
            // Manifest first: the snapshot stops being listed before its archive goes.
            for name in [&s.manifest_name, &s.archive_name, &s.verified_name] {
                if !dry_run {
                    store.remove(name)?;
                }
                deleted_files.push(name.clone());
            }
        }
    }
    let leftovers = catalog.orphans.iter().map(|o| &o.name);
    for name in leftovers.chain(catalog.debris.iter().map(|f| &f.name)) {
        if !dry_run {
            store.remove(name)?;
        }
        deleted_files.push(name.clone());
    }
    Ok(PruneReport {
        decisions,
        deleted_files,
    })
}
