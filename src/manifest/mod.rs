//! Reading a manifest: discovery, KDL decoding with knuffel, `${VAR}` interpolation, resolution
//! into the typed model, and validation that reports every problem at once.
//!
//! Pure apart from reading the manifest and its `.env` file: nothing here touches Docker.

mod decode;
pub mod diagnostic;
pub mod interpolate;
mod model;
mod parallel_parse;
pub mod raw;
mod references;
mod resolve;

pub use resolve::PROFILES_VAR;
pub mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use diagnostic::{Diag, ManifestError, ManifestWarnings};
pub use model::*;
pub use references::{EdgeKind, Reference};

/// The file name looked for when no `-f` is given.
pub const FILE_NAME: &str = "Sanctuary.kdl";

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("no {FILE_NAME} found in {} or any parent directory", start.display())]
    #[diagnostic(help("create one, or point at a manifest with -f FILE"))]
    NotFound { start: PathBuf },
    #[error("cannot read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    #[diagnostic(help("the .env file holds KEY=value lines"))]
    DotEnv {
        path: PathBuf,
        #[source]
        source: dotenvy::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(#[from] knuffel::Error),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] ManifestError),
}

/// A loaded manifest with any warnings about it.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub warnings: Option<ManifestWarnings>,
}

/// Finds `Sanctuary.kdl` in `start` or its nearest parent, like make and just.
pub fn discover(start: &Path) -> Result<PathBuf, LoadError> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(LoadError::NotFound {
        start: start.to_path_buf(),
    })
}

/// Reads, decodes, interpolates, resolves and validates the manifest at `path`, with variables
/// from the process environment and a `.env` file beside the manifest.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let path = std::path::absolute(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    load_text(&path, &display_name(&path), &text)
}

/// Loads `text` as if it were the manifest at `path` (absolute), shown as `name`: relative
/// paths, `.env` and the environment are those of `path`. For a manifest kept elsewhere, such
/// as one recorded in a generation.
pub fn load_text(path: &Path, name: &str, text: &str) -> Result<Loaded, LoadError> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    load_text_with_env(path, name, text, &dir)
}

/// [`load_text`], with `.env` read from `env_dir` instead of the manifest's directory: a
/// manifest checked out of a commit takes the `.env` of the working directory, where local
/// values live, never one from the repository.
pub fn load_text_with_env(
    path: &Path,
    name: &str,
    text: &str,
    env_dir: &Path,
) -> Result<Loaded, LoadError> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let dotenv = read_dotenv(&env_dir.join(".env"))?;
    let vars = interpolate::Vars::new(std::env::vars().collect(), dotenv);
    load_str(name, text, path, &dir, &vars)
}

/// Loads a manifest from text; `path` and `dir` anchor relative paths. Used by [`load`] and
/// by tests that need no files.
pub fn load_str(
    name: &str,
    text: &str,
    path: &Path,
    dir: &Path,
    vars: &interpolate::Vars,
) -> Result<Loaded, LoadError> {
    let decode::Decoded {
        nodes,
        declared,
        mut diags,
    } = decode::decode(name, text, vars)?;
    let manifest = resolve::resolve(nodes, &declared, path, dir, text, &mut diags);

    // A cycle is named in full. Edges of nodes that failed to resolve are missing, but any
    // cycle found among the rest is real.
    diags.extend(cycle_diagnostics(&manifest));
    let (errors, mut warns): (Vec<Diag>, Vec<Diag>) = diags.into_iter().partition(Diag::is_error);
    if !errors.is_empty() {
        // Warnings are judged on the resolved model, which lacks whatever failed to resolve
        // (a backup whose only copy is invalid would be "0 copies"): they wait until the
        // errors are fixed.
        return Err(ManifestError::new(name, text, errors).into());
    }
    warns.extend(warnings(&manifest));
    let warnings =
        (!warns.is_empty()).then(|| ManifestWarnings(ManifestError::new(name, text, warns)));
    Ok(Loaded { manifest, warnings })
}

