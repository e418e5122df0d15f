//! Raw nodes → the resolved [`Manifest`]: duplicate names, references between nodes, required
//! values, defaults, paths, port clashes and dependency conditions. Every problem becomes a
//! [`Diag`] pointing at the text; resolution carries on so all of them are reported at once.
//!
//! This file holds the driver (names first, then each node, then checks across nodes) and
//! what every kind shares (paths, references, `depends-on`); each node kind resolves in a
//! file of its own, so one new property touches one file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use knuffel::span::Span as KSpan;
use miette::SourceSpan;

use super::diagnostic::{did_you_mean, Diag};
use super::model::*;
use super::raw::{self, Text, TopNode};

mod alert;
mod backup;
mod conditions;
mod image;
mod ports;
mod project;
mod secret;
mod service;
mod sync;
mod task;
mod test;

use alert::resolve_alert;
use backup::resolve_backup;
use image::resolve_image;
use ports::check_port_clashes;
use secret::resolve_secret;
use service::resolve_service;
use sync::resolve_sync;
use task::resolve_task;
use test::resolve_test;

/// Default time dependents wait for a service to become ready.
const DEFAULT_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const DEFAULT_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const DEFAULT_TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn at(s: &KSpan) -> SourceSpan {
    (s.0, s.1.saturating_sub(s.0)).into()
}

fn span(t: &Text) -> Span {
    Span::from(t.span())
}

/// Where a name was declared, per kind, for reference checks and suggestions.
#[derive(Default)]
struct Names {
    by_kind: HashMap<Kind, IndexMap<String, SourceSpan>>,
}

impl Names {
    fn has(&self, kind: Kind, name: &str) -> bool {
        self.by_kind
            .get(&kind)
            .is_some_and(|m| m.contains_key(name))
    }

    fn names(&self, kind: Kind) -> Vec<&str> {
        self.by_kind
            .get(&kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

pub struct Resolver<'a> {
    dir: &'a Path,
    /// The project's state directory, once known (default copies of backups go there).
    state_dir: PathBuf,
    home: Option<PathBuf>,
    names: Names,
    pub diags: Vec<Diag>,
    /// Every `depends-on` edge with where its condition was written, by owner, checked once
    /// every node is known.
    located: LocatedDeps,
}

impl<'a> Resolver<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Resolver {
            dir,
            state_dir: dir.join(".sanctuary"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            names: Names::default(),
            diags: Vec::new(),
            located: Vec::new(),
        }
    }

    fn err(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// Checks that `name` names a declared node of `kind`; reports it otherwise.
    fn check_ref(&mut self, kind: Kind, name: &Text, role: &str) -> bool {
        if self.names.has(kind, name) {
            return true;
        }
        let known = self.names.names(kind);
        let help = did_you_mean(name, known.iter().copied()).or_else(|| {
            Some(if known.is_empty() {
                format!(
                    "the manifest declares no {kind}; add `{kind} \"{}\"`",
                    &**name
                )
            } else {
                format!("declared {kind}s: {}", known.join(", "))
            })
        });
        self.err(
            Diag::error(format!("{role} refers to undeclared {kind} `{}`", &**name))
                .label(at(name.span()), format!("no {kind} named `{}`", &**name))
                .help_opt(help),
        );
        false
    }

    /// Resolves a `depends-on` name: `kind.name`, or a bare name only one kind declares.
    fn dependency(&mut self, name: &Text) -> Option<NodeId> {
        if let Some((k, rest)) = name.split_once('.') {
            if let Ok(kind) = k.parse::<Kind>() {
                if self.names.has(kind, rest) {
                    return Some(NodeId::new(kind, rest));
                }
                let known = self.names.names(kind);
                self.err(
                    Diag::error(format!("depends-on refers to undeclared {kind} `{rest}`"))
                        .label(at(name.span()), "not declared")
                        .help_opt(did_you_mean(rest, known.iter().copied())),
                );
                return None;
            }
        }
        let matches: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| self.names.has(*k, name))
            .collect();
        match matches.as_slice() {
            [k] => Some(NodeId::new(*k, name.to_string())),
            [] => {
                let all: Vec<&str> = Kind::ALL
                    .iter()
                    .flat_map(|k| self.names.names(*k))
                    .collect();
                let help = did_you_mean(name, all.iter().copied());
                self.err(
                    Diag::error(format!(
                        "depends-on refers to undeclared node `{}`",
                        &**name
                    ))
                    .label(at(name.span()), "nothing declared with this name")
                    .help_opt(help),
                );
                None
            }
            several => {
                let options: Vec<String> = several
                    .iter()
                    .map(|k| format!("`{k}.{}`", &**name))
                    .collect();
                self.err(
                    Diag::error(format!(
                        "`{}` is ambiguous: several kinds declare it",
                        &**name
                    ))
                    .label(at(name.span()), "ambiguous name")
                    .help(format!("write one of {}", options.join(", "))),
                );
                None
            }
        }
    }

