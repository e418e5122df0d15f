//! Packs an image build context into a tar archive, leaving out what `.dockerignore` excludes
//! and whatever sanctuary itself writes inside the context (its state directory, backup
//! copies), whatever `.dockerignore` says: those change on every run and would make every
//! apply rebuild. [`context_entries`] lists what would be sent, for fingerprints.
//!
//! `.dockerignore` patterns are always relative to the context root (unlike `.gitignore`,
//! where a bare `foo` matches at any depth), so each pattern is anchored at the root before
//! it is handed to the gitignore matcher; `**`, `!` exceptions and trailing `/` keep their
//! meaning. The Dockerfile and `.dockerignore` are always sent, as the Docker CLI does,
//! because the daemon needs the Dockerfile even when a pattern excludes it.

use std::fs;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::error::BackendError;

/// One entry of a build context, in the order it is sent.
#[derive(Debug, Clone)]
pub struct ContextEntry {
    /// Relative to the context directory.
    pub rel: PathBuf,
    /// Absolute.
    pub path: PathBuf,
    /// From the walk (not following symlinks).
    pub metadata: fs::Metadata,
}

/// Tars `context_dir` in memory, entries in a stable order, honouring `.dockerignore` and
/// never descending into `exclude`. `dockerfile` is relative to the context and always
/// included.
pub fn tar_context(
    context_dir: &Path,
    dockerfile: &Path,
    exclude: &[PathBuf],
) -> Result<Vec<u8>, BackendError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackendError::BuildContext { path, source }
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for entry in context_entries(context_dir, dockerfile, exclude)? {
        builder
            .append_path_with_name(&entry.path, &entry.rel)
            .map_err(read_err(&entry.path))?;
    }
    builder.into_inner().map_err(read_err(context_dir))
}

/// What [`tar_context`] sends, without reading any file.
pub fn context_entries(
    context_dir: &Path,
    dockerfile: &Path,
    exclude: &[PathBuf],
) -> Result<Vec<ContextEntry>, BackendError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackendError::BuildContext { path, source }
    };
    let meta = fs::metadata(context_dir).map_err(read_err(context_dir))?;
    if !meta.is_dir() {
        return Err(BackendError::BuildContext {
            path: context_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let ignore = load_dockerignore(context_dir)?;
    let always: [PathBuf; 2] = [dockerfile.to_path_buf(), PathBuf::from(".dockerignore")];

    let mut out = Vec::new();
    let exclude: Vec<PathBuf> = exclude.to_vec();
    let walker = ignore::WalkBuilder::new(context_dir)
        .standard_filters(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| !exclude.iter().any(|x| e.path() == x))
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| BackendError::BuildContext {
            path: context_dir.to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("cannot walk the build context")),
        })?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(context_dir) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        let excluded = ignore.matched_path_or_any_parents(rel, is_dir).is_ignore();
        // An excluded directory is still walked: an exception (`!dir/keep`) may re-include
        // something below it, and only files decide what is sent.
        if excluded && !always.iter().any(|a| a == rel) {
            continue;
        }
        let metadata = fs::symlink_metadata(path).map_err(read_err(path))?;
        out.push(ContextEntry {
            rel: rel.to_path_buf(),
            path: path.to_path_buf(),
            metadata,
        });
    }
    Ok(out)
}

fn load_dockerignore(context_dir: &Path) -> Result<Gitignore, BackendError> {
    let path = context_dir.join(".dockerignore");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(BackendError::BuildContext { path, source }),
    };
    let mut builder = GitignoreBuilder::new(context_dir);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negate, pattern) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest.trim()),
            None => ("", line),
        };
        let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
        if pattern.is_empty() {
            continue;
        }
        builder
            .add_line(None, &format!("{negate}/{pattern}"))
            .map_err(|e| BackendError::BuildContext {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?;
    }
    builder.build().map_err(|e| BackendError::BuildContext {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn dockerignore_patterns_are_anchored_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\n");
        write(
            d,
            ".dockerignore",
            "# comment\nsecret.txt\nlogs/\n*.tmp\n!keep.tmp\n",
        );
        write(d, "secret.txt", "x");
        write(d, "sub/secret.txt", "kept: the pattern is anchored");
        write(d, "logs/a.log", "x");
        write(d, "a.tmp", "x");
        write(d, "keep.tmp", "x");
        write(d, "src/main.rs", "x");
        let names = names(&tar_context(d, Path::new("Dockerfile"), &[]).unwrap());
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "keep.tmp",
                "src",
                "src/main.rs",
                "sub",
                "sub/secret.txt"
            ]
        );
    }

    #[test]
    fn the_dockerfile_is_sent_even_when_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "build/Dockerfile", "FROM scratch\n");
        write(d, "build/other", "x");
        write(d, ".dockerignore", "build\n");
        let names = names(&tar_context(d, Path::new("build/Dockerfile"), &[]).unwrap());
        assert_eq!(names, vec![".dockerignore", "build/Dockerfile"]);
    }

    #[test]
    fn what_sanctuary_writes_is_never_sent_whatever_dockerignore_says() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\n");
        write(d, ".dockerignore", "!.sanctuary\n");
        write(d, ".sanctuary/state.json", "{}");
        write(d, "backups/snap.tar.zst", "x");
        write(d, "app.js", "x");
        let exclude = [d.join(".sanctuary"), d.join("backups")];
        let names = names(&tar_context(d, Path::new("Dockerfile"), &exclude).unwrap());
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "app.js"]);
    }

    #[test]
    fn a_missing_context_names_the_path() {
        let err =
            tar_context(Path::new("/no/such/context"), Path::new("Dockerfile"), &[]).unwrap_err();
        assert!(err.to_string().contains("/no/such/context"), "{err}");
    }
}
