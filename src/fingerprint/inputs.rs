//! Expanding input (and output) patterns into files, the way git sees the tree.
//!
//! A pattern is a literal path (a file, or a directory meaning every file under it) or a glob
//! (`*`, `?`, `[..]`, `{a,b}`; `*` stays within one path component, `**` crosses them),
//! relative to the root or absolute. With [`ExpandOptions::git_like`] the walk respects
//! `.gitignore`, `.ignore` and `.git/info/exclude` whether or not the root is a git
//! repository, includes hidden files, and never enters `.git/` or `.sanctuary/`. A literal
//! file named explicitly is taken even when ignored: naming it is the stronger statement.
//! A literal path that does not exist, or a glob that matches nothing, is an error naming
//! the pattern, because a silently empty input set would make a fingerprint meaningless.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::statcache::{StatCache, StatCacheError};

/// Directory names never walked into: git's own store and sanctuary's state directory.
const ALWAYS_EXCLUDED: [&str; 2] = [".git", ".sanctuary"];

/// How a walk filters what it sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpandOptions {
    /// Respect `.gitignore`/`.ignore` files (inputs do; declared outputs, which are usually
    /// ignored build products, do not).
    pub respect_ignores: bool,
    /// Directories never walked into, absolute: where sanctuary writes (its state directory,
    /// backup copies inside the project), so nothing it writes becomes an input.
    pub exclude: Vec<PathBuf>,
}

impl ExpandOptions {
    /// The view of the tree used for task inputs: what git would track.
    pub fn git_like() -> Self {
        ExpandOptions {
            respect_ignores: true,
            exclude: Vec::new(),
        }
    }

    /// Every file, ignore files notwithstanding: used for declared outputs.
    pub fn everything() -> Self {
        ExpandOptions {
            respect_ignores: false,
            exclude: Vec::new(),
        }
    }

    /// These options, also never walking into `dirs`. Each is resolved through symlinks
    /// when it exists, as the walk sees canonical paths.
    pub fn excluding(mut self, dirs: &[PathBuf]) -> Self {
        self.exclude = dirs
            .iter()
            .map(|d| fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
            .collect();
        self
    }
}

/// One file found by [`expand`].
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The name used in keys and messages: `/`-separated and relative to the root when the
    /// file is under it, the absolute path otherwise.
    pub name: String,
    /// The absolute path (under the canonical root).
    pub path: PathBuf,
    /// The file's metadata from the walk, so callers need not stat it again.
    pub metadata: Metadata,
}

/// Why expanding or hashing inputs failed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot resolve the project root {path}")]
    ResolveRoot { path: PathBuf, source: io::Error },
    #[error("input '{pattern}' does not exist")]
    MissingPath { pattern: String },
    #[error("input glob '{pattern}' matches no file")]
    NoMatch { pattern: String },
    #[error("input glob '{pattern}' is not a valid glob")]
    BadGlob {
        pattern: String,
        source: globset::Error,
    },
    #[error("cannot read {path} while expanding '{pattern}'")]
    Walk {
        pattern: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("path {path} is not valid UTF-8")]
    NonUtf8 { path: PathBuf },
    #[error(transparent)]
    Hash(#[from] StatCacheError),
}

/// Expands `patterns` under `root` into a sorted, de-duplicated map name → file.
pub fn expand<S: AsRef<str>>(
    root: &Path,
    patterns: &[S],
    options: &ExpandOptions,
) -> Result<BTreeMap<String, InputFile>, InputError> {
    let root = fs::canonicalize(root).map_err(|source| InputError::ResolveRoot {
        path: root.to_path_buf(),
        source,
    })?;
    let mut found = BTreeMap::new();
    for pattern in patterns {
        let pattern = pattern.as_ref();
        let matched = expand_one(&root, pattern, options, &mut found)?;
        if !matched {
            return Err(if is_glob(pattern) {
                InputError::NoMatch {
                    pattern: pattern.to_string(),
                }
            } else {
                InputError::MissingPath {
                    pattern: pattern.to_string(),
                }
            });
        }
    }
    Ok(found)
}

