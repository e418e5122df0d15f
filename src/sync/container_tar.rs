//! Tar archives as Docker's archive API speaks them, for the container side of a sync:
//! reading a whole tree (or one path) out of `copy_out` output, and building the one-entry
//! archives that `copy_in` unpacks (a file, a directory, a symlink) with explicit owner and
//! mode, so ownership is set by the daemon as it extracts rather than by a later `chown`.
//!
//! Pure: bytes in, entries out. Entry names are taken as Docker writes them for `DIR/.`
//! (`./`, `./a`, `./d/f`); the `./` entry is the root itself.

use std::io::{self, Read};

use super::model::{EntryKind, RelPath};

/// Numeric owner of a path in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// User id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
}

impl std::str::FromStr for Owner {
    type Err = String;
    /// `"1000:1000"` or `"1000"` (group = user). Names are not resolved: the container's
    /// `/etc/passwd` is not the host's.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("owner `{s}` is not numeric `uid:gid` (such as \"1000:1000\")");
        let (u, g) = s.split_once(':').unwrap_or((s, s));
        let uid = u.trim().parse().map_err(|_| bad())?;
        let gid = g.trim().parse().map_err(|_| bad())?;
        Ok(Owner { uid, gid })
    }
}

/// One path read from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarItem {
    /// Kind of entry.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time in milliseconds (whole seconds: what ustar headers hold).
    pub mtime_ms: i64,
    /// Owner.
    pub owner: Owner,
    /// File content (empty for directories and symlinks).
    pub content: Vec<u8>,
    /// Symlink target (empty otherwise).
    pub link: String,
}

/// A tree read from `copy_out(ROOT/.)`: the root's own header, then every entry below it.
#[derive(Debug, Default)]
pub struct TarTree {
    /// The root directory's owner, when the archive had a `./` entry.
    pub root_owner: Option<Owner>,
    /// Entries by relative path, in archive order.
    pub items: Vec<(RelPath, TarItem)>,
}

fn item_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<TarItem>> {
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        // Hard links, devices and fifos are not synced (as on the host side).
        _ => return Ok(None),
    };
    let mode = header.mode()? & 0o7777;
    let mtime_ms = i64::try_from(header.mtime()?)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let owner = Owner {
        uid: header.uid()?,
        gid: header.gid()?,
    };
    let link = match kind {
        EntryKind::Symlink => entry
            .link_name()?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut content = Vec::new();
    if kind == EntryKind::File {
        entry.read_to_end(&mut content)?;
    }
    Ok(Some(TarItem {
        kind,
        mode,
        mtime_ms,
        owner,
        content,
        link,
    }))
}

/// Reads a whole tree. Names that are not UTF-8 or not valid relative paths are skipped
/// with a warning (the host side does the same).
pub fn read_tree(bytes: &[u8]) -> io::Result<TarTree> {
    read_tree_where(bytes, |_| true)
}

/// Reads a tree as it arrives, keeping the entries `keep` accepts (the content of others is
/// skipped over, not held).
pub fn read_tree_where(tar: impl Read, keep: impl Fn(&RelPath) -> bool) -> io::Result<TarTree> {
    let mut archive = tar::Archive::new(tar);
    let mut tree = TarTree::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let Ok(name) = String::from_utf8(raw) else {
            tracing::warn!("skipping a container path that is not UTF-8");
            continue;
        };
        let name = name.trim_start_matches("./").trim_end_matches('/');
        if name.is_empty() || name == "." {
            if let Some(item) = item_of(&mut entry)? {
                tree.root_owner = Some(item.owner);
            }
            continue;
        }
        let path = match RelPath::new(name) {
            Ok(path) => path,
            Err(_) => {
                tracing::warn!(name, "skipping an unusable container path");
                continue;
            }
        };
        if !keep(&path) {
            continue;
        }
        if let Some(item) = item_of(&mut entry)? {
            tree.items.push((path, item));
        }
    }
    Ok(tree)
}

/// Reads the first entry of an archive (what `copy_out` of a single file or link returns).
pub fn read_single(bytes: &[u8]) -> io::Result<Option<TarItem>> {
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if let Some(item) = item_of(&mut entry)? {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

fn header(kind: tar::EntryType, mode: u32, owner: Owner, mtime_s: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(owner.uid);
    h.set_gid(owner.gid);
    h.set_mtime(mtime_s);
    h.set_size(0);
    h
}

/// An archive holding one regular file `name` with `bytes`.
pub fn file_archive(
    name: &str,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
    mtime_s: u64,
) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, mode, owner, mtime_s);
    h.set_size(bytes.len() as u64);
    b.append_data(&mut h, name, bytes)?;
    b.into_inner()
}

