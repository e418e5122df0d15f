//! One sync pass between two [`Side`]s: scan, reconcile, check safety, apply, record the base.
//!
//! Safety rules, checked before anything is changed: a missing root, or a root that is empty
//! while the base lists files, halts the pass (an unmounted volume must not read as "the user
//! deleted everything"); so do more deletions than the [`DeleteGuard`] allows, and unresolved
//! conflicts under the `fail` policy. While applying, each action is re-checked: a file is
//! propagated only once it has been quiet for the configured period, a `.json` file only when
//! it parses, a source only if it still hashes as scanned, and a target is overwritten or
//! deleted only if it still looks as scanned. An action that fails a check is deferred to a
//! later pass (its base entry is not moved); the rest of the pass goes on.
//!
//! For a single-file rule ([`RootKind::File`]) the root is the file's parent directory: a
//! missing parent halts as a missing root does, while a missing file is an ordinary deletion
//! judged against the base. A base recorded for the other kind of rule halts the pass.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::Serialize;

use super::apply::{apply_one, prepare_merge, Hold, Pair, Snaps};
use super::base_store::{BaseStore, BaseStoreError};
use super::batch::{apply_batch, batch_bytes, batch_group, MAX_BATCH_ACTIONS, MAX_BATCH_BYTES};
use super::model::{ConflictPolicy, Mode, RelPath, RootKind, SideName};
use super::reconcile::{
    conflict_name, keep_both_winner, reconcile, Action, Conflict, Op, Plan, Reason, Resolution,
};
use super::rewrite::RuleSet;
use super::side::{Side, SideError};

/// Limits on deletions in one pass: the pass halts when it would delete more than `min_count`
/// paths AND more than `max_fraction` of the base's entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteGuard {
    /// Fraction of base entries (0.0–1.0).
    pub max_fraction: f64,
    /// Deletions always allowed regardless of the fraction.
    pub min_count: usize,
}

impl Default for DeleteGuard {
    fn default() -> Self {
        DeleteGuard {
            max_fraction: 0.5,
            min_count: 10,
        }
    }
}

/// How a pass behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Direction.
    pub mode: Mode,
    /// Conflict handling.
    pub policy: ConflictPolicy,
    /// Path rewrites (host form ↔ container form).
    pub rules: RuleSet,
    /// Ignore patterns, gitignore syntax, relative to each root.
    pub ignore: Vec<String>,
    /// A file is propagated only when its mtime is at least this old.
    pub quiet_period: Duration,
    /// Deletion limits.
    pub delete_guard: DeleteGuard,
    /// Plan only: report what would happen and change nothing.
    pub dry_run: bool,
    /// Whether the sides are directory trees or single files (see [`RootKind`]).
    pub root: RootKind,
    /// When cancelled, the pass stops at the next action or batch boundary, records what it
    /// did, and reports itself [`Report::interrupted`].
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            mode: Mode::TwoWay,
            policy: ConflictPolicy::KeepBoth,
            rules: RuleSet::default(),
            ignore: Vec::new(),
            quiet_period: Duration::from_millis(2000),
            delete_guard: DeleteGuard::default(),
            dry_run: false,
            root: RootKind::Dir,
            stop: None,
        }
    }
}

/// An action not carried out in this pass, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The action.
    pub action: Action,
    /// Why it was deferred or failed.
    pub why: String,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The plan (after JSON merges were settled), each action with its reason.
    pub plan: Plan,
    /// Actions carried out.
    pub applied: Vec<Action>,
    /// Actions postponed to a later pass (still changing, unparsable JSON, changed since scan).
    pub deferred: Vec<Skipped>,
    /// Actions that failed.
    pub failed: Vec<Skipped>,
    /// `.json` files merged key by key.
    pub merged: Vec<RelPath>,
    /// True when nothing was changed on purpose.
    pub dry_run: bool,
    /// True when a stop request ended the pass before every action was tried; what was
    /// carried out is recorded, the rest is left to the next pass.
    pub interrupted: bool,
}

