//! Carrying out one planned action between two sides, with the last-moment checks that make
//! it safe: the source still hashes as scanned and has been quiet long enough, a `.json`
//! source parses, the target still looks as scanned, and content is converted between host
//! and container form with a round-trip check. An action that fails a check is held back with
//! a reason; only a carried-out action moves the recorded base.

use sha2::{Digest, Sha256};

use super::base_store::BaseState;
use super::json_merge::merge3;
use super::model::{Entry, EntryKind, RelPath, SideName, Snapshot};
use super::reconcile::{Action, Op};
use super::rewrite::{Direction, RewriteError, RuleSet};
use super::side::{Side, SideError, Stat};

/// Why a single action did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum Hold {
    #[error("{0}")]
    Defer(String),
    #[error(transparent)]
    Side(#[from] SideError),
    #[error(transparent)]
    Rewrite(Box<RewriteError>),
    /// A batch operation failed for every action in it (the message says how).
    #[error("{0}")]
    Failed(String),
}

impl From<RewriteError> for Hold {
    fn from(e: RewriteError) -> Self {
        Hold::Rewrite(Box::new(e))
    }
}

/// The two sides and how content crosses between them.
pub(super) struct Pair<'a> {
    pub(super) host: &'a dyn Side,
    pub(super) container: &'a dyn Side,
    pub(super) rules: &'a RuleSet,
    /// Quiet period in milliseconds (0: none).
    pub(super) quiet_ms: i64,
    /// When the pass started, milliseconds since the Unix epoch.
    pub(super) now_ms: i64,
}

impl Pair<'_> {
    pub(super) fn side(&self, s: SideName) -> &dyn Side {
        match s {
            SideName::Host => self.host,
            SideName::Container => self.container,
        }
    }

    /// A file's content in host form, checked against what the scan saw.
    fn read_host_form(
        &self,
        side: SideName,
        path: &RelPath,
        expect: &Entry,
    ) -> Result<Vec<u8>, Hold> {
        let raw = self.side(side).read(path)?;
        let host_form = match side {
            SideName::Host => raw,
            SideName::Container => self
                .rules
                .convert_checked(path, &raw, Direction::ToHost)?
                .into_owned(),
        };
        if sha256_hex(&host_form) != expect.hash {
            return Err(Hold::Defer(format!(
                "{path} changed {} since the scan",
                side.preposition()
            )));
        }
        Ok(host_form)
    }

    fn link_host_form(
        &self,
        side: SideName,
        path: &RelPath,
        expect: &Entry,
    ) -> Result<String, Hold> {
        let raw = self.side(side).read_link(path)?;
        let target = match side {
            SideName::Host => raw,
            SideName::Container => self.rules.apply_str(&raw, Direction::ToHost).into_owned(),
        };
        if sha256_hex(target.as_bytes()) != expect.hash {
            return Err(Hold::Defer(format!(
                "{path} changed {} since the scan",
                side.preposition()
            )));
        }
        Ok(target)
    }

    pub(super) fn to_side_form<'b>(
        &self,
        side: SideName,
        path: &RelPath,
        host_form: &'b [u8],
    ) -> Result<std::borrow::Cow<'b, [u8]>, Hold> {
        Ok(match side {
            SideName::Host => host_form.into(),
            SideName::Container => {
                self.rules
                    .convert_checked(path, host_form, Direction::ToContainer)?
            }
        })
    }

    pub(super) fn check_quiet(
        &self,
        side: SideName,
        path: &RelPath,
        entry: &Entry,
    ) -> Result<(), Hold> {
        if self.quiet_ms > 0 && self.now_ms - entry.mtime < self.quiet_ms {
            return Err(Hold::Defer(format!(
                "{path} is still changing {}",
                side.preposition()
            )));
        }
        Ok(())
    }

    /// The target still looks as scanned (so a concurrent edit there is not clobbered).
    fn check_unchanged(
        &self,
        side: SideName,
        path: &RelPath,
        scanned: Option<&Entry>,
    ) -> Result<(), Hold> {
        let now = self.side(side).stat(path)?;
        let same = unchanged(now, scanned);
        // An edit in the same mtime tick as the scan keeps the mtime: for recently modified
        // files, compare the content too.
        let recent = matches!((now, scanned), (Some(st), Some(_)) if st.kind == EntryKind::File
            && self.now_ms - st.mtime < super::side::RACY_WINDOW_MS);
        if same && recent {
            if let Some(e) = scanned {
                return self.read_host_form(side, path, e).map(|_| ());
            }
        }
        if same {
            Ok(())
        } else {
            Err(Hold::Defer(format!(
                "{path} changed {} since the scan",
                side.preposition()
            )))
        }
    }

    /// Writes host-form content to `side` at `path`, clearing whatever else is there.
    fn put_file(
        &self,
        side: SideName,
        path: &RelPath,
        host_form: &[u8],
        mode: u32,
        current: Option<&Entry>,
    ) -> Result<(), Hold> {
        let bytes = self.to_side_form(side, path, host_form)?;
        if current.is_some_and(|e| e.kind != EntryKind::File) {
            self.side(side).delete(path)?;
        }
        self.side(side).write_file(path, &bytes, mode)?;
        Ok(())
    }
}

