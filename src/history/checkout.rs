//! `--ref`: a manifest, and everything it builds from, read out of a commit with libgit2 —
//! never from the working tree.
//!
//! The commit's tree is checked out by libgit2 (the repository's index, HEAD and working tree
//! are not touched) into `<state>/checkouts/<commit>`, and the manifest is loaded from there,
//! so build contexts, Dockerfiles and task inputs are the commit's. What belongs to the
//! machine rather than to the repository stays where the working-tree manifest puts it: the
//! state directory, secret files, bind-mounted host directories, backup sources and copies,
//! sync host directories and `.env`. A checkout is named by its commit and never changed, so
//! a later apply of the same commit reuses it; the checkouts of generations that fell out of
//! `keep-generations` are removed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::GitInfo;
use crate::manifest::{BackupSource, CopyTarget, Manifest, MountSource, SecretSource};

/// Directory name of the checkouts under the state directory.
pub const DIR_NAME: &str = "checkouts";

/// Why a ref could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("{} is not in a git repository, so there is no `{reference}` to read the manifest from", dir.display())]
    NotARepository { dir: PathBuf, reference: String },
    #[error("libgit2 refuses to open the repository at {}: it is owned by another user", dir.display())]
    Ownership { dir: PathBuf },
    #[error("cannot open the git repository at {}: {message}", dir.display())]
    Open { dir: PathBuf, message: String },
    #[error("`{reference}` does not name a commit in {}{}: {message}", dir.display(), if *shallow { " (a shallow clone)" } else { "" })]
    Unresolved {
        reference: String,
        dir: PathBuf,
        shallow: bool,
        message: String,
    },
    #[error("commit {commit} has no {}", path.display())]
    NoManifest { commit: String, path: PathBuf },
    #[error("{} in commit {commit} is not a UTF-8 text file", path.display())]
    NotText { commit: String, path: PathBuf },
    #[error("cannot check out commit {commit} into {}: {message}", dir.display())]
    Checkout {
        commit: String,
        dir: PathBuf,
        message: String,
    },
}

impl RefError {
    /// What the user can do about it.
    pub fn help(&self) -> String {
        match self {
            RefError::NotARepository { .. } => {
                "`--ref` reads a commit of the repository the manifest is in; without it, the working tree is used".into()
            }
            RefError::Ownership { dir } => format!(
                "if you trust it: `git config --global --add safe.directory {}`",
                dir.display()
            ),
            RefError::Unresolved { shallow: true, .. } => {
                "the commit may not have been fetched: `git fetch --unshallow` fetches the rest of the history".into()
            }
            RefError::Unresolved { .. } => {
                "a branch, tag, commit id or expression like `HEAD~1` names a commit; `git log --oneline` lists them".into()
            }
            RefError::NoManifest { .. } => {
                "`-f` names the manifest's path; in a commit, it is taken relative to the repository's top".into()
            }
            RefError::Open { .. } | RefError::NotText { .. } | RefError::Checkout { .. } => {
                "check the repository with `git fsck`".into()
            }
        }
    }
}

/// A manifest found in a commit.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The repository's top (its working tree, or the repository itself when bare).
    pub top: PathBuf,
    /// The manifest's path relative to `top`.
    pub relative: PathBuf,
    /// Full hex id of the commit.
    pub commit: String,
    /// The ref as given.
    pub reference: String,
    /// The manifest's text in that commit.
    pub text: String,
}

impl Resolved {
    /// What a generation records of it: the commit, the ref it was asked for by, never dirty.
    pub fn git_info(&self) -> GitInfo {
        GitInfo {
            commit: self.commit.clone(),
            reference: Some(self.reference.clone()),
            dirty: false,
        }
    }

    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}

fn open(start: &Path, reference: &str) -> Result<git2::Repository, RefError> {
    git2::Repository::discover(start).map_err(|e| match e.code() {
        git2::ErrorCode::Owner => RefError::Ownership {
            dir: start.to_path_buf(),
        },
        git2::ErrorCode::NotFound => RefError::NotARepository {
            dir: start.to_path_buf(),
            reference: reference.to_string(),
        },
        _ => RefError::Open {
            dir: start.to_path_buf(),
            message: e.message().to_string(),
        },
    })
}