/// A pass that stopped before changing anything, or could not record its result.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A root does not exist.
    #[error("the {side} root ({describe}) does not exist; nothing was changed")]
    RootMissing {
        /// Which side.
        side: SideName,
        /// The side's description.
        describe: String,
    },
    /// A root is empty although the base lists entries: probably unmounted, not emptied.
    #[error("the {side} root ({describe}) is empty but the last sync recorded {base_entries} entries; refusing to propagate a wholesale deletion (nothing was changed)")]
    RootEmptied {
        /// Which side.
        side: SideName,
        /// The side's description.
        describe: String,
        /// How many entries the base holds.
        base_entries: usize,
    },
    /// The base was recorded for the other kind of rule (a directory then, a file now, or the
    /// reverse): reconciling against it would read every recorded entry as deleted.
    #[error("the last sync recorded a {recorded} rule but the host path is now a {now}; nothing was changed (delete {base} to start over)")]
    RootKindChanged {
        /// What the base recorded.
        recorded: RootKind,
        /// What the rule is now.
        now: RootKind,
        /// The base file.
        base: String,
    },
    /// Too many deletions at once.
    #[error("the pass would delete {deletions} of {base_entries} recorded entries, more than the limit; nothing was changed")]
    TooManyDeletions {
        /// Planned deletions.
        deletions: usize,
        /// Entries in the base.
        base_entries: usize,
    },
    /// Conflicts under the `fail` policy.
    #[error("{} conflict(s), both sides changed: {}; nothing was changed", .conflicts.len(), list_paths(.conflicts))]
    Conflicts {
        /// The conflicts.
        conflicts: Vec<Conflict>,
    },
    /// An ignore pattern is not valid gitignore syntax.
    #[error("invalid ignore pattern `{pattern}`")]
    IgnorePattern {
        /// The pattern.
        pattern: String,
        /// The cause.
        source: ignore::Error,
    },
    /// A side could not be scanned.
    #[error("cannot scan the {side} side")]
    Scan {
        /// Which side.
        side: SideName,
        /// The cause.
        source: SideError,
    },
    /// What the pass wrote could not be made durable, so the base was not recorded (the
    /// next pass sees both sides changed and keeps both).
    #[error("cannot flush what the pass wrote on the {side} side; the pass is not recorded")]
    Flush {
        /// Which side.
        side: SideName,
        /// The cause.
        source: SideError,
    },
    /// The base could not be loaded or saved.
    #[error(transparent)]
    Base(#[from] BaseStoreError),
}

