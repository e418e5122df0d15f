//! The `project` node: the project's name (checked, or derived from the directory) and its
//! state directory.

use super::*;

/// The project's name and state directory, from its `project` node when there is one.
pub(super) fn name_and_state_dir(
    r: &mut Resolver,
    project: Option<&raw::Project>,
) -> (String, PathBuf) {
    let project_name = match project {
        Some(p) => {
            let valid = p
                .name
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                r.err(
                    Diag::error(format!("invalid project name `{}`", &*p.name))
                        .label(at(p.name.span()), "invalid project name")
                        .help("a project name becomes part of Docker object names: lowercase letters, digits, `-` and `_`"),
                );
            }
            p.name.to_string()
        }
        None => default_project_name(r.dir),
    };
    let state_dir = project
        .and_then(|p| p.state_dir.as_ref())
        .map(|s| r.path(s))
        .unwrap_or_else(|| r.dir.join(".sanctuary"));
    (project_name, state_dir)
}

fn default_project_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("project");
    let mut name: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_start_matches(['-', '_']).to_string();
    if name.is_empty() {
        "project".to_string()
    } else {
        name
    }
}

/// How many generations keep their images named: `keep-generations N`, at least 1.
pub(super) fn keep_generations(r: &mut Resolver, project: Option<&raw::Project>) -> u64 {
    match project.and_then(|p| p.keep_generations.as_ref()) {
        Some(k) if **k == 0 => {
            r.err(
                Diag::error("`keep-generations` must be at least 1")
                    .label(at(k.span()), "0 would leave no generation to roll back to")
                    .help("keep-generations 5"),
            );
            1
        }
        Some(k) => **k,
        None => DEFAULT_KEEP_GENERATIONS,
    }
}

/// The generations whose images are kept when `keep-generations` is not given.
pub const DEFAULT_KEEP_GENERATIONS: u64 = 5;
