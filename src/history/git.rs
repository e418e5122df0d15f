//! What a generation records of the git repository its manifest is in, read with libgit2.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The commit a manifest was applied from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// Full hex id of the commit `HEAD` names.
    pub commit: String,
    /// The branch (or other ref) `HEAD` is on; `None` when detached.
    pub reference: Option<String>,
    /// Whether tracked files differed from the commit (untracked files do not count, as for
    /// `git describe --dirty`).
    pub dirty: bool,
}

/// The commit of the repository holding `dir`, or `None` outside a repository, before the first
/// commit, or in one libgit2 will not open (owned by another user).
pub fn describe(dir: &Path) -> Option<GitInfo> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?;
    let commit = head.peel_to_commit().ok()?.id().to_string();
    let reference = head
        .is_branch()
        .then(|| head.shorthand().ok().map(str::to_string))
        .flatten();
    let mut options = git2::StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut options))
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some(GitInfo {
        commit,
        reference,
        dirty,
    })
}

/// Who is applying: the repository's (or the user's global) git `user.email`, else the login
/// name, else `unknown`.
pub fn who(dir: &Path) -> String {
    let from_git = git2::Repository::discover(dir)
        .ok()
        .and_then(|r| r.config().ok())
        .or_else(|| git2::Config::open_default().ok())
        .and_then(|c| c.get_string("user.email").ok())
        .filter(|e| !e.is_empty());
    from_git
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}