/// Whether what is at a path now (`now`) still looks as the scan saw it: the same kind and,
/// for files and links, the same mtime.
pub(super) fn unchanged(now: Option<Stat>, scanned: Option<&Entry>) -> bool {
    match (now, scanned) {
        (None, None) => true,
        (Some(st), Some(e)) => {
            st.kind == e.kind && (st.kind == EntryKind::Dir || st.mtime == e.mtime)
        }
        _ => false,
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads both versions (and the base text) and merges them. The outer error defers the merge
/// (unparsable or still changing); the inner one lists conflicting JSON pointers.
pub(super) fn prepare_merge(
    pair: &Pair,
    base: &BaseState,
    path: &RelPath,
    h: &Entry,
    c: &Entry,
) -> Result<Result<String, Vec<String>>, Hold> {
    pair.check_quiet(SideName::Host, path, h)?;
    pair.check_quiet(SideName::Container, path, c)?;
    let host_text = pair.read_host_form(SideName::Host, path, h)?;
    let container_text = pair.read_host_form(SideName::Container, path, c)?;
    let parse = |bytes: &[u8], side: SideName| {
        serde_json::from_slice::<serde_json::Value>(bytes).map_err(|_| {
            Hold::Defer(format!(
                "{path} does not parse as JSON {} yet",
                side.preposition()
            ))
        })
    };
    let hv = parse(&host_text, SideName::Host)?;
    let cv = parse(&container_text, SideName::Container)?;
    // No recorded ancestor (both sides created the file): merge against an empty object, so
    // keys added on only one side still combine.
    let bv = base
        .json
        .get(path)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    Ok(merge3(&bv, &hv, &cv).map(|v| {
        let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
        text
    }))
}

/// Both scans, by side.
pub(super) struct Snaps<'a> {
    pub(super) host: &'a Snapshot,
    pub(super) container: &'a Snapshot,
}

impl Snaps<'_> {
    pub(super) fn of(&self, side: SideName) -> &Snapshot {
        match side {
            SideName::Host => self.host,
            SideName::Container => self.container,
        }
    }
}

