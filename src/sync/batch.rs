//! Carrying out many plain actions at once: copies of files and new directories, and
//! deletions, grouped by the side they change, so a side whose every call is a round trip (a
//! container) does a whole batch in a constant number of them.
//!
//! A batch makes the same checks as [`apply_one`](super::apply::apply_one), per path but
//! with one call for all paths: the source has been quiet long enough, source and target
//! still look as scanned (kind and mtime), a `.json` source parses. Content is re-hashed
//! against the scan only for a source modified within [`RACY_WINDOW_MS`] of the pass (an
//! older file whose mtime did not move is the file the scan hashed, as the hash caches
//! assume). Actions that need more care (conflict copies, merges, symlinks, a change of
//! kind, recently modified targets) are not batchable and go one at a time.

use super::apply::{parses_as_json, record_json, sha256_hex, unchanged, Hold, Pair, Snaps};
use super::base_store::BaseState;
use super::model::{Entry, EntryKind, RelPath, SideName};
use super::reconcile::{Action, Op};
use super::rewrite::Direction;
use super::side::{CachedHash, Put, PutItem, RACY_WINDOW_MS};

/// The most bytes of file content one batch carries (bounds memory).
pub(super) const MAX_BATCH_BYTES: u64 = 128 << 20;
/// The most actions in one batch.
pub(super) const MAX_BATCH_ACTIONS: usize = 8192;

fn recent(pair: &Pair, e: &Entry) -> bool {
    e.kind == EntryKind::File && pair.now_ms - e.mtime < RACY_WINDOW_MS
}

/// Whether `action` may go in a batch, and of which group: deletions (rank 1) and writes
/// (rank 2) never share a batch.
pub(super) fn batch_group(pair: &Pair, action: &Action, snaps: &Snaps) -> Option<u8> {
    match &action.op {
        Op::Delete { entry, .. } => (!recent(pair, entry)).then_some(1),
        Op::Copy { from, entry } => {
            let current = snaps.of(from.other()).get(&action.path);
            let plain = match entry.kind {
                EntryKind::File => {
                    current.is_none_or(|c| c.kind == EntryKind::File && !recent(pair, c))
                }
                EntryKind::Dir => current.is_none(),
                EntryKind::Symlink => false,
            };
            plain.then_some(2)
        }
        _ => None,
    }
}

/// The content bytes an action adds to a batch.
pub(super) fn batch_bytes(action: &Action) -> u64 {
    match &action.op {
        Op::Copy { entry, .. } => entry.size,
        _ => 0,
    }
}

/// Carries out a batch of batchable actions (all of one group); the outcome of each, in the
/// order given. Applied actions are recorded in `new_base`.
pub(super) fn apply_batch(
    pair: &Pair,
    actions: &[&Action],
    snaps: &Snaps,
    new_base: &mut BaseState,
) -> Vec<Result<(), Hold>> {
    let mut results: Vec<Option<Result<(), Hold>>> = actions.iter().map(|_| None).collect();
    for side in [SideName::Host, SideName::Container] {
        let deletes: Vec<usize> = (0..actions.len())
            .filter(|&i| matches!(actions[i].op, Op::Delete { on, .. } if on == side))
            .collect();
        if !deletes.is_empty() {
            delete_on(pair, side, actions, &deletes, new_base, &mut results);
        }
        let copies: Vec<usize> = (0..actions.len())
            .filter(|&i| matches!(actions[i].op, Op::Copy { from, .. } if from.other() == side))
            .collect();
        if !copies.is_empty() {
            copy_to(pair, side, actions, &copies, snaps, new_base, &mut results);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Hold::Failed("not batchable".into()))))
        .collect()
}

fn changed(path: &RelPath, side: SideName) -> Hold {
    Hold::Defer(format!(
        "{path} changed {} since the scan",
        side.preposition()
    ))
}

