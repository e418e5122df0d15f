//! The sync data model: relative paths, per-path entries, snapshots of a side, and the two
//! user choices (direction and conflict policy).
//!
//! Everything here is plain data. Hashes are always of the HOST form of a file (container
//! content is inverse-rewritten before hashing), so entries from the two sides and the recorded
//! base compare directly.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A path relative to a sync root: `/`-separated, non-empty, with no `.`, `..` or empty
/// components, so it can never name anything outside the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(String);

/// A string that is not an acceptable [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` is not a relative path inside the sync root")]
pub struct InvalidRelPath {
    /// The rejected text.
    pub path: String,
}

impl RelPath {
    /// Checks and wraps a `/`-separated relative path.
    pub fn new(path: impl Into<String>) -> Result<Self, InvalidRelPath> {
        let path = path.into();
        let ok = !path.is_empty()
            && !path.starts_with('/')
            && !path.contains('\0')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if ok {
            Ok(RelPath(path))
        } else {
            Err(InvalidRelPath { path })
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The containing directory, or `None` at the top of the root.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_string()))
    }

    /// `self/name`.
    pub fn join(&self, name: &str) -> Result<RelPath, InvalidRelPath> {
        RelPath::new(format!("{}/{}", self.0, name))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// True when `self` is a strict ancestor directory of `other`.
    pub fn is_ancestor_of(&self, other: &RelPath) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&self.0)
            && other.0.as_bytes()[self.0.len()] == b'/'
    }

    /// The same path with `suffix` appended to its last component.
    pub fn with_suffix(&self, suffix: &str) -> RelPath {
        RelPath(format!("{}{}", self.0, suffix))
    }

    /// True for `*.json` files, which get JSON-aware rewriting, parsing checks and merging.
    pub fn is_json(&self) -> bool {
        self.file_name().to_ascii_lowercase().ends_with(".json")
    }

    /// The path under a root directory on the local file system.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        p.extend(self.0.split('/'));
        p
    }
}

impl TryFrom<String> for RelPath {
    type Error = InvalidRelPath;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RelPath::new(s)
    }
}

impl From<RelPath> for String {
    fn from(p: RelPath) -> String {
        p.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symlink",
        })
    }
}

/// One path's observed state on a side (or in the base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Hex sha256 of the host-form content (file bytes, or symlink target); empty for a directory.
    pub hash: String,
    /// Size in bytes of the host-form content.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time on the side it was observed, in milliseconds since the Unix epoch.
    pub mtime: i64,
}

impl Entry {
    /// True when the two entries hold the same thing. Directories compare by kind only, files by
    /// content and executable bit; mtimes and other mode bits are side-local and not compared
    /// (a copy gets a fresh mtime, and a container may map permissions differently).
    pub fn same_state(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && match self.kind {
                EntryKind::Dir => true,
                EntryKind::Symlink => self.hash == other.hash,
                EntryKind::File => {
                    self.hash == other.hash && (self.mode & 0o111) == (other.mode & 0o111)
                }
            }
    }
}

/// [`Entry::same_state`] lifted to "maybe absent" entries.
pub fn same_opt(a: Option<&Entry>, b: Option<&Entry>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_state(b),
        _ => false,
    }
}

/// Everything under a root, by relative path.
pub type Snapshot = BTreeMap<RelPath, Entry>;

/// What a rule syncs: a directory tree, or one file (whose parent directory is then the root
/// that must exist). Recorded in the base, so that a host file deleted since the last pass
/// is a deletion and not a directory root gone missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// The host path is a directory; every entry below it is synced.
    #[default]
    Dir,
    /// The host path is a single file; only it is synced.
    File,
}

impl fmt::Display for RootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootKind::Dir => "directory",
            RootKind::File => "file",
        })
    }
}

/// One of the two sides of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideName {
    /// The host directory.
    Host,
    /// The container (volume) directory.
    Container,
}

