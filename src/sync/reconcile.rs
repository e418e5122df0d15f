//! The pure three-way reconcile: from the recorded base and the two sides' snapshots (all in
//! host form) to a plan of actions, each with a reason, plus the conflicts found.
//!
//! Per path, a side "changed" when its entry differs from the base entry (absence included).
//! In two-way mode a change on one side propagates; identical changes on both sides only move
//! the base; different changes are conflicts for the policy (`.json` files are first handed to
//! the engine for a key-wise merge). Deletions are therefore judged only against the base: a
//! path absent on one side and unchanged on the other is deleted; absent on one side with no
//! base is new on the other and is copied. In one-way modes the source side's state is imposed
//! on the other. A final pass keeps the result a valid tree: a directory that still holds
//! surviving entries is kept, and a file that replaced a directory whose contents changed on
//! the other side is a conflict. Nothing here touches a file system.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::model::{same_opt, ConflictPolicy, Entry, EntryKind, Mode, RelPath, SideName, Snapshot};

/// What to do to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Make the other side of `from` hold `entry` (replacing whatever is there).
    Copy {
        /// The side whose version is copied.
        from: SideName,
        /// That version.
        entry: Entry,
    },
    /// Remove the path on side `on`, where it currently is `entry`.
    Delete {
        /// The side to delete on.
        on: SideName,
        /// What is there now.
        entry: Entry,
    },
    /// Both sides changed this `.json` file differently: merge by key, and only if that fails,
    /// fall back to the conflict policy.
    MergeJson,
    /// Before the path is overwritten, save side `from`'s version (`entry`) as the new path `to`
    /// on both sides.
    KeepConflictCopy {
        /// The losing side.
        from: SideName,
        /// Its version.
        entry: Entry,
        /// The conflict copy's name.
        to: RelPath,
    },
    /// Both sides already agree; only the recorded base changes (to `entry`, or removed).
    RecordBase {
        /// The agreed state.
        entry: Option<Entry>,
    },
}

/// Why an action is planned, in words shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "side", rename_all = "kebab-case")]
pub enum Reason {
    /// New on that side.
    Created(SideName),
    /// Content changed on that side.
    Changed(SideName),
    /// Kind changed (file ↔ directory ↔ symlink) on that side.
    TypeChanged(SideName),
    /// Removed on that side.
    Deleted(SideName),
    /// Both sides made the same change.
    BothChangedAlike,
    /// One-way mode: the change on this side is undone.
    Reverted(SideName),
    /// Both sides changed differently.
    Conflict,
    /// A directory kept because entries under it survive.
    KeptForContents,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Created(s) => write!(f, "created {}", s.preposition()),
            Reason::Changed(s) => write!(f, "changed {}", s.preposition()),
            Reason::TypeChanged(s) => write!(f, "type changed {}", s.preposition()),
            Reason::Deleted(s) => write!(f, "deleted {}", s.preposition()),
            Reason::BothChangedAlike => f.write_str("changed identically on both sides"),
            Reason::Reverted(s) => write!(f, "one-way sync reverts the change {}", s.preposition()),
            Reason::Conflict => f.write_str("conflict: both changed"),
            Reason::KeptForContents => f.write_str("kept: entries under it survive"),
        }
    }
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The path acted on.
    pub path: RelPath,
    /// What happens to it.
    pub op: Op,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Action {
    /// One line for people: `settings.json: copy to container (changed on host)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.op {
            Op::Copy { from, .. } => format!("copy to {}", from.other()),
            Op::Delete { on, .. } => format!("delete {}", on.preposition()),
            Op::MergeJson => "merge JSON keys on both sides".to_string(),
            Op::KeepConflictCopy { from, to, .. } => format!("keep the {from} version as {to}"),
            Op::RecordBase { .. } => "record as agreed".to_string(),
        };
        write!(f, "{}: {what} ({})", self.path, self.reason)
    }
}

/// How a conflict was (or was not) settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "resolution", rename_all = "kebab-case")]
pub enum Resolution {
    /// Policy `fail`: not settled; the pass must not run.
    Unresolved,
    /// This side's version was kept and the other discarded.
    Kept {
        /// The winner.
        side: SideName,
    },
    /// The winner keeps the name; the loser, if it had content, is kept as `copy`.
    KeptBoth {
        /// The winner.
        side: SideName,
        /// Where the loser's version went.
        copy: Option<RelPath>,
    },
}