/// Finds commit `reference` in the repository holding `manifest` (which need not exist in the
/// working tree) and the manifest's text in it.
pub fn resolve(manifest: &Path, reference: &str) -> Result<Resolved, RefError> {
    let parent = manifest.parent().unwrap_or(Path::new("/"));
    let start = parent
        .canonicalize()
        .unwrap_or_else(|_| parent.to_path_buf());
    let repo = open(&start, reference)?;
    let top = repo
        .workdir()
        .unwrap_or_else(|| repo.path())
        .canonicalize()
        .unwrap_or_else(|_| repo.path().to_path_buf());
    let file = manifest.file_name().unwrap_or_default();
    let relative = start.strip_prefix(&top).unwrap_or(Path::new("")).join(file);
    let commit = repo
        .revparse_single(reference)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| RefError::Unresolved {
            reference: reference.to_string(),
            dir: top.clone(),
            shallow: repo.is_shallow(),
            message: e.message().to_string(),
        })?;
    let id = commit.id().to_string();
    let no_manifest = || RefError::NoManifest {
        commit: id.clone(),
        path: relative.clone(),
    };
    let tree = commit.tree().map_err(|_| no_manifest())?;
    let entry = tree.get_path(&relative).map_err(|_| no_manifest())?;
    let blob = entry
        .to_object(&repo)
        .and_then(|o| o.peel_to_blob())
        .map_err(|_| no_manifest())?;
    let text = String::from_utf8(blob.content().to_vec()).map_err(|_| RefError::NotText {
        commit: id.clone(),
        path: relative.clone(),
    })?;
    Ok(Resolved {
        top,
        relative,
        commit: id,
        reference: reference.to_string(),
        text,
    })
}

/// Checks the commit's tree out into `into/<commit>` (unless a whole checkout is there
/// already) and returns that directory. The tree is written to a temporary directory marked
/// for this process and renamed into place, so a killed checkout leaves only debris the
/// next command sweeps, never a partial checkout under the commit's name.
pub fn check_out(resolved: &Resolved, into: &Path) -> Result<PathBuf, RefError> {
    let dest = into.join(&resolved.commit);
    if dest.is_dir() {
        return Ok(dest);
    }
    let fail = |message: String| RefError::Checkout {
        commit: resolved.commit.clone(),
        dir: into.to_path_buf(),
        message,
    };
    fs::create_dir_all(into).map_err(|e| fail(e.to_string()))?;
    let repo = open(&resolved.top, &resolved.reference)?;
    let oid = git2::Oid::from_str(&resolved.commit).map_err(|e| fail(e.message().into()))?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| fail(e.message().into()))?;
    let tmp = crate::fsutil::new_temp_dir_in(into).map_err(|e| fail(e.to_string()))?;
    let mut options = git2::build::CheckoutBuilder::new();
    // Against an empty directory: every file is written, the index is left alone.
    options
        .target_dir(tmp.path())
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut options))
        .map_err(|e| fail(e.message().into()))?;
    let staged = tmp.keep();
    match fs::rename(&staged, &dest) {
        Ok(()) => {
            crate::fsutil::sync_dir(into);
            Ok(dest)
        }
        // Another command checked the same commit out meanwhile: theirs is as good.
        Err(_) if dest.is_dir() => {
            let _ = fs::remove_dir_all(&staged);
            Ok(dest)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staged);
            Err(fail(e.to_string()))
        }
    }
}

/// Gives every path of `m` (loaded in the checkout) that names the machine's data rather than
/// the repository's content the value it has in `local`: the same text loaded as if it stood
/// in the working directory. Taking the working directory's resolution, rather than rebasing
/// the checkout's, keeps `../data` pointing beside the working tree, where a rebase could not
/// tell it from an absolute path once resolved.
pub fn keep_local_paths(m: &mut Manifest, local: &Manifest) {
    m.project.state_dir = local.project.state_dir.clone();
    for (name, s) in m.secrets.iter_mut() {
        if let (SecretSource::File(p), Some(SecretSource::File(l))) =
            (&mut s.source, local.secrets.get(name).map(|l| &l.source))
        {
            *p = l.clone();
        }
    }
    for (name, svc) in m.services.iter_mut() {
        let Some(l) = local.services.get(name) else {
            continue;
        };
        for (mount, lm) in svc.mounts.iter_mut().zip(&l.mounts) {
            if let (MountSource::Bind(p), MountSource::Bind(lp)) = (&mut mount.source, &lm.source) {
                *p = lp.clone();
            }
        }
    }
    for (name, b) in m.backups.iter_mut() {
        let Some(l) = local.backups.get(name) else {
            continue;
        };
        if let (BackupSource::Path(p), BackupSource::Path(lp)) = (&mut b.source, &l.source) {
            *p = lp.clone();
        }
        for (c, lc) in b.copies.iter_mut().zip(&l.copies) {
            if let (CopyTarget::Dir(p), CopyTarget::Dir(lp)) = (&mut c.target, &lc.target) {
                *p = lp.clone();
            }
        }
    }
    for (name, s) in m.syncs.iter_mut() {
        if let Some(l) = local.syncs.get(name) {
            s.host = l.host.clone();
        }
    }
}