fn delete_on(
    pair: &Pair,
    side: SideName,
    actions: &[&Action],
    indices: &[usize],
    new_base: &mut BaseState,
    results: &mut [Option<Result<(), Hold>>],
) {
    let entry_of = |i: usize| match &actions[i].op {
        Op::Delete { entry, .. } => Some(entry),
        _ => None,
    };
    let paths: Vec<RelPath> = indices.iter().map(|&i| actions[i].path.clone()).collect();
    let now = match pair.side(side).stat_many(&paths) {
        Ok(now) => now,
        Err(e) => return fail_all(indices, results, &e),
    };
    let mut go = Vec::new();
    for (k, &i) in indices.iter().enumerate() {
        if unchanged(now[k], entry_of(i)) {
            go.push(i);
        } else {
            results[i] = Some(Err(changed(&actions[i].path, side)));
        }
    }
    let paths: Vec<RelPath> = go.iter().map(|&i| actions[i].path.clone()).collect();
    for (&i, result) in go.iter().zip(pair.side(side).delete_many(&paths)) {
        if result.is_ok() {
            new_base.entries.remove(&actions[i].path);
            new_base.json.remove(&actions[i].path);
        }
        results[i] = Some(result.map_err(Hold::from));
    }
}

fn fail_all(
    indices: &[usize],
    results: &mut [Option<Result<(), Hold>>],
    e: &dyn std::error::Error,
) {
    let message = super::engine::error_chain(e);
    for &i in indices {
        results[i] = Some(Err(Hold::Failed(message.clone())));
    }
}

/// An action's index, and the host form of a `.json` file's text for the base.
type Carried = (usize, Option<Vec<u8>>);