/// A path both sides changed differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The path.
    pub path: RelPath,
    /// The host's version.
    pub host: Option<Entry>,
    /// The container's version.
    pub container: Option<Entry>,
    /// What the policy did.
    pub resolution: Resolution,
    /// For a `.json` file whose merge failed, the JSON pointers of the keys both sides changed
    /// differently; empty when the whole file conflicts.
    pub keys: Vec<String>,
}

/// The result of [`reconcile`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Actions, ordered by path (conflict copies under their original path).
    pub actions: Vec<Action>,
    /// Every conflict found, settled or not.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// True when a conflict was left unresolved (policy `fail`): the plan must not be applied.
    pub fn is_blocked(&self) -> bool {
        self.conflicts
            .iter()
            .any(|c| c.resolution == Resolution::Unresolved)
    }

    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.conflicts.is_empty()
    }
}

/// The decided end state of one path.
#[derive(Debug, Clone)]
struct Final {
    /// The entry both sides should end with, and the side it comes from.
    state: Option<(SideName, Entry)>,
    reason: Reason,
    /// Leave the path alone (an unresolved conflict).
    hold: bool,
    merge: bool,
    copy: Option<(SideName, Entry, RelPath)>,
}

impl Final {
    fn take(side: SideName, entry: Option<&Entry>, reason: Reason) -> Final {
        Final {
            state: entry.map(|e| (side, e.clone())),
            reason,
            hold: false,
            merge: false,
            copy: None,
        }
    }

    fn entry(&self) -> Option<&Entry> {
        self.state.as_ref().map(|(_, e)| e)
    }
}

/// Plans one sync pass. `stamp` is the time text used in conflict-copy names
/// (`NAME.conflict-<side>-<stamp>`), passed in so the function stays pure.
pub fn reconcile(
    base: &Snapshot,
    host: &Snapshot,
    container: &Snapshot,
    mode: Mode,
    policy: ConflictPolicy,
    stamp: &str,
) -> Plan {
    let paths: BTreeSet<&RelPath> = base
        .keys()
        .chain(host.keys())
        .chain(container.keys())
        .collect();
    let mut taken: BTreeSet<RelPath> = paths.iter().map(|p| (*p).clone()).collect();
    let mut conflicts = Vec::new();
    let mut fin: BTreeMap<RelPath, Final> = BTreeMap::new();

    for path in &paths {
        let (b, h, c) = (base.get(*path), host.get(*path), container.get(*path));
        let decided = match mode {
            Mode::ToContainer => one_way(SideName::Host, b, h, c),
            Mode::ToHost => one_way(SideName::Container, b, c, h),
            Mode::TwoWay => {
                let host_changed = !same_opt(b, h);
                let container_changed = !same_opt(b, c);
                match (host_changed, container_changed) {
                    (false, false) => Final::take(SideName::Host, h, Reason::BothChangedAlike),
                    (true, false) => Final::take(SideName::Host, h, change(b, h, SideName::Host)),
                    (false, true) => {
                        Final::take(SideName::Container, c, change(b, c, SideName::Container))
                    }
                    (true, true) if same_opt(h, c) => {
                        Final::take(SideName::Host, h, Reason::BothChangedAlike)
                    }
                    (true, true) => {
                        let mergeable = path.is_json()
                            && h.is_some_and(|e| e.kind == EntryKind::File)
                            && c.is_some_and(|e| e.kind == EntryKind::File);
                        if mergeable {
                            Final {
                                merge: true,
                                ..Final::take(SideName::Host, h, Reason::Conflict)
                            }
                        } else {
                            let (f, conflict) = settle(path, h, c, policy, stamp, &mut taken);
                            conflicts.push(conflict);
                            f
                        }
                    }
                }
            }
        };
        fin.insert((*path).clone(), decided);
    }

    keep_tree_valid(
        &mut fin,
        host,
        container,
        policy,
        stamp,
        &mut taken,
        &mut conflicts,
    );
    conflicts.sort_by(|a, b| a.path.cmp(&b.path));

    let mut actions = Vec::new();
    for (path, f) in &fin {
        if let Some((loser, entry, to)) = &f.copy {
            actions.push(Action {
                path: path.clone(),
                op: Op::KeepConflictCopy {
                    from: *loser,
                    entry: entry.clone(),
                    to: to.clone(),
                },
                reason: Reason::Conflict,
            });
        }
        if f.hold {
            continue;
        }
        if f.merge {
            actions.push(Action {
                path: path.clone(),
                op: Op::MergeJson,
                reason: Reason::Conflict,
            });
            continue;
        }
        let mut touched = false;
        for (side, snap) in [(SideName::Host, host), (SideName::Container, container)] {
            let current = snap.get(path);
            if same_opt(current, f.entry()) {
                continue;
            }
            touched = true;
            let op = match (&f.state, current) {
                (Some((from, entry)), _) => Op::Copy {
                    from: *from,
                    entry: entry.clone(),
                },
                (None, Some(entry)) => Op::Delete {
                    on: side,
                    entry: entry.clone(),
                },
                (None, None) => continue,
            };
            actions.push(Action {
                path: path.clone(),
                op,
                reason: f.reason,
            });
        }
        if !touched && !same_opt(base.get(path), f.entry()) {
            actions.push(Action {
                path: path.clone(),
                op: Op::RecordBase {
                    entry: f.entry().cloned(),
                },
                reason: f.reason,
            });
        }
    }
    Plan { actions, conflicts }
}