/// An archive holding one directory `name`.
pub fn dir_archive(name: &str, mode: u32, owner: Owner, mtime_s: u64) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Directory, mode, owner, mtime_s);
    h.set_size(0);
    b.append_data(&mut h, name, io::empty())?;
    b.into_inner()
}

/// An archive holding one symlink `name` → `target`.
pub fn symlink_archive(
    name: &str,
    target: &str,
    owner: Owner,
    mtime_s: u64,
) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Symlink, 0o777, owner, mtime_s);
    h.set_size(0);
    b.append_link(&mut h, name, target)?;
    b.into_inner()
}

/// One entry of a staged batch archive.
pub enum Staged<'a> {
    /// A regular file.
    File {
        /// Content.
        bytes: &'a [u8],
        /// Permission bits.
        mode: u32,
        /// Modification time, seconds since the Unix epoch.
        mtime_s: u64,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
}

/// Writes an archive of many entries, each `(name, entry, owner)`, below the directory
/// `stage` (which the archive creates first, 0700 and owned by `stage_owner`, so nothing in
/// the container reads a half-written batch, while whoever moves entries out of it may) to
/// `out`. Names are relative to `stage`, parents before their contents.
pub fn write_staged_archive<W: io::Write>(
    out: W,
    stage: &str,
    stage_owner: Owner,
    entries: &[(&str, Staged<'_>, Owner)],
    mtime_s: u64,
) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    let mut h = header(tar::EntryType::Directory, 0o700, stage_owner, mtime_s);
    b.append_data(&mut h, stage, io::empty())?;
    for (name, entry, owner) in entries {
        let path = format!("{stage}/{name}");
        match entry {
            Staged::File {
                bytes,
                mode,
                mtime_s,
            } => {
                let mut h = header(tar::EntryType::Regular, *mode, *owner, *mtime_s);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, &path, *bytes)?;
            }
            Staged::Dir { mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, *owner, mtime_s);
                b.append_data(&mut h, &path, io::empty())?;
            }
        }
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let root = Owner { uid: 0, gid: 0 };
        let user = Owner {
            uid: 1000,
            gid: 1001,
        };
        let mut h = header(tar::EntryType::Directory, 0o755, root, 5);
        b.append_data(&mut h, "./", io::empty()).unwrap();
        let mut h = header(tar::EntryType::Directory, 0o700, user, 5);
        b.append_data(&mut h, "./d/", io::empty()).unwrap();
        let mut h = header(tar::EntryType::Regular, 0o644, user, 7);
        h.set_size(2);
        b.append_data(&mut h, "./d/f", &b"hi"[..]).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0o777, root, 7);
        b.append_link(&mut h, "./l", "d/f").unwrap();
        let mut h = header(tar::EntryType::Fifo, 0o644, root, 7);
        b.append_data(&mut h, "./pipe", io::empty()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn a_tree_is_read_relative_to_its_root_without_special_files() {
        let tree = read_tree(&tree_archive()).unwrap();
        assert_eq!(tree.root_owner, Some(Owner { uid: 0, gid: 0 }));
        let names: Vec<_> = tree.items.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(names, ["d", "d/f", "l"]);
        let (_, f) = &tree.items[1];
        assert_eq!(f.content, b"hi");
        assert_eq!(f.mtime_ms, 7000);
        assert_eq!(f.mode, 0o644);
        assert_eq!(
            f.owner,
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(tree.items[2].1.link, "d/f");
        assert_eq!(tree.items[2].1.kind, EntryKind::Symlink);
    }

    #[test]
    fn built_archives_read_back_with_owner_mode_and_long_names() {
        let owner = Owner { uid: 7, gid: 8 };
        let long = format!("{}.json", "n".repeat(180));
        let f = read_single(&file_archive(&long, b"{}", 0o600, owner, 3).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((f.kind, f.mode, f.owner), (EntryKind::File, 0o600, owner));
        assert_eq!(f.content, b"{}");
        let d = read_single(&dir_archive("d", 0o750, owner, 3).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((d.kind, d.mode), (EntryKind::Dir, 0o750));
        let l = read_single(&symlink_archive("l", "../x", owner, 3).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((l.kind, l.link.as_str()), (EntryKind::Symlink, "../x"));
    }

    #[test]
    fn owners_parse_numeric_only() {
        assert_eq!(
            "1000:1001".parse::<Owner>().unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!("33".parse::<Owner>().unwrap(), Owner { uid: 33, gid: 33 });
        let err = "node:node".parse::<Owner>().unwrap_err();
        assert!(err.contains("node:node"), "{err}");
    }

    #[test]
    fn garbage_does_not_panic_and_empty_is_nothing() {
        // Whatever the outcome, reading garbage must return rather than panic.
        let _ = read_tree(&[0xff; 1024]);
        assert!(read_single(b"").unwrap().is_none());
    }
}