    fn depends_on(&mut self, owner: &str, deps: &[raw::DependsOn]) -> Vec<Dependency> {
        let mut out = Vec::new();
        let mut located = Vec::new();
        for d in deps {
            if d.names.is_empty() {
                self.err(
                    Diag::error("`depends-on` needs at least one name")
                        .label(at(&d.span), "no names given"),
                );
            }
            let condition = d
                .condition
                .as_ref()
                .map(|c| c.0)
                .unwrap_or(Condition::Started);
            let cond_span = d.condition.as_ref().map(|c| at(c.span()));
            for n in &d.names {
                if let Some(node) = self.dependency(n) {
                    let dep = Dependency {
                        node,
                        condition,
                        span: span(n),
                    };
                    located.push((dep.clone(), cond_span.unwrap_or(at(n.span()))));
                    out.push(dep);
                }
            }
        }
        self.located.push((owner.to_string(), located));
        out
    }

    /// Makes a manifest path absolute: `~` is the home directory, relative means relative to
    /// the manifest's directory. Normalised lexically (no `.`; `..` applied).
    pub fn path(&self, p: &str) -> PathBuf {
        let expanded = if p == "~" {
            self.home.clone().unwrap_or_else(|| PathBuf::from("~"))
        } else if let Some(rest) = p.strip_prefix("~/") {
            match &self.home {
                Some(h) => h.join(rest),
                None => PathBuf::from(p),
            }
        } else {
            PathBuf::from(p)
        };
        let joined = if expanded.is_absolute() {
            expanded
        } else {
            self.dir.join(expanded)
        };
        normalize(&joined)
    }

    fn image_ref(&mut self, name: &Text, role: &str) -> Option<ImageRef> {
        // A name with `:` or `/` is an image reference (`node:18-slim`, `ghcr.io/x/y`).
        if name.contains(':') || name.contains('/') {
            return Some(ImageRef::External(name.to_string()));
        }
        self.check_ref(Kind::Image, name, role)
            .then(|| ImageRef::Declared(name.to_string()))
    }

    fn check_name(&mut self, kind: Kind, name: &Text) {
        let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.err(
                Diag::error(format!("invalid {kind} name `{}`", &**name))
                    .label(at(name.span()), "invalid name")
                    .help("names start with a letter or digit and contain only letters, digits, `-` and `_`"),
            );
        }
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn merge_props(groups: &[raw::Properties]) -> BTreeMap<String, String> {
    groups
        .iter()
        .flat_map(|g| g.values.iter().map(|(k, v)| (k.clone(), v.text.clone())))
        .collect()
}

fn flatten_args(groups: &[raw::Args]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.values.iter().map(|v| v.to_string()))
        .collect()
}

/// A top-level node's name, kind and span, for duplicate detection.
fn identity(node: &TopNode) -> Option<(Kind, &Text)> {
    Some(match node {
        TopNode::Project(_) => return None,
        TopNode::Secret(n) => (Kind::Secret, &n.name),
        TopNode::Image(n) => (Kind::Image, &n.name),
        TopNode::Volume(n) => (Kind::Volume, &n.name),
        TopNode::Network(n) => (Kind::Network, &n.name),
        TopNode::Service(n) => (Kind::Service, &n.name),
        TopNode::Task(n) => (Kind::Task, &n.name),
        TopNode::Test(n) => (Kind::Test, &n.name),
        TopNode::Backup(n) => (Kind::Backup, &n.name),
        TopNode::Sync(n) => (Kind::Sync, &n.name),
        TopNode::Alert(_) => return None,
    })
}