/// Expands `patterns` (never into `exclude`) and hashes every file through `cache`: the
/// sorted map name → sha256 hex that goes into a [`super::Key`].
pub fn hash_inputs<S: AsRef<str>>(
    root: &Path,
    patterns: &[S],
    cache: &mut StatCache,
    exclude: &[PathBuf],
) -> Result<BTreeMap<String, String>, InputError> {
    let files = expand(
        root,
        patterns,
        &ExpandOptions::git_like().excluding(exclude),
    )?;
    let files: Vec<InputFile> = files.into_values().collect();
    Ok(cache.hash_files(&files)?)
}

/// Adds the files `pattern` names to `found`; returns whether it matched anything (a
/// pattern may match only files another pattern already found).
fn expand_one(
    root: &Path,
    pattern: &str,
    options: &ExpandOptions,
    found: &mut BTreeMap<String, InputFile>,
) -> Result<bool, InputError> {
    if !is_glob(pattern) {
        let path = root.join(pattern);
        let metadata = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(InputError::Walk {
                    pattern: pattern.to_string(),
                    path,
                    source,
                })
            }
        };
        if metadata.is_dir() {
            // An existing directory is a match even when empty: it was named, and it exists.
            walk(root, pattern, &path, None, options, found)?;
            return Ok(true);
        }
        let path = normalize(&path);
        let name = name_for(root, &path)?;
        found.insert(
            name.clone(),
            InputFile {
                name,
                path,
                metadata,
            },
        );
        return Ok(true);
    }
    let (base, rest) = split_glob(pattern);
    let matcher = GlobBuilder::new(&rest)
        .literal_separator(true)
        .build()
        .map_err(|source| InputError::BadGlob {
            pattern: pattern.to_string(),
            source,
        })?
        .compile_matcher();
    let base = root.join(base);
    if !base.is_dir() {
        return Ok(false);
    }
    walk(root, pattern, &base, Some(&matcher), options, found)
}

/// Walks `dir`, adding files whose path relative to `dir` matches `matcher` (all files when
/// there is none).
fn walk(
    root: &Path,
    pattern: &str,
    dir: &Path,
    matcher: Option<&GlobMatcher>,
    options: &ExpandOptions,
    found: &mut BTreeMap<String, InputFile>,
) -> Result<bool, InputError> {
    let dir = normalize(dir);
    let exclude = options.exclude.clone();
    let mut builder = ignore::WalkBuilder::new(&dir);
    builder
        .standard_filters(options.respect_ignores)
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let excluded = is_dir
                && (ALWAYS_EXCLUDED
                    .iter()
                    .any(|name| entry.file_name() == *name)
                    || exclude.iter().any(|x| entry.path() == x));
            !excluded
        });
    // The walk is parallel: with stat calls and ignore matching it is most of a no-op
    // check, and it splits well across cores.
    let (tx, rx) = std::sync::mpsc::channel();
    builder
        .threads(num_cpus::get().clamp(1, 8))
        .build_parallel()
        .run(|| {
            let tx = tx.clone();
            let dir = dir.as_path();
            Box::new(move |entry| {
                let found = visit(root, pattern, dir, matcher, entry);
                let failed = found.is_err();
                if !matches!(found, Ok(None)) && tx.send(found).is_err() {
                    return ignore::WalkState::Quit;
                }
                if failed {
                    ignore::WalkState::Quit
                } else {
                    ignore::WalkState::Continue
                }
            })
        });
    drop(tx);
    let mut matched = false;
    for item in rx {
        if let Some(file) = item? {
            matched = true;
            found.insert(file.name.clone(), file);
        }
    }
    Ok(matched)
}