/// One-way: `src` is imposed on `dst`.
fn one_way(
    src_side: SideName,
    b: Option<&Entry>,
    src: Option<&Entry>,
    dst: Option<&Entry>,
) -> Final {
    let reason = if !same_opt(b, src) {
        change(b, src, src_side)
    } else if !same_opt(src, dst) {
        Reason::Reverted(src_side.other())
    } else {
        Reason::BothChangedAlike
    };
    Final::take(src_side, src, reason)
}

/// How `now` differs from `base` on `side` (they are known to differ).
fn change(base: Option<&Entry>, now: Option<&Entry>, side: SideName) -> Reason {
    match (base, now) {
        (None, _) => Reason::Created(side),
        (_, None) => Reason::Deleted(side),
        (Some(b), Some(n)) if b.kind != n.kind => Reason::TypeChanged(side),
        _ => Reason::Changed(side),
    }
}

/// Applies the policy to a path both sides changed differently.
fn settle(
    path: &RelPath,
    h: Option<&Entry>,
    c: Option<&Entry>,
    policy: ConflictPolicy,
    stamp: &str,
    taken: &mut BTreeSet<RelPath>,
) -> (Final, Conflict) {
    let conflict = |resolution| Conflict {
        path: path.clone(),
        host: h.cloned(),
        container: c.cloned(),
        resolution,
        keys: Vec::new(),
    };
    match policy {
        ConflictPolicy::Fail => (
            Final {
                hold: true,
                ..Final::take(SideName::Host, h, Reason::Conflict)
            },
            conflict(Resolution::Unresolved),
        ),
        ConflictPolicy::PreferHost => (
            Final::take(SideName::Host, h, Reason::Conflict),
            conflict(Resolution::Kept {
                side: SideName::Host,
            }),
        ),
        ConflictPolicy::PreferContainer => (
            Final::take(SideName::Container, c, Reason::Conflict),
            conflict(Resolution::Kept {
                side: SideName::Container,
            }),
        ),
        ConflictPolicy::KeepBoth => {
            let winner = keep_both_winner(h, c);
            let (win, lose) = match winner {
                SideName::Host => (h, c),
                SideName::Container => (c, h),
            };
            let mut f = Final::take(winner, win, Reason::Conflict);
            let copy = lose.map(|entry| {
                let to = conflict_name(path, winner.other(), stamp, taken);
                f.copy = Some((winner.other(), entry.clone(), to.clone()));
                to
            });
            (f, conflict(Resolution::KeptBoth { side: winner, copy }))
        }
    }
}

/// Under keep-both, which version keeps the name: a present one over a deletion (nothing is
/// lost), a directory over a file or symlink (its contents stay where they are), otherwise the
/// newer one, the host on a tie.
pub(crate) fn keep_both_winner(h: Option<&Entry>, c: Option<&Entry>) -> SideName {
    match (h, c) {
        (None, _) => SideName::Container,
        (_, None) => SideName::Host,
        (Some(h), Some(c)) => {
            if h.kind == EntryKind::Dir {
                SideName::Host
            } else if c.kind == EntryKind::Dir || c.mtime > h.mtime {
                SideName::Container
            } else {
                SideName::Host
            }
        }
    }
}