fn list_paths(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| {
            if c.keys.is_empty() {
                c.path.to_string()
            } else {
                format!("{} (keys {})", c.path, c.keys.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn build_ignore(patterns: &[String]) -> Result<Gitignore, SyncError> {
    let mut b = GitignoreBuilder::new("/");
    for p in patterns {
        b.add_line(None, p)
            .map_err(|source| SyncError::IgnorePattern {
                pattern: p.clone(),
                source,
            })?;
    }
    b.build().map_err(|source| SyncError::IgnorePattern {
        pattern: patterns.join(" "),
        source,
    })
}

/// Runs one sync pass between `host` and `container`, against the base in `store`.
pub fn sync_pass(
    host: &dyn Side,
    container: &dyn Side,
    store: &BaseStore,
    opts: &SyncOptions,
) -> Result<Report, SyncError> {
    let base = store.load()?;
    if base.root != opts.root && !base.entries.is_empty() {
        return Err(SyncError::RootKindChanged {
            recorded: base.root,
            now: opts.root,
            base: store.path().display().to_string(),
        });
    }
    for (side, s) in [(SideName::Host, host), (SideName::Container, container)] {
        let exists = s
            .root_exists()
            .map_err(|source| SyncError::Scan { side, source })?;
        if !exists {
            return Err(SyncError::RootMissing {
                side,
                describe: s.describe(),
            });
        }
    }
    let ignore = build_ignore(&opts.ignore)?;
    // The caches hold host-form hashes, which depend on the rules.
    let rules_key = serde_json::to_string(opts.rules.rules()).unwrap_or_default();
    let mut host_cache = base.host_cache.clone();
    let mut container_cache = base.container_cache.clone();
    if base.rules_key != rules_key {
        host_cache.clear();
        container_cache.clear();
    }
    tracing::debug!("scanning {}", host.describe());
    let host_snap = host
        .scan(&ignore, None, &mut host_cache)
        .map_err(|source| SyncError::Scan {
            side: SideName::Host,
            source,
        })?;
    tracing::debug!(
        entries = host_snap.len(),
        "scanning {}",
        container.describe()
    );
    let container_snap = container
        .scan(&ignore, Some(&opts.rules), &mut container_cache)
        .map_err(|source| SyncError::Scan {
            side: SideName::Container,
            source,
        })?;
    for (side, s, snap) in [
        (SideName::Host, host, &host_snap),
        (SideName::Container, container, &container_snap),
    ] {
        // An empty side is dangerous only where its state is imposed on the other: in
        // one-way mode an emptied destination is simply refilled. A file rule's root is the
        // file's parent directory, which was checked above: a missing file is a deletion.
        let is_source = match opts.mode {
            Mode::TwoWay => true,
            Mode::ToContainer => side == SideName::Host,
            Mode::ToHost => side == SideName::Container,
        };
        if opts.root == RootKind::Dir && is_source && snap.is_empty() && !base.entries.is_empty() {
            return Err(SyncError::RootEmptied {
                side,
                describe: s.describe(),
                base_entries: base.entries.len(),
            });
        }
    }

    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut plan = reconcile(
        &base.entries,
        &host_snap,
        &container_snap,
        opts.mode,
        opts.policy,
        &stamp,
    );
    if plan.is_blocked() {
        return Err(SyncError::Conflicts {
            conflicts: plan.conflicts,
        });
    }
    let deletions = plan
        .actions
        .iter()
        .filter(|a| matches!(a.op, Op::Delete { .. }))
        .count();
    let guard = opts.delete_guard;
    if deletions > guard.min_count
        && deletions as f64 > guard.max_fraction * base.entries.len() as f64
    {
        return Err(SyncError::TooManyDeletions {
            deletions,
            base_entries: base.entries.len(),
        });
    }

    let pair = Pair {
        host,
        container,
        rules: &opts.rules,
        quiet_ms: i64::try_from(opts.quiet_period.as_millis()).unwrap_or(i64::MAX),
        now_ms: now_ms(),
    };
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };

    // Settle JSON merges first: a failed merge under `fail` must stop the pass before anything
    // is written, and under the other policies it turns into ordinary actions.
    let mut taken: BTreeSet<RelPath> = host_snap
        .keys()
        .chain(container_snap.keys())
        .cloned()
        .collect();
    let mut merged_docs = Vec::new();
    let mut settled = Vec::with_capacity(plan.actions.len());
    let mut unresolved = Vec::new();
    for action in std::mem::take(&mut plan.actions) {
        if action.op != Op::MergeJson {
            settled.push(action);
            continue;
        }
        let path = &action.path;
        let (Some(h), Some(c)) = (host_snap.get(path), container_snap.get(path)) else {
            continue;
        };
        match prepare_merge(&pair, &base, path, h, c) {
            Ok(Ok(text)) => {
                merged_docs.push((path.clone(), text));
                settled.push(action);
            }
            Ok(Err(pointers)) => {
                let conflict = |resolution| Conflict {
                    path: path.clone(),
                    host: Some(h.clone()),
                    container: Some(c.clone()),
                    resolution,
                    keys: pointers.clone(),
                };
                let winner = match opts.policy {
                    ConflictPolicy::Fail => {
                        unresolved.push(conflict(Resolution::Unresolved));
                        continue;
                    }
                    ConflictPolicy::PreferHost => SideName::Host,
                    ConflictPolicy::PreferContainer => SideName::Container,
                    ConflictPolicy::KeepBoth => keep_both_winner(Some(h), Some(c)),
                };
                let (win, lose) = match winner {
                    SideName::Host => (h, c),
                    SideName::Container => (c, h),
                };
                let copy = (opts.policy == ConflictPolicy::KeepBoth).then(|| {
                    let to = conflict_name(path, winner.other(), &stamp, &mut taken);
                    settled.push(Action {
                        path: path.clone(),
                        op: Op::KeepConflictCopy {
                            from: winner.other(),
                            entry: lose.clone(),
                            to: to.clone(),
                        },
                        reason: Reason::Conflict,
                    });
                    to
                });
                settled.push(Action {
                    path: path.clone(),
                    op: Op::Copy {
                        from: winner,
                        entry: win.clone(),
                    },
                    reason: Reason::Conflict,
                });
                plan.conflicts
                    .push(conflict(if opts.policy == ConflictPolicy::KeepBoth {
                        Resolution::KeptBoth { side: winner, copy }
                    } else {
                        Resolution::Kept { side: winner }
                    }));
            }
            Err(hold) => report.deferred.push(Skipped {
                action: action.clone(),
                why: hold.to_string(),
            }),
        }
    }
    if !unresolved.is_empty() {
        return Err(SyncError::Conflicts {
            conflicts: unresolved,
        });
    }
    plan.actions = settled;
    report.plan = plan.clone();
    if opts.dry_run {
        return Ok(report);
    }

    // Order: conflict copies (before their originals are overwritten), deletions deepest
    // first (a directory empties before it goes), then writes shallowest first (a directory
    // exists before its contents), then base-only updates.
    let rank = |a: &Action| match a.op {
        Op::KeepConflictCopy { .. } => 0,
        Op::Delete { .. } => 1,
        Op::Copy { .. } | Op::MergeJson => 2,
        Op::RecordBase { .. } => 3,
    };
    let mut ordered: Vec<&Action> = plan.actions.iter().collect();
    ordered.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            if rank(a) == 1 {
                b.path.cmp(&a.path)
            } else {
                a.path.cmp(&b.path)
            }
        })
    });

    let mut new_base = base.clone();
    let mut changed_base = new_base.host_cache != host_cache
        || new_base.container_cache != container_cache
        || new_base.rules_key != rules_key
        || new_base.root != opts.root;
    new_base.root = opts.root;
    new_base.host_cache = host_cache;
    new_base.container_cache = container_cache;
    new_base.rules_key = rules_key;
    let snaps = Snaps {
        host: &host_snap,
        container: &container_snap,
    };
    let mut next = 0;
    while next < ordered.len() {
        if opts.stop.as_ref().is_some_and(|t| t.is_cancelled()) {
            report.interrupted = true;
            break;
        }
        // The longest run of batchable actions of one group from here, within the limits.
        let group = batch_group(&pair, ordered[next], &snaps);
        let mut end = next;
        let mut bytes = 0;
        if group.is_some() {
            while end < ordered.len()
                && end - next < MAX_BATCH_ACTIONS
                && (end == next || bytes + batch_bytes(ordered[end]) <= MAX_BATCH_BYTES)
                && batch_group(&pair, ordered[end], &snaps) == group
            {
                bytes += batch_bytes(ordered[end]);
                end += 1;
            }
        }
        let (run, results) = if end > next {
            let run = &ordered[next..end];
            tracing::debug!(actions = run.len(), bytes, "applying a batch");
            (run, apply_batch(&pair, run, &snaps, &mut new_base))
        } else {
            end = next + 1;
            let run = &ordered[next..end];
            let result = apply_one(&pair, run[0], &snaps, &merged_docs, &mut new_base);
            (run, vec![result])
        };
        next = end;
        let stopped = opts.stop.as_ref().is_some_and(|t| t.is_cancelled());
        for (action, result) in run.iter().zip(results) {
            match result {
                Ok(()) => {
                    changed_base = true;
                    // A file rule's sides show only the file, so a conflict copy written
                    // beside it is left to the user rather than tracked (the next scan could
                    // not see it).
                    if let (RootKind::File, Op::KeepConflictCopy { to, .. }) =
                        (opts.root, &action.op)
                    {
                        new_base.entries.remove(to);
                        new_base.json.remove(to);
                    }
                    if action.op == Op::MergeJson {
                        report.merged.push(action.path.clone());
                    }
                    report.applied.push((*action).clone());
                }
                // An action cut short by a stop request is not a failure: the next pass
                // carries it.
                Err(_) if stopped => report.deferred.push(Skipped {
                    action: (*action).clone(),
                    why: "interrupted".into(),
                }),
                Err(Hold::Defer(why)) => report.deferred.push(Skipped {
                    action: (*action).clone(),
                    why,
                }),
                Err(e) => report.failed.push(Skipped {
                    action: (*action).clone(),
                    why: error_chain(&e),
                }),
            }
        }
    }
    if changed_base {
        // The base must never record a write the disk could still lose.
        for (side, s) in [(SideName::Host, host), (SideName::Container, container)] {
            s.flush()
                .map_err(|source| SyncError::Flush { side, source })?;
        }
        store.save(&new_base)?;
    }
    Ok(report)
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
