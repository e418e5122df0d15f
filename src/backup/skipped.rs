//! Objects a backup or restore does not carry over: fifos, character and block devices,
//! sockets, and tar entry types this module does not know. None of them holds data a backup
//! could keep (a device node or a fifo is a name for something outside the tree, a socket
//! belongs to a running process), and creating device nodes from an archive would hand
//! whoever made it access to hardware. Each one is noted with its path and kind, so a backup
//! warns about it and a restore lists it with counts per kind instead of dropping it quietly.

use std::fmt;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

use super::error::display_name;

/// What kind of object was not carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkippedKind {
    /// A named pipe.
    Fifo,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A Unix socket (seen in a live tree only: tar cannot store one).
    Socket,
    /// A tar entry of another type, with its type flag (e.g. `S` for a GNU sparse file).
    Other(u8),
}

impl SkippedKind {
    /// The kind of a tar entry that is not restored, or `None` for one that is (files,
    /// directories, links) or that only carries metadata for the next entry.
    pub fn of_tar(t: tar::EntryType) -> Option<Self> {
        use tar::EntryType as T;
        match t {
            T::Regular
            | T::Continuous
            | T::Directory
            | T::Symlink
            | T::Link
            | T::XGlobalHeader
            | T::XHeader
            | T::GNULongName
            | T::GNULongLink => None,
            T::Fifo => Some(SkippedKind::Fifo),
            T::Char => Some(SkippedKind::CharDevice),
            T::Block => Some(SkippedKind::BlockDevice),
            other => Some(SkippedKind::Other(other.as_byte())),
        }
    }

    /// The kind of an object in a live tree that is neither a file, a directory nor a
    /// symlink: on Unix, what remains of those is a socket.
    pub fn of_special_file(ft: FileType) -> Self {
        if ft.is_fifo() {
            SkippedKind::Fifo
        } else if ft.is_char_device() {
            SkippedKind::CharDevice
        } else if ft.is_block_device() {
            SkippedKind::BlockDevice
        } else {
            SkippedKind::Socket
        }
    }

    /// The kind as a report names it: `fifo`, `character device`, `block device`, `socket`
    /// or `other`.
    pub fn label(self) -> &'static str {
        match self {
            SkippedKind::Fifo => "fifo",
            SkippedKind::CharDevice => "character device",
            SkippedKind::BlockDevice => "block device",
            SkippedKind::Socket => "socket",
            SkippedKind::Other(_) => "other",
        }
    }

    /// The kind in machine-readable output: `fifo`, `char_device`, `block_device`, `socket`
    /// or `other`.
    pub fn key(self) -> &'static str {
        match self {
            SkippedKind::Fifo => "fifo",
            SkippedKind::CharDevice => "char_device",
            SkippedKind::BlockDevice => "block_device",
            SkippedKind::Socket => "socket",
            SkippedKind::Other(_) => "other",
        }
    }

    /// The tar type flag of an [`SkippedKind::Other`] entry, as text (`S`, or `\x05` when it
    /// is not printable).
    pub fn tar_type(self) -> Option<String> {
        match self {
            SkippedKind::Other(b) => Some(std::ascii::escape_default(b).to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for SkippedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tar_type() {
            Some(t) => write!(f, "tar entry type '{t}'"),
            None => f.write_str(self.label()),
        }
    }
}

/// One object that was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the root, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: SkippedKind,
}

impl fmt::Display for Skipped {
    /// `PATH (KIND)`, with the path shortened for people (see [`display_name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", display_name(&self.path), self.kind)
    }
}

/// How many of each kind, in the order of [`SkippedKind`]; kinds with none are left out.
pub fn counts(skipped: &[Skipped]) -> Vec<(SkippedKind, usize)> {
    let mut by_label: Vec<(SkippedKind, usize)> = Vec::new();
    let mut kinds: Vec<SkippedKind> = skipped.iter().map(|s| s.kind).collect();
    kinds.sort();
    for kind in kinds {
        // Every `Other` type counts as one kind, `other`: the paths say which type each is.
        let kind = match kind {
            SkippedKind::Other(_) => SkippedKind::Other(0),
            k => k,
        };
        match by_label.last_mut() {
            Some((k, n)) if *k == kind => *n += 1,
            _ => by_label.push((kind, 1)),
        }
    }
    by_label
}

/// `skipped 3 entries: 2 fifo, 1 character device`, or `None` when nothing was skipped.
pub fn summary(skipped: &[Skipped]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let parts: Vec<String> = counts(skipped)
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.label()))
        .collect();
    Some(format!(
        "skipped {} {}: {}",
        skipped.len(),
        if skipped.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(path: &str, kind: SkippedKind) -> Skipped {
        Skipped {
            path: path.into(),
            kind,
        }
    }

    #[test]
    fn summary_counts_each_kind_in_a_fixed_order() {
        let list = [
            s("dev/null", SkippedKind::CharDevice),
            s("p1", SkippedKind::Fifo),
            s("sparse", SkippedKind::Other(b'S')),
            s("p2", SkippedKind::Fifo),
            s("label", SkippedKind::Other(b'V')),
        ];
        assert_eq!(
            summary(&list).unwrap(),
            "skipped 5 entries: 2 fifo, 1 character device, 2 other"
        );
        assert_eq!(
            summary(&list[..1]).unwrap(),
            "skipped 1 entry: 1 character device"
        );
        assert_eq!(summary(&[]), None);
        assert_eq!(list[2].to_string(), "sparse (tar entry type 'S')");
        assert_eq!(list[0].to_string(), "dev/null (character device)");
    }

    #[test]
    fn tar_types_that_hold_files_or_metadata_are_not_skipped() {
        use tar::EntryType as T;
        for t in [T::Regular, T::Directory, T::Symlink, T::Link, T::XHeader] {
            assert_eq!(SkippedKind::of_tar(t), None, "{t:?}");
        }
        assert_eq!(SkippedKind::of_tar(T::Fifo), Some(SkippedKind::Fifo));
        assert_eq!(
            SkippedKind::of_tar(T::Block),
            Some(SkippedKind::BlockDevice)
        );
        assert_eq!(
            SkippedKind::of_tar(T::GNUSparse),
            Some(SkippedKind::Other(b'S'))
        );
    }
}