/// Turns one walked entry into a matching file, if it is one.
fn visit(
    root: &Path,
    pattern: &str,
    dir: &Path,
    matcher: Option<&GlobMatcher>,
    entry: Result<ignore::DirEntry, ignore::Error>,
) -> Result<Option<InputFile>, InputError> {
    let entry = entry.map_err(|e| walk_error(pattern, dir, e))?;
    let Some(file_type) = entry.file_type() else {
        return Ok(None);
    };
    if file_type.is_dir() {
        return Ok(None);
    }
    let path = entry.path();
    if let Some(matcher) = matcher {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        if !matcher.is_match(relative) {
            return Ok(None);
        }
    }
    // A symlink counts as the file it points to; links to directories or to nothing
    // carry no content of their own and are skipped.
    let metadata = if file_type.is_symlink() {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            _ => return Ok(None),
        }
    } else {
        entry.metadata().map_err(|e| walk_error(pattern, path, e))?
    };
    Ok(Some(InputFile {
        name: name_for(root, path)?,
        path: path.to_path_buf(),
        metadata,
    }))
}

fn walk_error(pattern: &str, path: &Path, error: ignore::Error) -> InputError {
    // Loops and ignore-file errors carry no io::Error; keep their message instead.
    let message = error.to_string();
    let source = error
        .into_io_error()
        .unwrap_or_else(|| io::Error::other(message));
    InputError::Walk {
        pattern: pattern.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a pattern uses glob syntax rather than naming one path.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// Splits a glob into the literal directory prefix to walk and the pattern for the rest,
/// so `src/**/*.rs` walks only `src/`.
fn split_glob(pattern: &str) -> (PathBuf, String) {
    let mut base = PathBuf::new();
    let mut rest: Vec<&str> = Vec::new();
    let parts: Vec<&str> = pattern.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        if !rest.is_empty() || is_glob(part) || i == last {
            rest.push(part);
        } else if part.is_empty() && i == 0 {
            base.push("/");
        } else if !part.is_empty() && *part != "." {
            base.push(part);
        }
    }
    (base, rest.join("/"))
}

/// Removes `.` components and resolves `..` lexically, so names are stable.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn name_for(root: &Path, path: &Path) -> Result<String, InputError> {
    let shown = path.strip_prefix(root).unwrap_or(path);
    let Some(text) = shown.to_str() else {
        return Err(InputError::NonUtf8 {
            path: path.to_path_buf(),
        });
    };
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn names(root: &Path, patterns: &[&str]) -> Vec<String> {
        expand(root, patterns, &ExpandOptions::git_like())
            .unwrap()
            .into_keys()
            .collect()
    }

    #[test]
    fn globs_respect_gitignore_without_a_repository_and_include_hidden_files() {
        let dir = tree(&[
            (".gitignore", "*.log\nbuild/\n"),
            ("src/a.rs", "a"),
            ("src/deep/b.rs", "b"),
            ("src/.hidden.rs", "h"),
            ("src/noise.log", "n"),
            ("build/out.rs", "o"),
            ("src/c.txt", "c"),
        ]);
        assert_eq!(
            names(dir.path(), &["**/*.rs"]),
            ["src/.hidden.rs", "src/a.rs", "src/deep/b.rs"]
        );
    }

    #[test]
    fn single_star_stays_in_one_directory() {
        let dir = tree(&[("src/a.rs", "a"), ("src/deep/b.rs", "b")]);
        assert_eq!(names(dir.path(), &["src/*.rs"]), ["src/a.rs"]);
        assert_eq!(names(dir.path(), &["./src/*.rs"]), ["src/a.rs"]);
    }

    #[test]
    fn git_and_state_directories_are_never_walked() {
        let dir = tree(&[
            (".git/config", "x"),
            (".sanctuary/statcache", "x"),
            ("a.txt", "a"),
        ]);
        assert_eq!(names(dir.path(), &["."]), ["a.txt"]);
        assert_eq!(names(dir.path(), &["**"]), ["a.txt"]);
    }

    #[test]
    fn a_literal_directory_means_every_file_under_it() {
        let dir = tree(&[("docker/Dockerfile", "F"), ("docker/www/index.html", "i")]);
        assert_eq!(
            names(dir.path(), &["docker"]),
            ["docker/Dockerfile", "docker/www/index.html"]
        );
    }

    #[test]
    fn an_empty_literal_directory_is_not_an_error() {
        let dir = tree(&[("a.txt", "a")]);
        fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(names(dir.path(), &["empty"]).is_empty());
    }

    #[test]
    fn a_literal_ignored_file_is_still_taken() {
        let dir = tree(&[(".gitignore", "secret.env\n"), ("secret.env", "x")]);
        assert_eq!(names(dir.path(), &["secret.env"]), ["secret.env"]);
    }

    #[test]
    fn outputs_ignore_gitignore() {
        let dir = tree(&[(".gitignore", "dist/\n"), ("dist/app", "x")]);
        let found = expand(dir.path(), &["dist"], &ExpandOptions::everything()).unwrap();
        assert_eq!(found.into_keys().collect::<Vec<_>>(), ["dist/app"]);
    }

    #[test]
    fn missing_literal_and_empty_glob_are_errors_naming_the_pattern() {
        let dir = tree(&[("a.txt", "a")]);
        let err = expand(dir.path(), &["nope.txt"], &ExpandOptions::git_like()).unwrap_err();
        assert!(matches!(&err, InputError::MissingPath { pattern } if pattern == "nope.txt"));
        assert_eq!(err.to_string(), "input 'nope.txt' does not exist");
        let err = expand(dir.path(), &["src/**/*.rs"], &ExpandOptions::git_like()).unwrap_err();
        assert_eq!(err.to_string(), "input glob 'src/**/*.rs' matches no file");
        let err = expand(dir.path(), &["*.zig"], &ExpandOptions::git_like()).unwrap_err();
        assert!(matches!(err, InputError::NoMatch { .. }));
    }

    #[test]
    fn invalid_glob_is_reported() {
        let dir = tree(&[("a.txt", "a")]);
        let err = expand(dir.path(), &["src/[a"], &ExpandOptions::git_like()).unwrap_err();
        assert!(matches!(err, InputError::BadGlob { .. }), "{err:?}");
    }

    #[test]
    fn absolute_paths_keep_their_absolute_name() {
        let outside = tree(&[("tool", "bin"), ("lib/x.so", "so")]);
        let project = tree(&[("a.txt", "a")]);
        let tool = fs::canonicalize(outside.path()).unwrap().join("tool");
        let tool = tool.to_str().unwrap();
        assert_eq!(names(project.path(), &[tool]), [tool]);
        let glob = format!(
            "{}/lib/*.so",
            fs::canonicalize(outside.path()).unwrap().display()
        );
        let found = names(project.path(), &[glob.as_str()]);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with('/') && found[0].ends_with("lib/x.so"));
    }

    #[test]
    fn overlapping_patterns_are_deduplicated_and_sorted() {
        let dir = tree(&[("b.rs", "b"), ("a.rs", "a")]);
        assert_eq!(names(dir.path(), &["*.rs", "a.rs"]), ["a.rs", "b.rs"]);
    }

    #[test]
    fn hash_inputs_maps_names_to_content_hashes() {
        let dir = tree(&[("src/a.rs", "a"), ("src/b.rs", "a")]);
        let state = tempfile::tempdir().unwrap();
        let mut cache = StatCache::in_state_dir(state.path());
        let hashes = hash_inputs(dir.path(), &["src/*.rs"], &mut cache, &[]).unwrap();
        assert_eq!(hashes.keys().collect::<Vec<_>>(), ["src/a.rs", "src/b.rs"]);
        assert_eq!(
            hashes["src/a.rs"], hashes["src/b.rs"],
            "same content, same hash"
        );
        fs::write(dir.path().join("src/b.rs"), "b").unwrap();
        let again = hash_inputs(dir.path(), &["src/*.rs"], &mut cache, &[]).unwrap();
        assert_ne!(hashes["src/b.rs"], again["src/b.rs"]);
    }

    #[test]
    fn split_glob_walks_only_the_literal_prefix() {
        assert_eq!(
            split_glob("src/**/*.rs"),
            (PathBuf::from("src"), "**/*.rs".into())
        );
        assert_eq!(split_glob("*.rs"), (PathBuf::new(), "*.rs".into()));
        assert_eq!(
            split_glob("/usr/lib/*.so"),
            (PathBuf::from("/usr/lib"), "*.so".into())
        );
    }
}