/// Removes the checkouts under `into` whose commit is not in `keep`.
pub fn prune(into: &Path, keep: &BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(into) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let is_commit = name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_commit && !keep.contains(&name) {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!("cannot remove the checkout {}: {e}", entry.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository in `dir` with one commit of `files`; returns the commit's id.
    fn commit(repo: &git2::Repository, files: &[(&str, &str)], message: &str) -> String {
        let top = repo.workdir().unwrap().to_path_buf();
        let mut index = repo.index().unwrap();
        for (path, text) in files {
            let p = top.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            index.add_path(Path::new(path)).unwrap();
        }
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("Ada", "ada@example.com").unwrap();
        let parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_commit_is_checked_out_whole_without_touching_the_working_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(tmp.path()).unwrap();
        let first = commit(
            &repo,
            &[
                ("app/Sanctuary.kdl", "project \"p\"\n"),
                ("app/ctx/file", "one\n"),
            ],
            "one",
        );
        commit(&repo, &[("app/ctx/file", "two\n")], "two");
        // The working tree differs from both commits.
        fs::write(tmp.path().join("app/ctx/file"), "working tree\n").unwrap();

        let manifest = tmp.path().join("app/Sanctuary.kdl");
        let resolved = resolve(&manifest, "HEAD~1").unwrap();
        assert_eq!(resolved.commit, first);
        assert_eq!(resolved.relative, Path::new("app/Sanctuary.kdl"));
        assert_eq!(resolved.text, "project \"p\"\n");
        let into = tmp.path().join("state/checkouts");
        let dir = check_out(&resolved, &into).unwrap();
        assert_eq!(dir, into.join(&first));
        assert_eq!(
            fs::read_to_string(dir.join("app/ctx/file")).unwrap(),
            "one\n"
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join("app/ctx/file")).unwrap(),
            "working tree\n"
        );
        assert!(repo
            .statuses(None)
            .unwrap()
            .iter()
            .any(|s| s.path().ok() == Some("app/ctx/file")));
        // Again: the same checkout, nothing staged left beside it.
        assert_eq!(check_out(&resolved, &into).unwrap(), dir);
        assert_eq!(fs::read_dir(&into).unwrap().count(), 1);

        prune(&into, &BTreeSet::new());
        assert!(!dir.exists());

        let err = resolve(&manifest, "no-such-ref").unwrap_err();
        assert!(
            matches!(err, RefError::Unresolved { shallow: false, .. }),
            "{err}"
        );
        let err = resolve(&tmp.path().join("Sanctuary.kdl"), "HEAD").unwrap_err();
        assert!(matches!(err, RefError::NoManifest { .. }), "{err}");
    }

    #[test]
    fn the_machines_paths_stay_in_the_working_directory() {
        let from = Path::new("/state/checkouts/abc/app");
        let to = Path::new("/srv/app");
        let text = r#"project "p"
secret "tok" {
    file "./secrets/tok"
}
image "bb" {
    context "ctx"
}
service "web" {
    image "bb"
    bind "./data" "/data"
    bind "../shared" "/shared"
    bind "/etc/timezone" "/etc/timezone"
}
"#;
        let load = |dir: &Path| {
            crate::manifest::load_str(
                "Sanctuary.kdl",
                text,
                &dir.join("Sanctuary.kdl"),
                dir,
                &crate::manifest::interpolate::Vars::new(Default::default(), Default::default()),
            )
            .unwrap()
            .manifest
        };
        let mut m = load(from);
        keep_local_paths(&mut m, &load(to));
        assert_eq!(m.project.state_dir, to.join(".sanctuary"));
        assert_eq!(
            m.secrets["tok"].source,
            SecretSource::File(to.join("secrets/tok"))
        );
        let binds: Vec<&MountSource> = m.services["web"].mounts.iter().map(|m| &m.source).collect();
        assert_eq!(
            binds,
            [
                &MountSource::Bind(to.join("data")),
                &MountSource::Bind(PathBuf::from("/srv/shared")),
                &MountSource::Bind(PathBuf::from("/etc/timezone")),
            ],
            "relative paths beside the working tree, `..` included; absolute ones as written"
        );
        // The build context is the commit's.
        match &m.images["bb"].source {
            crate::manifest::ImageSource::Build { context, .. } => {
                assert_eq!(context, &from.join("ctx"))
            }
            other => panic!("{other:?}"),
        }
    }
}