/// `NAME.conflict-<side>-<stamp>`, with a counter if that is taken.
pub(crate) fn conflict_name(
    path: &RelPath,
    side: SideName,
    stamp: &str,
    taken: &mut BTreeSet<RelPath>,
) -> RelPath {
    let mut candidate = path.with_suffix(&format!(".conflict-{side}-{stamp}"));
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = path.with_suffix(&format!(".conflict-{side}-{stamp}-{n}"));
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// Makes the decided end state a valid tree on both sides: every surviving path's ancestors
/// must end as directories.
fn keep_tree_valid(
    fin: &mut BTreeMap<RelPath, Final>,
    host: &Snapshot,
    container: &Snapshot,
    policy: ConflictPolicy,
    stamp: &str,
    taken: &mut BTreeSet<RelPath>,
    conflicts: &mut Vec<Conflict>,
) {
    let dir_on = |path: &RelPath| -> Option<(SideName, Entry)> {
        [(SideName::Host, host), (SideName::Container, container)]
            .into_iter()
            .find_map(|(s, snap)| {
                snap.get(path)
                    .filter(|e| e.kind == EntryKind::Dir)
                    .map(|e| (s, e.clone()))
            })
    };
    let paths: Vec<RelPath> = fin.keys().cloned().collect();
    // Descendants sort after their ancestors, so walking backwards settles children first.
    for path in paths.iter().rev() {
        let survives = fin.get(path).is_some_and(|f| f.state.is_some() || f.hold);
        let Some(parent) = path.parent() else {
            continue;
        };
        if !survives {
            continue;
        }
        let Some(pf) = fin.get(&parent) else { continue };
        if pf.hold || pf.entry().is_some_and(|e| e.kind == EntryKind::Dir) {
            continue;
        }
        let Some(dir) = dir_on(&parent) else { continue };
        if pf.state.is_none() {
            // Deleted on one side, but something under it stays: keep the directory.
            fin.insert(
                parent.clone(),
                Final::take(dir.0, Some(&dir.1), Reason::KeptForContents),
            );
            continue;
        }
        // A file or symlink replaced the directory on one side while entries under it changed
        // on the other: a conflict at the directory.
        let (w_side, w_entry) = pf.state.clone().unwrap_or_else(|| dir.clone());
        let (h, c) = match w_side {
            SideName::Host => (Some(w_entry.clone()), Some(dir.1.clone())),
            SideName::Container => (Some(dir.1.clone()), Some(w_entry.clone())),
        };
        let record = |resolution| Conflict {
            path: parent.clone(),
            host: h.clone(),
            container: c.clone(),
            resolution,
            keys: Vec::new(),
        };
        let dir_wins = match policy {
            ConflictPolicy::Fail => {
                conflicts.push(record(Resolution::Unresolved));
                fin.insert(
                    parent.clone(),
                    Final {
                        hold: true,
                        ..Final::take(w_side, Some(&w_entry), Reason::Conflict)
                    },
                );
                continue;
            }
            ConflictPolicy::PreferHost | ConflictPolicy::PreferContainer => {
                let preferred = if policy == ConflictPolicy::PreferHost {
                    SideName::Host
                } else {
                    SideName::Container
                };
                conflicts.push(record(Resolution::Kept { side: preferred }));
                preferred == dir.0
            }
            ConflictPolicy::KeepBoth => {
                let to = conflict_name(&parent, w_side, stamp, taken);
                conflicts.push(record(Resolution::KeptBoth {
                    side: dir.0,
                    copy: Some(to.clone()),
                }));
                let mut f = Final::take(dir.0, Some(&dir.1), Reason::Conflict);
                f.copy = Some((w_side, w_entry.clone(), to));
                fin.insert(parent.clone(), f);
                continue;
            }
        };
        if dir_wins {
            fin.insert(
                parent.clone(),
                Final::take(dir.0, Some(&dir.1), Reason::Conflict),
            );
        } else {
            let doomed: Vec<RelPath> = fin
                .range(parent.clone()..)
                .map(|(p, _)| p)
                .skip(1)
                .take_while(|p| p.as_str().starts_with(parent.as_str()))
                .filter(|p| parent.is_ancestor_of(p))
                .cloned()
                .collect();
            for p in doomed {
                fin.insert(p, Final::take(w_side, None, Reason::Conflict));
            }
            if let Some(f) = fin.get_mut(&parent) {
                f.reason = Reason::Conflict;
            }
        }
    }
}