fn copy_to(
    pair: &Pair,
    to: SideName,
    actions: &[&Action],
    indices: &[usize],
    snaps: &Snaps,
    new_base: &mut BaseState,
    results: &mut [Option<Result<(), Hold>>],
) {
    let from = to.other();
    let entry_of = |i: usize| match &actions[i].op {
        Op::Copy { entry, .. } => entry,
        _ => unreachable!("copy_to is given copies only"),
    };
    // The target still looks as scanned. A side that keeps new arrivals checks the paths
    // the scan saw empty itself, as it writes.
    let skip_empty = pair.side(to).keeps_new_arrivals();
    let looked: Vec<usize> = (0..indices.len())
        .filter(|&k| !skip_empty || snaps.of(to).get(&actions[indices[k]].path).is_some())
        .collect();
    let paths: Vec<RelPath> = looked
        .iter()
        .map(|&k| actions[indices[k]].path.clone())
        .collect();
    let mut targets = vec![None; indices.len()];
    match pair.side(to).stat_many(&paths) {
        Ok(seen) => {
            for (&k, stat) in looked.iter().zip(seen) {
                targets[k] = stat;
            }
        }
        Err(e) => return fail_all(indices, results, &e),
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for (k, &i) in indices.iter().enumerate() {
        let path = &actions[i].path;
        let entry = entry_of(i);
        if !unchanged(targets[k], snaps.of(to).get(path)) {
            results[i] = Some(Err(changed(path, to)));
        } else if entry.kind == EntryKind::Dir {
            dirs.push(i);
        } else if let Err(hold) = pair.check_quiet(from, path, entry) {
            results[i] = Some(Err(hold));
        } else {
            files.push(i);
        }
    }
    // The source still looks as scanned (unless the side holds the bytes the scan
    // hashed), then its bytes.
    let (held, looked): (Vec<usize>, Vec<usize>) = files
        .iter()
        .partition(|&&i| pair.side(from).holds_scanned(&actions[i].path));
    let paths: Vec<RelPath> = looked.iter().map(|&i| actions[i].path.clone()).collect();
    let sources = match pair.side(from).stat_many(&paths) {
        Ok(s) => s,
        Err(e) => return fail_all(&looked, results, &e),
    };
    let mut fresh: Vec<usize> = looked
        .iter()
        .zip(&sources)
        .filter_map(|(&i, now)| {
            if unchanged(*now, Some(entry_of(i))) {
                Some(i)
            } else {
                results[i] = Some(Err(changed(&actions[i].path, from)));
                None
            }
        })
        .collect();
    fresh.extend(held);
    let paths: Vec<RelPath> = fresh.iter().map(|&i| actions[i].path.clone()).collect();
    let contents = pair.side(from).read_many(&paths);
    let mut items = Vec::new();
    let mut carried = Vec::new();
    for &i in &dirs {
        items.push(PutItem {
            path: actions[i].path.clone(),
            put: Put::Dir {
                mode: entry_of(i).mode,
            },
            replaces: false,
        });
        carried.push((i, None));
    }
    for (&i, content) in fresh.iter().zip(contents) {
        let path = &actions[i].path;
        let entry = entry_of(i);
        match host_and_side_form(pair, from, to, path, entry, content) {
            Ok((host_form, bytes)) => {
                items.push(PutItem {
                    path: path.clone(),
                    put: Put::File {
                        bytes,
                        mode: entry.mode,
                        mtime_ms: entry.mtime,
                    },
                    replaces: snaps.of(to).get(path).is_some(),
                });
                // Only `.json` files keep their text in the base.
                carried.push((i, path.is_json().then_some(host_form)));
            }
            Err(hold) => results[i] = Some(Err(hold)),
        }
    }
    // Parents before their contents, as the side expects; moved, not copied: the items hold
    // a whole batch of file content.
    let mut paired: Vec<(PutItem, Carried)> = items.into_iter().zip(carried).collect();
    paired.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let (items, carried): (Vec<PutItem>, Vec<Carried>) = paired.into_iter().unzip();
    let written = pair.side(to).put_many(&items);
    for (((i, host_form), result), item) in carried.into_iter().zip(written).zip(&items) {
        if result.is_ok() {
            let path = &actions[i].path;
            let entry = entry_of(i);
            // The file carries its source's mtime; when that is old enough to trust, the
            // write seeds the target's hash cache, so the next scan does not read it back.
            if let Put::File {
                bytes, mtime_ms, ..
            } = &item.put
            {
                let seen = pair.side(to).written(path, bytes.len() as u64, *mtime_ms);
                if let Some((size, mtime, ino)) =
                    seen.filter(|s| pair.now_ms - s.1 >= RACY_WINDOW_MS)
                {
                    let record = CachedHash {
                        size,
                        mtime,
                        ino,
                        hash: entry.hash.clone(),
                        host_size: entry.size,
                    };
                    new_base.cache_mut(to).insert(path.clone(), record);
                }
            }
            new_base.entries.insert(path.clone(), entry.clone());
            if let Some(text) = host_form {
                record_json(new_base, path, &text);
            }
        }
        results[i] = Some(result.map_err(|e| match e {
            super::side::SideError::Appeared { .. } => changed(&actions[i].path, to),
            e => Hold::from(e),
        }));
    }
}

/// A source file's bytes in host form (checked against the scan when it is recent) and in
/// the target side's form.
fn host_and_side_form(
    pair: &Pair,
    from: SideName,
    to: SideName,
    path: &RelPath,
    entry: &Entry,
    content: Result<Vec<u8>, super::side::SideError>,
) -> Result<(Vec<u8>, Vec<u8>), Hold> {
    let raw = content?;
    let host_form = match from {
        SideName::Host => raw,
        SideName::Container => pair
            .rules
            .convert_checked(path, &raw, Direction::ToHost)?
            .into_owned(),
    };
    if recent(pair, entry) && sha256_hex(&host_form) != entry.hash {
        return Err(changed(path, from));
    }
    if path.is_json() && !parses_as_json(&host_form) {
        return Err(Hold::Defer(format!(
            "{path} does not parse as JSON {} yet",
            from.preposition()
        )));
    }
    let bytes = pair.to_side_form(to, path, &host_form)?.into_owned();
    Ok((host_form, bytes))
}