/// One error per dependency cycle: its members in edge order in the message, and a label on
/// every reference that closes it — the `depends-on` entry, or the node that uses another.
fn cycle_diagnostics(m: &Manifest) -> Vec<Diag> {
    let ids = m.node_ids();
    let index: HashMap<&NodeId, usize> = ids.iter().enumerate().map(|(i, n)| (n, i)).collect();
    let refs = m.references();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for r in &refs {
        if let (Some(&f), Some(&t)) = (index.get(&r.from), index.get(&r.to)) {
            if !deps[f].contains(&t) {
                deps[f].push(t);
            }
        }
    }
    let mut out = Vec::new();
    for component in crate::topo::cycles(&deps) {
        let path = crate::topo::close_path(&deps, &component);
        let text: Vec<String> = path.iter().map(|&i| ids[i].to_string()).collect();
        let mut d = match component.as_slice() {
            [only] => Diag::error(format!("{} depends on itself", ids[*only]))
                .help("remove the dependency on itself"),
            _ => Diag::error(format!("dependency cycle: {}", text.join(" → ")))
                .help("break the cycle by removing one of these dependencies"),
        };
        let members: std::collections::HashSet<&NodeId> =
            component.iter().map(|&i| &ids[i]).collect();
        let mut labelled = std::collections::HashSet::new();
        for r in &refs {
            if !(members.contains(&r.from) && members.contains(&r.to)) {
                continue;
            }
            if !labelled.insert((&r.from, &r.to)) {
                continue;
            }
            let (span, text) = match r.span {
                Some(span) if r.from == r.to => {
                    (span, format!("{} lists itself in depends-on", r.from))
                }
                Some(span) => (span, format!("{} depends on {}", r.from, r.to)),
                None => match node_span(m, &r.from) {
                    Some(span) => (span, format!("{} uses {}", r.from, r.to)),
                    None => continue,
                },
            };
            d = d.label(span, text);
        }
        out.push(d);
    }
    out
}

fn node_span(m: &Manifest, id: &NodeId) -> Option<Span> {
    let n = id.name.as_str();
    Some(match id.kind {
        Kind::Secret => m.secrets.get(n)?.span,
        Kind::Image => m.images.get(n)?.span,
        Kind::Volume => m.volumes.get(n)?.span,
        Kind::Network => m.networks.get(n)?.span,
        Kind::Service => m.services.get(n)?.span,
        Kind::Task => m.tasks.get(n)?.span,
        Kind::Test => m.tests.get(n)?.span,
        Kind::Backup => m.backups.get(n)?.span,
        Kind::Sync => m.syncs.get(n)?.span,
    })
}

/// Checks that hold for valid manifests but deserve a word: backups that are not 3-2-1.
fn warnings(m: &Manifest) -> Vec<Diag> {
    let mut out = Vec::new();
    for b in m.backups.values() {
        let copies = b.copies.len();
        let media: std::collections::HashSet<_> = b.copies.iter().map(|c| c.media).collect();
        let offsite = b.copies.iter().any(|c| c.offsite);
        let mut missing = Vec::new();
        if copies < 3 {
            missing.push(format!(
                "{copies} cop{} (3 recommended)",
                if copies == 1 { "y" } else { "ies" }
            ));
        }
        if media.len() < 2 {
            missing.push(format!("{} medium (2 recommended)", media.len()));
        }
        if !offsite {
            missing.push("no offsite copy".to_string());
        }
        if !missing.is_empty() {
            out.push(
                Diag::warning(format!("backup `{}` is not 3-2-1: {}", b.name, missing.join(", ")))
                    .label(b.span, "backup declared here")
                    .help("3-2-1: three copies, on two kinds of media, one of them offsite (copy \"offsite\" rclone=\"remote:path\" offsite=true)"),
            );
        }
    }
    out
}

pub(crate) fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, LoadError> {
    match dotenvy::from_path_iter(path) {
        Ok(iter) => iter
            .collect::<Result<HashMap<_, _>, _>>()
            .map_err(|source| LoadError::DotEnv {
                path: path.to_path_buf(),
                source,
            }),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(HashMap::new())
        }
        Err(source) => Err(LoadError::DotEnv {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The name diagnostics show for the manifest: relative to the working directory if inside it.
fn display_name(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            path.strip_prefix(&cwd)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| path.display().to_string())
}