/// Service dependencies kept with where their condition was written, checked once every
/// service is known.
type LocatedDeps = Vec<(String, Vec<(Dependency, SourceSpan)>)>;

/// Resolves decoded nodes into a manifest. `diags` collects every error and warning.
pub fn resolve(
    nodes: Vec<TopNode>,
    declared: &[super::decode::Declared],
    path: &Path,
    dir: &Path,
    source: &str,
    diags: &mut Vec<Diag>,
) -> Manifest {
    let mut r = Resolver::new(dir);

    // Pass 1: every name, so references can point forward.
    let mut project: Option<&raw::Project> = None;
    for node in &nodes {
        if let TopNode::Project(p) = node {
            if let Some(first) = project {
                r.err(
                    Diag::error("a manifest declares at most one `project`")
                        .label(at(&p.span), "second project")
                        .label(at(&first.span), "first declared here"),
                );
            } else {
                project = Some(p);
            }
            continue;
        }
    }
    for d in declared {
        let Ok(kind) = d.kind.parse::<Kind>() else {
            continue;
        };
        let entry = r.names.by_kind.entry(kind).or_default();
        if let Some(first) = entry.get(&d.name) {
            let first = *first;
            r.err(
                Diag::error(format!("{kind} `{}` is declared twice", d.name))
                    .label(d.span, "declared again here")
                    .label(first, "first declared here")
                    .help(format!("{kind} names must be unique; rename or remove one")),
            );
        } else {
            entry.insert(d.name.clone(), d.span);
        }
    }
    for node in &nodes {
        if let Some((kind, name)) = identity(node) {
            r.check_name(kind, name);
        }
    }

    let (project_name, state_dir) = project::name_and_state_dir(&mut r, project);
    r.state_dir = state_dir.clone();

    let mut m = Manifest {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        source: source.to_string(),
        project: Project {
            name: project_name,
            description: project.and_then(|p| p.description.clone()),
            state_dir,
            keep_generations: project::keep_generations(&mut r, project),
        },
        secrets: IndexMap::new(),
        images: IndexMap::new(),
        volumes: IndexMap::new(),
        networks: IndexMap::new(),
        services: IndexMap::new(),
        tasks: IndexMap::new(),
        tests: IndexMap::new(),
        backups: IndexMap::new(),
        syncs: IndexMap::new(),
        alerts: IndexMap::new(),
        active_profiles: active_profiles(),
    };

    let mut ports: Vec<(String, PortSpec, SourceSpan)> = Vec::new();

    // Pass 2: resolve each node; the first declaration of a duplicated name wins.
    for node in &nodes {
        match node {
            TopNode::Project(_) => {}
            TopNode::Secret(s) => {
                if let Some(secret) = resolve_secret(&mut r, s) {
                    m.secrets.entry(secret.name.clone()).or_insert(secret);
                }
            }
            TopNode::Image(i) => {
                let image = resolve_image(&mut r, i);
                m.images.entry(image.name.clone()).or_insert(image);
            }
            TopNode::Volume(v) => {
                m.volumes.entry(v.name.to_string()).or_insert(Volume {
                    name: v.name.to_string(),
                    span: span(&v.name),
                    description: v.description.clone(),
                    driver: v.driver.clone(),
                });
            }
            TopNode::Network(n) => {
                m.networks.entry(n.name.to_string()).or_insert(Network {
                    name: n.name.to_string(),
                    span: span(&n.name),
                    description: n.description.clone(),
                    driver: n.driver.clone(),
                    internal: n.internal,
                });
            }
            TopNode::Service(s) => {
                if let Some(svc) = resolve_service(&mut r, s, &mut ports) {
                    m.services.entry(svc.name.clone()).or_insert(svc);
                }
            }
            TopNode::Task(t) => {
                let task = resolve_task(&mut r, t);
                m.tasks.entry(task.name.clone()).or_insert(task);
            }
            TopNode::Test(t) => {
                if let Some(test) = resolve_test(&mut r, t) {
                    m.tests.entry(test.name.clone()).or_insert(test);
                }
            }
            TopNode::Backup(b) => {
                if let Some(backup) = resolve_backup(&mut r, b) {
                    m.backups.entry(backup.name.clone()).or_insert(backup);
                }
            }
            TopNode::Sync(s) => {
                if let Some(sync) = resolve_sync(&mut r, s) {
                    m.syncs.entry(sync.name.clone()).or_insert(sync);
                }
            }
            TopNode::Alert(a) => {
                if let Some(first) = m.alerts.get(&*a.name) {
                    r.err(
                        Diag::error(format!("alert `{}` is declared twice", &*a.name))
                            .label(at(a.name.span()), "declared again here")
                            .label(first.span, "first declared here"),
                    );
                } else if let Some(alert) = resolve_alert(&mut r, a) {
                    m.alerts.insert(alert.name.clone(), alert);
                }
            }
        }
    }

    conditions::check(&mut r, &m);
    check_port_clashes(&mut r, &ports);
    diags.append(&mut r.diags);
    m
}