impl SideName {
    /// The other side.
    pub fn other(self) -> SideName {
        match self {
            SideName::Host => SideName::Container,
            SideName::Container => SideName::Host,
        }
    }

    /// "on host" / "in container", for reasons shown to people.
    pub fn preposition(self) -> &'static str {
        match self {
            SideName::Host => "on host",
            SideName::Container => "in container",
        }
    }
}

impl fmt::Display for SideName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SideName::Host => "host",
            SideName::Container => "container",
        })
    }
}

/// Which way changes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Changes on either side propagate to the other.
    TwoWay,
    /// The host is the source of truth; container-only changes are reverted.
    ToContainer,
    /// The container is the source of truth; host-only changes are reverted.
    ToHost,
}

/// What to do when both sides changed the same path differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Stop the pass (changing nothing) and list the conflicts.
    Fail,
    /// The host version wins; the container version is discarded.
    PreferHost,
    /// The container version wins; the host version is discarded.
    PreferContainer,
    /// The newer version keeps the name; the other is kept as `NAME.conflict-<side>-<time>`.
    KeepBoth,
}

/// A mode or policy name that is not one of the known spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`; expected one of: {expected}")]
pub struct UnknownName {
    /// "sync mode" or "conflict policy".
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

impl FromStr for Mode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "two-way" => Ok(Mode::TwoWay),
            "to-container" => Ok(Mode::ToContainer),
            "to-host" => Ok(Mode::ToHost),
            _ => Err(UnknownName {
                what: "sync mode",
                given: s.to_string(),
                expected: "two-way, to-container, to-host",
            }),
        }
    }
}

impl FromStr for ConflictPolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(ConflictPolicy::Fail),
            "prefer-host" => Ok(ConflictPolicy::PreferHost),
            "prefer-container" => Ok(ConflictPolicy::PreferContainer),
            "keep-both" => Ok(ConflictPolicy::KeepBoth),
            _ => Err(UnknownName {
                what: "conflict policy",
                given: s.to_string(),
                expected: "fail, prefer-host, prefer-container, keep-both",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_path_rejects_escapes_and_absolute_paths() {
        for bad in ["", "/etc", "a/../b", "..", "a//b", "./a", "a/", "a/."] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RelPath::new("a/b.json").is_ok());
    }

    #[test]
    fn rel_path_relations() {
        let a = RelPath::new("a").unwrap();
        let ab = RelPath::new("a/b").unwrap();
        let ax = RelPath::new("ax/b").unwrap();
        assert!(a.is_ancestor_of(&ab));
        assert!(!a.is_ancestor_of(&ax));
        assert!(!a.is_ancestor_of(&a));
        assert_eq!(ab.parent(), Some(a.clone()));
        assert_eq!(a.parent(), None);
        assert_eq!(ab.file_name(), "b");
        assert!(RelPath::new("x/Settings.JSON").unwrap().is_json());
        assert!(!RelPath::new("x.json/y").unwrap().is_json());
    }

    #[test]
    fn mode_and_policy_parse_their_manifest_spellings() {
        assert_eq!("two-way".parse::<Mode>().unwrap(), Mode::TwoWay);
        assert_eq!("to-host".parse::<Mode>().unwrap(), Mode::ToHost);
        assert_eq!(
            "keep-both".parse::<ConflictPolicy>().unwrap(),
            ConflictPolicy::KeepBoth
        );
        let err = "both".parse::<ConflictPolicy>().unwrap_err();
        assert!(err.to_string().contains("prefer-host"));
    }

    #[test]
    fn same_state_ignores_mtime_but_not_exec_bit() {
        let f = Entry {
            kind: EntryKind::File,
            hash: "h".into(),
            size: 1,
            mode: 0o644,
            mtime: 1,
        };
        let later = Entry {
            mtime: 99,
            ..f.clone()
        };
        let exec = Entry {
            mode: 0o755,
            ..f.clone()
        };
        assert!(f.same_state(&later));
        assert!(!f.same_state(&exec));
    }
}
