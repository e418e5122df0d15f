//! One archived file-system object as the manifest records it, and the path rules every
//! archive path obeys: relative, `/`-separated, no `.`/`..` components, UTF-8.

use serde::{Deserialize, Serialize};

use super::error::display_name;

/// What kind of object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file; `size` and `sha256` describe its content.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; `target` holds what it points to.
    Symlink,
    /// A hard link to an earlier entry (only in archives made by other tools).
    Hardlink,
}

/// One entry of a snapshot, in archive order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the backup root, `/`-separated.
    pub path: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Modification time, seconds since the Unix epoch (tar's resolution).
    pub mtime: u64,
    /// Content size in bytes (0 for anything but files).
    pub size: u64,
    /// sha256 of the content, hex, for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target, for symlinks and hard links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Normalises an archive path: strips `./` and trailing `/`, refuses absolute paths and
/// `..`. Returns `Ok(None)` for the root itself (`.` or empty), which archives skip.
pub fn normalize_path(raw: &str) -> Result<Option<String>, String> {
    if raw.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("'..' component escapes the root".into()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parts.join("/")))
    }
}

/// Checks that a symlink at `path` with `target` cannot resolve outside the root.
///
/// The target must be relative, and `..` may only lead it: after `a/..` the kernel would
/// climb from wherever symlink `a` points, which a lexical check cannot see.
pub fn check_symlink_target(path: &str, target: &str) -> Result<(), String> {
    if target.starts_with('/') {
        return Err(format!(
            "symlink target {} is absolute",
            display_name(target)
        ));
    }
    if target.is_empty() {
        return Err("symlink target is empty".into());
    }
    // Depth of the directory holding the link.
    let mut depth = path.split('/').count() as i64 - 1;
    let mut descended = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if descended {
                    return Err(format!(
                        "symlink target {} climbs after descending",
                        display_name(target)
                    ));
                }
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "symlink target {} points out of the root",
                        display_name(target)
                    ));
                }
            }
            _ => {
                descended = true;
                depth += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_dot_and_slashes() {
        assert_eq!(normalize_path("./a/b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(normalize_path("./").unwrap(), None);
        assert!(normalize_path("/etc/passwd").is_err());
        assert!(normalize_path("a/../../b").is_err());
    }

    #[test]
    fn symlink_targets_inside_pass_and_escaping_fail() {
        assert!(check_symlink_target("a/b/link", "../c").is_ok());
        assert!(check_symlink_target("a/link", "sub/file").is_ok());
        assert!(check_symlink_target("link", "../x").is_err());
        assert!(check_symlink_target("a/link", "../../x").is_err());
        assert!(check_symlink_target("a/link", "/etc").is_err());
        assert!(check_symlink_target("a/b/link", "x/../../y").is_err());
    }
}
