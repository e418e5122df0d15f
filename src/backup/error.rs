//! The one error type of the backup module. Each variant names what was being done and to
//! what, so a message read at 3 a.m. during a restore says where to look.
//!
//! Names that come from an archive or a source tree are shown through [`display_name`]
//! wherever a message (error, problem, report line) prints them: an archive is data from
//! anywhere, and one entry must not be able to flood the screen or write escape sequences to
//! the terminal. Machine-readable output keeps names whole.

use std::io;
use std::path::PathBuf;

/// Everything that can stop a backup, copy, verification, prune or restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup name cannot be used in file names.
    #[error(
        "invalid backup name '{}': use letters, digits, '.', '_' or '-'",
        display_name(name)
    )]
    InvalidName { name: String },
    /// Reading the source tree or stream failed.
    #[error("reading backup source {path}")]
    ReadSource { path: PathBuf, source: io::Error },
    /// A source path cannot be stored (not UTF-8, or escaping the source root).
    #[error("source entry {} cannot be archived: {reason}", display_name(path))]
    BadSourceEntry { path: String, reason: String },
    /// Writing the archive (compression or the temp file) failed.
    #[error("writing archive {path}")]
    WriteArchive { path: PathBuf, source: io::Error },
    /// Writing or committing a file in a backup directory failed.
    #[error("writing {path}")]
    WriteFile { path: PathBuf, source: io::Error },
    /// Reading a file in a copy failed.
    #[error("reading {name} from copy {copy}")]
    ReadCopy {
        copy: String,
        name: String,
        source: io::Error,
    },
    /// Listing a copy failed.
    #[error("listing copy {copy}")]
    ListCopy { copy: String, source: io::Error },
    /// Deleting a file from a copy failed.
    #[error("deleting {name} from copy {copy}")]
    DeleteFromCopy {
        copy: String,
        name: String,
        source: io::Error,
    },
    /// An `rclone` command failed.
    #[error("rclone {action} on {target} failed: {detail}")]
    Rclone {
        action: String,
        target: String,
        detail: String,
    },
    /// A snapshot manifest could not be parsed.
    #[error("snapshot manifest {name} in copy {copy} is not valid: {detail}")]
    BadManifest {
        copy: String,
        name: String,
        detail: String,
    },
    /// The archive arrived at a copy with other bytes than were sent.
    #[error("copy {copy}: {name} has sha256 {actual} after copying, expected {expected}")]
    CopyMismatch {
        copy: String,
        name: String,
        expected: String,
        actual: String,
    },
    /// No copy holds a snapshot matching the request.
    #[error("no snapshot of backup {backup} matches {wanted}")]
    SnapshotNotFound { backup: String, wanted: String },
    /// Several snapshots match an id prefix.
    #[error(
        "snapshot id {} of backup {backup} is ambiguous: {}",
        display_name(prefix),
        candidates.join(", ")
    )]
    AmbiguousSnapshot {
        backup: String,
        prefix: String,
        candidates: Vec<String>,
    },
    /// Every copy of the snapshot failed verification or was refused.
    #[error("no usable copy of snapshot {snapshot}: {}", failures.join("; "))]
    NoUsableCopy {
        snapshot: String,
        failures: Vec<String>,
    },
    /// The restore target's parent directory is missing or unusable.
    #[error("restore target {path} has no usable parent directory")]
    BadTarget { path: PathBuf },
    /// Writing into the staging directory failed.
    #[error(
        "extracting {} into staging directory {}",
        display_name(entry),
        staging.display()
    )]
    Extract {
        staging: PathBuf,
        entry: String,
        source: io::Error,
    },
    /// Swapping the staged tree into place failed; the message says where both trees are.
    #[error("swapping restored tree {staging} into {target}")]
    Swap {
        staging: PathBuf,
        target: PathBuf,
        source: io::Error,
    },
    /// A foreign archive (no manifest) is damaged or unsafe.
    #[error("archive {path} cannot be restored: {}", problems.join("; "))]
    ForeignArchiveRejected {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// Creating a temporary spool file failed.
    #[error("creating a temporary file in {dir}")]
    Spool { dir: PathBuf, source: io::Error },
    /// A stop was requested (SIGINT, SIGTERM) and the work ended at a safe point.
    #[error("stopped on request")]
    Stopped,
    /// Writing an entry (or the end of the stream) into a spool file failed.
    #[error("writing {} to a temporary file in {}", display_name(entry), dir.display())]
    WriteSpool {
        dir: PathBuf,
        entry: String,
        source: io::Error,
    },
}

/// The most characters of one name that a message shows.
pub const NAME_LIMIT: usize = 120;

/// `name` as a message shows it: a name longer than [`NAME_LIMIT`] characters is cut in the
/// middle (`beginning…end`, on character boundaries), since both ends usually say which file
/// it is; control characters are escaped (`\n`, `\u{1b}`) so a name cannot move the cursor
/// or fake a line of output.
pub fn display_name(name: &str) -> String {
    let count = name.chars().count();
    if count <= NAME_LIMIT {
        return escape_controls(name);
    }
    // One character goes to the ellipsis; the beginning gets the odd one.
    let tail = (NAME_LIMIT - 1) / 2;
    let head = NAME_LIMIT - 1 - tail;
    let head_end = name.char_indices().nth(head).map_or(name.len(), |(i, _)| i);
    let tail_start = name
        .char_indices()
        .nth(count - tail)
        .map_or(name.len(), |(i, _)| i);
    format!(
        "{}…{}",
        escape_controls(&name[..head_end]),
        escape_controls(&name[tail_start..])
    )
}

fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_shown_whole() {
        assert_eq!(display_name("sub/a.txt"), "sub/a.txt");
        let exact = "é".repeat(NAME_LIMIT);
        assert_eq!(display_name(&exact), exact);
    }

    #[test]
    fn long_names_are_cut_in_the_middle_on_character_boundaries() {
        let name = format!("start/{}/end.txt", "ü".repeat(5_000));
        let shown = display_name(&name);
        assert_eq!(shown.chars().count(), NAME_LIMIT);
        assert!(shown.starts_with("start/üü"), "{shown}");
        assert!(shown.ends_with("üü/end.txt"), "{shown}");
        assert_eq!(shown.matches('…').count(), 1, "{shown}");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(display_name("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
    }
}