/// Carries out one action and records its outcome in the new base.
pub(super) fn apply_one(
    pair: &Pair,
    action: &Action,
    snaps: &Snaps,
    merged: &[(RelPath, String)],
    new_base: &mut BaseState,
) -> Result<(), Hold> {
    let path = &action.path;
    match &action.op {
        Op::KeepConflictCopy { from, entry, to } => {
            match entry.kind {
                EntryKind::File => {
                    let text = pair.read_host_form(*from, path, entry)?;
                    for side in [SideName::Host, SideName::Container] {
                        pair.put_file(side, to, &text, entry.mode, None)?;
                    }
                    record_json(new_base, to, &text);
                }
                EntryKind::Symlink => {
                    let target = pair.link_host_form(*from, path, entry)?;
                    for side in [SideName::Host, SideName::Container] {
                        let t = match side {
                            SideName::Host => target.clone(),
                            SideName::Container => pair
                                .rules
                                .apply_str(&target, Direction::ToContainer)
                                .into_owned(),
                        };
                        pair.side(side).symlink(to, &t)?;
                    }
                }
                // Directories always win under keep-both, so they are never the copy.
                EntryKind::Dir => return Ok(()),
            }
            new_base.entries.insert(to.clone(), entry.clone());
        }
        Op::Delete { on, entry } => {
            pair.check_unchanged(*on, path, Some(entry))?;
            pair.side(*on).delete(path)?;
            new_base.entries.remove(path);
            new_base.json.remove(path);
        }
        Op::Copy { from, entry } => {
            let to = from.other();
            let current = snaps.of(to).get(path);
            pair.check_unchanged(to, path, current)?;
            match entry.kind {
                EntryKind::File => {
                    pair.check_quiet(*from, path, entry)?;
                    let text = pair.read_host_form(*from, path, entry)?;
                    if path.is_json() && !parses_as_json(&text) {
                        return Err(Hold::Defer(format!(
                            "{path} does not parse as JSON {} yet",
                            from.preposition()
                        )));
                    }
                    // Last look before the write: the source must not be being rewritten
                    // and the target must not have been edited since the scan.
                    pair.check_unchanged(*from, path, Some(entry))?;
                    pair.check_unchanged(to, path, current)?;
                    pair.put_file(to, path, &text, entry.mode, current)?;
                    record_json(new_base, path, &text);
                }
                EntryKind::Dir => {
                    if current.is_some_and(|e| e.kind != EntryKind::Dir) {
                        pair.side(to).delete(path)?;
                    }
                    pair.side(to).mkdir(path, entry.mode)?;
                }
                EntryKind::Symlink => {
                    let target = pair.link_host_form(*from, path, entry)?;
                    let t = match to {
                        SideName::Host => target,
                        SideName::Container => pair
                            .rules
                            .apply_str(&target, Direction::ToContainer)
                            .into_owned(),
                    };
                    if current.is_some() {
                        pair.side(to).delete(path)?;
                    }
                    pair.side(to).symlink(path, &t)?;
                }
            }
            new_base.entries.insert(path.clone(), entry.clone());
        }
        Op::MergeJson => {
            let Some((_, text)) = merged.iter().find(|(p, _)| p == path) else {
                return Err(Hold::Defer(format!("{path}: merge was not prepared")));
            };
            let mut entry = None;
            for side in [SideName::Host, SideName::Container] {
                let current = snaps.of(side).get(path);
                pair.check_unchanged(side, path, current)?;
                let mode = current.map_or(0o644, |e| e.mode);
                pair.put_file(side, path, text.as_bytes(), mode, current)?;
                entry = current.map(|e| Entry {
                    kind: EntryKind::File,
                    hash: sha256_hex(text.as_bytes()),
                    size: text.len() as u64,
                    mode: e.mode,
                    mtime: pair.now_ms,
                });
            }
            if let Some(e) = entry {
                new_base.entries.insert(path.clone(), e);
            }
            record_json(new_base, path, text.as_bytes());
        }
        Op::RecordBase { entry } => match entry {
            Some(e) => {
                if path.is_json() && e.kind == EntryKind::File {
                    let text = pair.read_host_form(SideName::Host, path, e)?;
                    record_json(new_base, path, &text);
                }
                new_base.entries.insert(path.clone(), e.clone());
            }
            None => {
                new_base.entries.remove(path);
                new_base.json.remove(path);
            }
        },
    }
    Ok(())
}

/// True when the bytes are one whole JSON document.
pub(super) fn parses_as_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
}

/// Keeps the agreed text of `.json` files as the ancestor for later merges.
pub(super) fn record_json(base: &mut BaseState, path: &RelPath, host_form: &[u8]) {
    if path.is_json() {
        match std::str::from_utf8(host_form) {
            Ok(t) => {
                base.json.insert(path.clone(), t.to_string());
            }
            Err(_) => {
                base.json.remove(path);
            }
        }
    }
}
