//! What `sanctuary follow` needs of git: fetching a branch with libgit2, the commits new since
//! the last one dealt with (in the order they were made), and that last one, kept in the
//! state directory so a restarted follower carries on where it stopped.

use std::path::{Path, PathBuf};

/// Directory name of the followers' cursors under the state directory.
pub const DIR_NAME: &str = "follow";

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot open the git repository holding {}: {message}", dir.display())]
    Open { dir: PathBuf, message: String },
    #[error("cannot fetch `{branch}` from `{remote}`: {message}")]
    Fetch {
        remote: String,
        branch: String,
        message: String,
    },
    #[error("cannot list the commits of `{branch}`: {message}")]
    Walk { branch: String, message: String },
}

/// Fetches `branch` of `remote` (a configured remote's name, or a URL or path) into the
/// repository holding `start` and returns the commit it points at. A named remote updates its
/// remote-tracking branch, as `git fetch` does; a URL updates `refs/sanctuary/follow/BRANCH`.
/// When libgit2 cannot speak the URL's protocol (this build has no https or ssh of its own),
/// the `git` command fetches instead, with the user's credentials and ssh configuration.
pub fn fetch(start: &Path, remote: &str, branch: &str) -> Result<String, FollowError> {
    let repo = git2::Repository::discover(start).map_err(|e| FollowError::Open {
        dir: start.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let fail = |message: String| FollowError::Fetch {
        remote: remote.to_string(),
        branch: branch.to_string(),
        message,
    };
    let (mut handle, tracking) = match repo.find_remote(remote) {
        Ok(r) => (r, format!("refs/remotes/{remote}/{branch}")),
        Err(_) => (
            repo.remote_anonymous(remote)
                .map_err(|e| fail(e.message().into()))?,
            format!("refs/sanctuary/follow/{branch}"),
        ),
    };
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    if let Err(e) = handle.fetch(&[&refspec], None, None) {
        let unsupported =
            e.class() == git2::ErrorClass::Net && e.message().contains("unsupported URL protocol");
        if !unsupported {
            return Err(fail(e.message().into()));
        }
        let top = repo.workdir().unwrap_or_else(|| repo.path());
        let out = std::process::Command::new("git")
            .args(["fetch", "--quiet", remote, &refspec])
            .current_dir(top)
            .output()
            .map_err(|io| {
                fail(format!(
                    "{}; and `git fetch` could not run: {io}",
                    e.message()
                ))
            })?;
        if !out.status.success() {
            return Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
    }
    let tip = repo
        .refname_to_id(&tracking)
        .map_err(|e| fail(e.message().into()))?;
    Ok(tip.to_string())
}

/// The commits from `since` (exclusive) to `tip`, oldest first, along first parents (a merge
/// is applied as one commit). Only `tip` when there is no `since`, or when `since` is not in
/// the repository (history rewritten by a force push).
pub fn new_commits(
    start: &Path,
    tip: &str,
    since: Option<&str>,
) -> Result<Vec<String>, FollowError> {
    let fail = |message: String| FollowError::Walk {
        branch: tip.to_string(),
        message,
    };
    let repo = git2::Repository::discover(start).map_err(|e| FollowError::Open {
        dir: start.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let tip_id = git2::Oid::from_str(tip).map_err(|e| fail(e.message().into()))?;
    let since_id = since
        .and_then(|s| git2::Oid::from_str(s).ok())
        .filter(|id| repo.find_commit(*id).is_ok());
    let Some(since_id) = since_id else {
        return Ok(vec![tip.to_string()]);
    };
    if since_id == tip_id {
        return Ok(Vec::new());
    }
    let mut walk = repo.revwalk().map_err(|e| fail(e.message().into()))?;
    walk.push(tip_id).map_err(|e| fail(e.message().into()))?;
    walk.hide(since_id).map_err(|e| fail(e.message().into()))?;
    walk.simplify_first_parent()
        .map_err(|e| fail(e.message().into()))?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(|e| fail(e.message().into()))?;
    walk.map(|id| {
        id.map(|id| id.to_string())
            .map_err(|e| fail(e.message().into()))
    })
    .collect()
}

/// Where a follower of `remote`/`branch` keeps the last commit it dealt with.
#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    pub fn new(state_dir: &Path, remote: &str, branch: &str) -> Cursor {
        let safe = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        };
        Cursor {
            path: state_dir
                .join(DIR_NAME)
                .join(format!("{}--{}", safe(remote), safe(branch))),
        }
    }

    /// The last commit dealt with, if any.
    pub fn get(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let id = text.trim();
        (id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    }

    pub fn set(&self, commit: &str) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic(&self.path, format!("{commit}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &git2::Repository, text: &str) -> String {
        let top = repo.workdir().unwrap().to_path_buf();
        std::fs::write(top.join("f"), text).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("f")).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("Ada", "ada@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, text, &tree, &parents)
            .unwrap()
            .to_string()
    }

    #[test]
    fn new_commits_are_those_after_the_cursor_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(tmp.path()).unwrap();
        let a = commit(&repo, "a");
        let b = commit(&repo, "b");
        let c = commit(&repo, "c");
        let dir = tmp.path();
        assert_eq!(
            new_commits(dir, &c, Some(&a)).unwrap(),
            [b.clone(), c.clone()]
        );
        assert_eq!(
            new_commits(dir, &c, Some(&c)).unwrap(),
            Vec::<String>::new()
        );
        // No cursor, or one the repository does not have: the tip only.
        assert_eq!(
            new_commits(dir, &c, None).unwrap(),
            std::slice::from_ref(&c)
        );
        let unknown = "0".repeat(40);
        assert_eq!(new_commits(dir, &c, Some(&unknown)).unwrap(), [c]);
    }

    #[test]
    fn the_cursor_keeps_one_commit_and_ignores_anything_else() {
        let tmp = tempfile::tempdir().unwrap();
        let cursor = Cursor::new(tmp.path(), "https://example.com/x.git", "main");
        assert_eq!(cursor.get(), None);
        let id = "ab".repeat(20);
        cursor.set(&id).unwrap();
        assert_eq!(cursor.get(), Some(id));
        let file = fs_entry(tmp.path());
        assert!(!file.contains('/') && !file.contains(':'), "{file}");
        std::fs::write(tmp.path().join(DIR_NAME).join(&file), "garbage\n").unwrap();
        assert_eq!(cursor.get(), None);
    }

    fn fs_entry(state: &Path) -> String {
        let mut names: Vec<String> = std::fs::read_dir(state.join(DIR_NAME))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 1);
        names.pop().unwrap()
    }
}