/// `secret-file` entries: the path (default `/run/secrets/<name>`), mode (default 0400) and
/// numeric owner — by default `user` when that is numeric, so a container that runs as a
/// numeric user can read its own secrets.
fn secret_files(
    r: &mut Resolver,
    list: &[raw::SecretFile],
    user: Option<&str>,
    role: &str,
) -> Vec<SecretFile> {
    let mut secret_files = Vec::new();
    for f in list {
        let path = f
            .path
            .clone()
            .unwrap_or_else(|| format!("/run/secrets/{}", &*f.secret));
        if !path.starts_with('/') {
            r.err(
                Diag::error(format!("secret-file path `{path}` is not absolute"))
                    .label(at(&f.span), "must start with `/`"),
            );
        }
        let mode = f
            .mode
            .as_ref()
            .and_then(|m| file_mode(r, m))
            .unwrap_or(0o400);
        let owner = match &f.owner {
            Some(o) => {
                let parsed = numeric_owner(o);
                if parsed.is_none() {
                    r.err(
                        Diag::error(format!("secret-file owner `{}` is not numeric", &**o))
                            .label(at(o.span()), "expected \"uid:gid\", such as \"1000:1000\"")
                            .help("the file is made on the host, where the container's user names mean nothing"),
                    );
                }
                parsed
            }
            None => user.and_then(numeric_owner),
        };
        if r.check_ref(Kind::Secret, &f.secret, role) {
            secret_files.push(SecretFile {
                secret: f.secret.to_string(),
                path,
                mode,
                owner,
            });
        }
    }
    secret_files
}

fn secret_envs(r: &mut Resolver, list: &[raw::SecretEnv]) -> Vec<SecretEnv> {
    list.iter()
        .filter(|s| r.check_ref(Kind::Secret, &s.from, &format!("secret-env `{}`", &*s.var)))
        .map(|s| SecretEnv {
            var: s.var.to_string(),
            secret: s.from.to_string(),
        })
        .collect()
}

/// A file mode: a KDL number (`0o600`) is the mode itself; a string ("0600") is octal text.
fn file_mode(r: &mut Resolver, fm: &raw::At<raw::Scalar>) -> Option<u32> {
    let parsed = if fm.is_string {
        u32::from_str_radix(fm.text.trim_start_matches("0o"), 8).ok()
    } else {
        fm.text.parse::<u32>().ok()
    };
    match parsed {
        Some(v) if v <= 0o7777 => Some(v),
        _ => {
            r.err(
                Diag::error(format!("invalid file mode `{}`", fm.text)).label(
                    at(fm.span()),
                    "expected an octal mode like \"0644\" or 0o644",
                ),
            );
            None
        }
    }
}

/// A numeric `uid:gid` (or `uid`, meaning the same gid).
fn numeric_owner(text: &str) -> Option<(u32, u32)> {
    match text.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
        None => text.parse().ok().map(|u| (u, u)),
    }
}

fn container_path(r: &mut Resolver, p: &Text) -> String {
    if !p.starts_with('/') {
        r.err(
            Diag::error(format!("container path `{}` is not absolute", &**p))
                .label(at(p.span()), "must start with `/`"),
        );
    }
    p.to_string()
}

/// The profiles `SANCTUARY_PROFILES` switches on (comma-separated); `--profile` adds to it.
fn active_profiles() -> std::collections::BTreeSet<String> {
    std::env::var(PROFILES_VAR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The variable that names the active profiles.
pub const PROFILES_VAR: &str = "SANCTUARY_PROFILES";
