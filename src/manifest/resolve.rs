//! Raw nodes → the resolved [`Manifest`]: duplicate names, references between nodes, required
//! values, defaults, paths, port clashes and dependency conditions. Every problem becomes a
//! [`Diag`] pointing at the text; resolution carries on so all of them are reported at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use knuffel::span::Span as KSpan;
use miette::SourceSpan;

use super::diagnostic::{did_you_mean, Diag};
use super::model::*;
use super::raw::{self, Text, TopNode};

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
        None => default_project_name(dir),
    };
    let state_dir = project
        .and_then(|p| p.state_dir.as_ref())
        .map(|s| r.path(s))
        .unwrap_or_else(|| dir.join(".sanctuary"));
    r.state_dir = state_dir.clone();

    let mut m = Manifest {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        source: source.to_string(),
        project: Project {
            name: project_name,
            description: project.and_then(|p| p.description.clone()),
            state_dir,
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
    };

    let mut ports: Vec<(String, PortSpec, SourceSpan)> = Vec::new();

    // Pass 2: resolve each node; the first declaration of a duplicated name wins.
    for node in &nodes {
        match node {
            TopNode::Project(_) => {}
            TopNode::Secret(s) => {
                let sources = [
                    s.env.is_some(),
                    s.file.is_some(),
                    s.keychain.is_some(),
                    s.libsecret.is_some(),
                ];
                let source = match sources.iter().filter(|b| **b).count() {
                    1 => Some(if let Some(e) = &s.env {
                        SecretSource::Env(e.to_string())
                    } else if let Some(f) = &s.file {
                        SecretSource::File(r.path(f))
                    } else if let Some(k) = &s.keychain {
                        SecretSource::Keychain {
                            service: k.service.to_string(),
                            account: k.account.as_ref().map(|a| a.to_string()),
                        }
                    } else {
                        let attrs = s
                            .libsecret
                            .as_ref()
                            .map(|l| l.attributes.clone())
                            .unwrap_or_default();
                        if attrs.is_empty() {
                            r.err(
                                Diag::error(format!(
                                    "secret `{}`: libsecret needs attributes to find the item",
                                    &*s.name
                                ))
                                .label(at(s.name.span()), "no attributes")
                                .help("libsecret service=\"anthropic\" account=\"me\""),
                            );
                        }
                        SecretSource::Libsecret(attrs)
                    }),
                    0 => {
                        r.err(
                            Diag::error(format!("secret `{}` has no source", &*s.name))
                                .label(at(s.name.span()), "no source")
                                .help("give one of: env \"VAR\", file \"path\", keychain service=\"…\", libsecret key=\"value\""),
                        );
                        None
                    }
                    _ => {
                        r.err(
                            Diag::error(format!("secret `{}` has more than one source", &*s.name))
                                .label(at(s.name.span()), "several sources")
                                .help("a secret comes from exactly one of env, file, keychain or libsecret"),
                        );
                        None
                    }
                };
                if let Some(source) = source {
                    m.secrets.entry(s.name.to_string()).or_insert(Secret {
                        name: s.name.to_string(),
                        span: span(&s.name),
                        description: s.description.clone(),
                        source,
                    });
                }
            }
            TopNode::Image(i) => {
                let depends_on = r.depends_on(&format!("image `{}`", &*i.name), &i.depends_on);
                let source = if let Some(reference) = &i.reference {
                    if i.context.is_some()
                        || i.dockerfile.is_some()
                        || !i.args.is_empty()
                        || i.target.is_some()
                    {
                        r.err(
                            Diag::error(format!("image `{}` has both a reference and a build", &*i.name))
                                .label(at(reference.span()), "external reference")
                                .help("an image is either built (context, dockerfile) or used as is (reference), not both"),
                        );
                    }
                    ImageSource::Reference(reference.to_string())
                } else {
                    let context = r.path(i.context.as_deref().map(String::as_str).unwrap_or("."));
                    let dockerfile = match &i.dockerfile {
                        Some(d) => {
                            let p = r.path(d);
                            if !p.starts_with(&context) {
                                r.err(
                                    Diag::error(format!("the Dockerfile of image `{}` is outside its build context", &*i.name))
                                        .label(at(d.span()), format!("not inside {}", context.display()))
                                        .help("move the Dockerfile into the context directory, or widen `context`"),
                                );
                            }
                            p
                        }
                        None => context.join("Dockerfile"),
                    };
                    ImageSource::Build {
                        context,
                        dockerfile,
                        args: merge_props(&i.args),
                        target: i.target.clone(),
                    }
                };
                m.images.entry(i.name.to_string()).or_insert(Image {
                    name: i.name.to_string(),
                    span: span(&i.name),
                    description: i.description.clone(),
                    source,
                    depends_on,
                });
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
                if t.run.is_empty() {
                    r.err(
                        Diag::error(format!("task `{}` has nothing to run", &*t.name))
                            .label(at(t.name.span()), "no `run`")
                            .help("add `run \"command\"`"),
                    );
                }
                let depends_on = r.depends_on(&format!("task `{}`", &*t.name), &t.depends_on);
                let secret_env = secret_envs(&mut r, &t.secret_env);
                let image = t
                    .image
                    .as_ref()
                    .and_then(|i| r.image_ref(i, &format!("task `{}`", &*t.name)));
                let dir = t
                    .dir
                    .as_ref()
                    .map(|d| r.path(d))
                    .unwrap_or_else(|| dir.to_path_buf());
                m.tasks.entry(t.name.to_string()).or_insert(Task {
                    name: t.name.to_string(),
                    span: span(&t.name),
                    description: t.description.clone(),
                    run: t.run.iter().map(|l| l.to_string()).collect(),
                    inputs: flatten_args(&t.inputs),
                    outputs: flatten_args(&t.outputs),
                    env: merge_props(&t.env),
                    secret_env,
                    depends_on,
                    dir,
                    image,
                    timeout: t.timeout,
                });
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
        }
    }

    // Conditions: `healthy` needs a health check; `completed` and `healthy` make no sense on
    // nodes that are not services (a task always completes; it has no health).
    let located = std::mem::take(&mut r.located);
    for (owner, deps) in &located {
        for (dep, cond_at) in deps {
            match (dep.condition, dep.node.kind) {
                (Condition::Healthy, Kind::Service) => {
                    if let Some(target) = m.services.get(&dep.node.name) {
                        if target.health.is_none() {
                            r.err(
                                Diag::error(format!(
                                    "{owner} waits for `{}` to be healthy, but `{}` has no health check",
                                    dep.node.name, dep.node.name
                                ))
                                .label(*cond_at, "condition=\"healthy\"")
                                .label(target.span, "declared without `health`")
                                .help(format!("add a `health {{ cmd … }}` block to service `{}`, or use condition=\"started\"", dep.node.name)),
                            );
                        }
                    }
                }
                (Condition::Healthy, kind) => r.err(
                    Diag::error(format!(
                        "condition=\"healthy\" applies to services, not to {kind} `{}`",
                        dep.node.name
                    ))
                    .label(*cond_at, "only services have health")
                    .help("drop the condition; other nodes are waited for until they finish"),
                ),
                _ => {}
            }
        }
    }

    check_port_clashes(&mut r, &ports);
    diags.append(&mut r.diags);
    m
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

fn secret_envs(r: &mut Resolver, list: &[raw::SecretEnv]) -> Vec<SecretEnv> {
    list.iter()
        .filter(|s| r.check_ref(Kind::Secret, &s.from, &format!("secret-env `{}`", &*s.var)))
        .map(|s| SecretEnv {
            var: s.var.to_string(),
            secret: s.from.to_string(),
        })
        .collect()
}

fn resolve_service(
    r: &mut Resolver,
    s: &raw::Service,
    ports: &mut Vec<(String, PortSpec, SourceSpan)>,
) -> Option<Service> {
    let name = s.name.to_string();
    let role = format!("service `{name}`");
    let image = match &s.image {
        Some(i) => r.image_ref(i, &role),
        None => {
            r.err(
                Diag::error(format!("service `{name}` has no image"))
                    .label(at(s.name.span()), "no `image`")
                    .help("add `image \"name\"` naming a declared image, or an image reference like \"busybox:1.36\""),
            );
            None
        }
    };
    let secret_env = secret_envs(r, &s.secret_env);
    let mut secret_files = Vec::new();
    for f in &s.secret_file {
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
        if r.check_ref(Kind::Secret, &f.secret, &role) {
            secret_files.push(SecretFile {
                secret: f.secret.to_string(),
                path,
            });
        }
    }

    let mut port_specs = Vec::new();
    for p in &s.ports {
        let parsed = if p.spec.is_string {
            p.spec.text.parse::<PortSpec>()
        } else {
            p.spec.text.parse::<PortSpec>().map_err(|_| {
                format!(
                    "invalid port `{}`: expected a container port number 1-65535",
                    p.spec.text
                )
            })
        };
        match parsed {
            Ok(mut spec) => {
                if let Some(h) = &p.host {
                    if spec.host.is_some() {
                        r.err(
                            Diag::error("the host port is given twice")
                                .label(at(h.span()), "host= here")
                                .label(at(p.spec.span()), "and in the port spec")
                                .help("write either `port 80 host=8080` or `port \"8080:80\"`"),
                        );
                    } else if **h == 0 {
                        r.err(
                            Diag::error("host port 0 is not allowed")
                                .label(at(h.span()), "invalid port"),
                        );
                    }
                    spec.host = Some(**h);
                }
                if let Some(proto) = p.protocol {
                    spec.protocol = proto;
                }
                if let Some(ip) = &p.ip {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        r.err(
                            Diag::error(format!("invalid ip `{ip}`"))
                                .label(at(&p.span), "not an IP address")
                                .help("write an address such as \"127.0.0.1\" or \"0.0.0.0\""),
                        );
                    }
                    spec.host_ip = Some(ip.clone());
                }
                ports.push((name.clone(), spec.clone(), at(&p.span)));
                port_specs.push(spec);
            }
            Err(e) => r.err(Diag::error(e).label(at(p.spec.span()), "invalid port spec")),
        }
    }

    let mut mounts = Vec::new();
    for mnt in &s.mounts {
        if r.check_ref(Kind::Volume, &mnt.source, &role) {
            mounts.push(Mount {
                source: MountSource::Volume(mnt.source.to_string()),
                target: container_path(r, &mnt.target),
                read_only: mnt.read_only,
            });
        }
    }
    for b in &s.binds {
        mounts.push(Mount {
            source: MountSource::Bind(r.path(&b.source)),
            target: container_path(r, &b.target),
            read_only: b.read_only,
        });
    }
    let mut networks: Vec<NetworkAttachment> = Vec::new();
    for n in &s.networks {
        if r.check_ref(Kind::Network, &n.name, &role) {
            match networks.iter_mut().find(|a| a.network == *n.name) {
                Some(existing) => existing.aliases.extend(n.alias.clone()),
                None => networks.push(NetworkAttachment {
                    network: n.name.to_string(),
                    aliases: n.alias.iter().cloned().collect(),
                }),
            }
        }
    }

    let resources = match &s.resources {
        Some(res) => {
            let cpus = res
                .cpus
                .as_ref()
                .and_then(|c| match c.text.parse::<Cpus>() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        r.err(Diag::error(e).label(at(c.span()), "invalid cpus"));
                        None
                    }
                });
            if let Some(p) = res.pids {
                if p < 1 {
                    r.err(
                        Diag::error(format!(
                            "invalid pids limit {p}: expected a positive number"
                        ))
                        .label(at(&res.span), "invalid pids"),
                    );
                }
            }
            Resources {
                cpus,
                memory: res.memory,
                pids: res.pids,
            }
        }
        None => Resources::default(),
    };

    let health = s.health.as_ref().and_then(|h| {
        let test = match (&h.cmd, &h.shell) {
            (Some(cmd), None) if !cmd.is_empty() => Some([vec!["CMD".to_string()], cmd.clone()].concat()),
            (None, Some(sh)) => Some(vec!["CMD-SHELL".to_string(), sh.clone()]),
            (Some(_), Some(_)) => {
                r.err(
                    Diag::error("a health check has either `cmd` or `shell`, not both")
                        .label(at(&h.span), "both given"),
                );
                None
            }
            _ => {
                r.err(
                    Diag::error(format!("the health check of service `{name}` has no command"))
                        .label(at(&h.span), "no `cmd` or `shell`")
                        .help("add `cmd \"wget\" \"-qO-\" \"http://127.0.0.1:3000/health\"` or `shell \"…\"`"),
                );
                None
            }
        }?;
        Some(HealthCheck {
            test,
            interval: h.interval.unwrap_or(Duration(std::time::Duration::from_secs(30))),
            timeout: h.timeout.unwrap_or(Duration(std::time::Duration::from_secs(30))),
            retries: h.retries.unwrap_or(3),
            start_period: h.start_period.unwrap_or(Duration(std::time::Duration::ZERO)),
        })
    });

    let depends_on = r.depends_on(&format!("service `{name}`"), &s.depends_on);

    Some(Service {
        name: name.clone(),
        span: span(&s.name),
        description: s.description.clone(),
        image: image?,
        command: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: merge_props(&s.env),
        secret_env,
        secret_files,
        ports: port_specs,
        mounts,
        networks,
        restart: s.restart.as_ref().map(|p| p.0).unwrap_or_default(),
        resources,
        health,
        depends_on,
        user: s.user.clone(),
        workdir: s.workdir.clone(),
        hostname: s.hostname.clone(),
        ready_timeout: s.ready_timeout.unwrap_or(Duration(DEFAULT_READY_TIMEOUT)),
        stop_timeout: s.stop_timeout.unwrap_or(Duration(DEFAULT_STOP_TIMEOUT)),
        labels: merge_props(&s.labels),
    })
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

fn resolve_test(r: &mut Resolver, t: &raw::Test) -> Option<Test> {
    let name = t.name.to_string();
    let role = format!("test `{name}`");
    let mut needs = Vec::new();
    for group in &t.needs {
        for n in &group.values {
            if r.check_ref(Kind::Service, n, &role) {
                needs.push(n.to_string());
            }
        }
    }
    let depends_on = r.depends_on(&format!("test `{}`", &*t.name), &t.depends_on);
    let forms = [
        !t.run.is_empty(),
        t.exec.is_some(),
        t.http.is_some(),
        t.tcp.is_some(),
    ];
    let count = forms.iter().filter(|b| **b).count();
    if count != 1 {
        let mut d = Diag::error(if count == 0 {
            format!("test `{name}` has no check")
        } else {
            format!("test `{name}` has more than one check")
        })
        .help("a test has exactly one of: run \"command\", exec \"service\" \"cmd\"…, http \"url\", tcp \"host:port\"");
        if count == 0 {
            d = d.label(at(t.name.span()), "declared here");
        } else {
            // Point at every check, so the user sees which ones compete.
            let checks = t
                .run
                .iter()
                .map(|c| (at(c.span()), "`run` check"))
                .chain(t.exec.iter().map(|c| (at(&c.span), "`exec` check")))
                .chain(t.http.iter().map(|c| (at(&c.span), "`http` check")))
                .chain(t.tcp.iter().map(|c| (at(&c.span), "`tcp` check")));
            for (span, text) in checks {
                d = d.label(span, text);
            }
        }
        r.err(d);
        return None;
    }
    if t.image.is_some() && t.run.is_empty() {
        r.err(
            Diag::error("`image` on a test applies only to `run` commands").label(
                at(t.image.as_ref().map(|i| i.span()).unwrap_or(t.name.span())),
                "image without run",
            ),
        );
    }
    let check = if !t.run.is_empty() {
        let image = t.image.as_ref().and_then(|i| r.image_ref(i, &role));
        TestCheck::Command {
            run: t.run.iter().map(|l| l.to_string()).collect(),
            image,
        }
    } else if let Some(e) = &t.exec {
        r.check_ref(Kind::Service, &e.service, &role);
        if e.command.is_empty() {
            r.err(
                Diag::error("`exec` needs a command after the service name")
                    .label(at(&e.span), "no command")
                    .help("exec \"omega\" \"wget\" \"-qO-\" \"http://beta:3001/health\""),
            );
        }
        TestCheck::Exec {
            service: e.service.to_string(),
            command: e.command.clone(),
        }
    } else if let Some(h) = &t.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            r.err(
                Diag::error(format!("invalid URL `{}`", &*h.url))
                    .label(at(h.url.span()), "expected http:// or https://"),
            );
        }
        if let Some(s) = &h.status {
            if !(100..=599).contains(&**s) {
                r.err(
                    Diag::error(format!("invalid HTTP status {}", **s))
                        .label(at(s.span()), "expected 100-599"),
                );
            }
        }
        if h.equals.is_some() && h.json_path.is_none() {
            r.err(
                Diag::error("`equals` needs `json-path`")
                    .label(at(&h.span), "equals without json-path")
                    .help("json-path=\"status.state\" equals=\"running\""),
            );
        }
        TestCheck::Http(HttpProbe {
            url: h.url.to_string(),
            method: h.method.unwrap_or(HttpMethod::Get),
            status: h.status.as_ref().map(|s| **s).unwrap_or(200),
            contains: h.contains.clone(),
            json_path: h.json_path.clone(),
            equals: h.equals.as_ref().map(|e| e.text.clone()),
            body: h.body.clone(),
            retries: h.retries.unwrap_or(0),
            delay: h
                .delay
                .unwrap_or(Duration(std::time::Duration::from_secs(1))),
        })
    } else {
        let tcp = t.tcp.as_ref()?;
        let valid = tcp.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            r.err(
                Diag::error(format!("invalid TCP address `{}`", &*tcp.address))
                    .label(at(tcp.address.span()), "expected HOST:PORT")
                    .help("tcp \"127.0.0.1:5432\""),
            );
        }
        TestCheck::Tcp {
            address: tcp.address.to_string(),
            retries: tcp.retries.unwrap_or(0),
            delay: tcp
                .delay
                .unwrap_or(Duration(std::time::Duration::from_secs(1))),
        }
    };
    Some(Test {
        name,
        span: span(&t.name),
        description: t.description.clone(),
        tags: t.tags.clone().unwrap_or_default(),
        needs,
        depends_on,
        check,
        inputs: flatten_args(&t.inputs),
        env: merge_props(&t.env),
        timeout: t.timeout.unwrap_or(Duration(DEFAULT_TEST_TIMEOUT)),
    })
}

fn resolve_backup(r: &mut Resolver, b: &raw::Backup) -> Option<Backup> {
    let name = b.name.to_string();
    let role = format!("backup `{name}`");
    let source = match (&b.volume, &b.path) {
        (Some(v), None) => r
            .check_ref(Kind::Volume, v, &role)
            .then(|| BackupSource::Volume(v.to_string())),
        (None, Some(p)) => Some(BackupSource::Path(r.path(p))),
        (Some(v), Some(_)) => {
            r.err(
                Diag::error(format!("backup `{name}` has both a volume and a path"))
                    .label(at(v.span()), "volume here")
                    .help(
                        "a backup reads exactly one source: `volume \"name\"` or `path \"./dir\"`",
                    ),
            );
            None
        }
        (None, None) => {
            r.err(
                Diag::error(format!("backup `{name}` has no source"))
                    .label(at(b.name.span()), "no `volume` or `path`")
                    .help("add `volume \"name\"` or `path \"./dir\"`"),
            );
            None
        }
    };
    let quiesce = b.quiesce.as_ref().map(|q| {
        let services: Vec<String> = q
            .services
            .iter()
            .filter(|s| r.check_ref(Kind::Service, s, &format!("quiesce of {role}")))
            .map(|s| s.to_string())
            .collect();
        let mode = q.mode.0;
        if mode == QuiesceMode::Exec && (q.pre.is_none() || q.services.len() != 1) {
            r.err(
                Diag::error("quiesce \"exec\" runs a command in one service: it needs one service and `pre=`")
                    .label(at(&q.span), "incomplete exec quiesce")
                    .help("quiesce \"exec\" \"db\" pre=\"pg_dump -f /backup/db.sql\" post=\"rm /backup/db.sql\""),
            );
        }
        if matches!(mode, QuiesceMode::Stop | QuiesceMode::Pause) && q.services.is_empty() {
            r.err(
                Diag::error(format!("quiesce \"{mode}\" needs the services to {mode}"))
                    .label(at(q.mode.span()), "no services named"),
            );
        }
        Quiesce { mode, services, pre: q.pre.clone(), post: q.post.clone() }
    });
    let level = match &b.level {
        Some(l) if !(1..=22).contains(&**l) => {
            r.err(
                Diag::error(format!("invalid zstd level {}", **l))
                    .label(at(l.span()), "expected 1-22"),
            );
            3
        }
        Some(l) => **l,
        None => 3,
    };
    let mut copies = Vec::new();
    let mut seen: HashMap<String, SourceSpan> = HashMap::new();
    for c in &b.copies {
        if let Some(first) = seen.insert(c.name.to_string(), at(c.name.span())) {
            r.err(
                Diag::error(format!("copy `{}` is declared twice in {role}", &*c.name))
                    .label(at(c.name.span()), "declared again here")
                    .label(first, "first declared here"),
            );
        }
        let target = match (&c.path, &c.rclone) {
            (Some(p), None) => Some(CopyTarget::Dir(r.path(p))),
            (None, Some(remote)) => {
                if !remote.contains(':') {
                    r.err(
                        Diag::error(format!("invalid rclone remote `{}`", &**remote))
                            .label(at(remote.span()), "expected REMOTE:PATH")
                            .help("rclone=\"offsite:voidcat\""),
                    );
                }
                Some(CopyTarget::Rclone(remote.to_string()))
            }
            _ => {
                r.err(
                    Diag::error(format!(
                        "copy `{}` needs exactly one of path= or rclone=",
                        &*c.name
                    ))
                    .label(at(&c.span), "where does this copy go?"),
                );
                None
            }
        };
        if let Some(target) = target {
            let media = c.media.unwrap_or(match target {
                CopyTarget::Rclone(_) => Media::Cloud,
                CopyTarget::Dir(_) => Media::Disk,
            });
            copies.push(BackupCopy {
                name: c.name.to_string(),
                target,
                media,
                offsite: c.offsite,
            });
        }
    }
    if copies.is_empty() && b.copies.is_empty() {
        copies.push(BackupCopy {
            name: "local".into(),
            target: CopyTarget::Dir(r.state_dir.join("backups").join(&name)),
            media: Media::Disk,
            offsite: false,
        });
    }
    let keep = b
        .keep
        .as_ref()
        .map(|k| Keep {
            last: k.last,
            hourly: k.hourly,
            daily: k.daily,
            weekly: k.weekly,
            monthly: k.monthly,
            yearly: k.yearly,
        })
        .unwrap_or_default();
    let depends_on = r.depends_on(&format!("backup `{}`", &*b.name), &b.depends_on);
    Some(Backup {
        name,
        span: span(&b.name),
        description: b.description.clone(),
        source: source?,
        quiesce,
        level,
        copies,
        keep,
        depends_on,
    })
}

fn resolve_sync(r: &mut Resolver, s: &raw::Sync) -> Option<Sync> {
    let name = s.name.to_string();
    let role = format!("sync `{name}`");
    let depends_on = r.depends_on(&role, &s.depends_on);
    let host = match &s.host {
        Some(h) => Some(r.path(h)),
        None => {
            r.err(
                Diag::error(format!("sync `{name}` has no host side"))
                    .label(at(s.name.span()), "no `host`")
                    .help("add `host \"~/.claude\"`"),
            );
            None
        }
    };
    let target = match (&s.volume, &s.service) {
        (Some(v), None) => {
            let ok = r.check_ref(Kind::Volume, &v.name, &role);
            let path = v
                .path
                .as_ref()
                .map(|p| container_path(r, p))
                .unwrap_or_else(|| "/".into());
            ok.then(|| SyncTarget::Volume {
                name: v.name.to_string(),
                path,
            })
        }
        (None, Some(svc)) => {
            let ok = r.check_ref(Kind::Service, &svc.name, &role);
            let path = match &svc.path {
                Some(p) => container_path(r, p),
                None => {
                    r.err(
                        Diag::error("a sync into a service needs path=")
                            .label(at(&svc.span), "no path")
                            .help("service \"claude\" path=\"/home/node/.claude\""),
                    );
                    String::new()
                }
            };
            ok.then(|| SyncTarget::Service {
                name: svc.name.to_string(),
                path,
            })
        }
        (Some(v), Some(_)) => {
            r.err(
                Diag::error(format!("sync `{name}` names both a volume and a service"))
                    .label(at(&v.span), "volume here")
                    .help("sync with one container side: `volume` or `service`"),
            );
            None
        }
        (None, None) => {
            r.err(
                Diag::error(format!("sync `{name}` has no container side"))
                    .label(at(s.name.span()), "no `volume` or `service`")
                    .help("add `volume \"claude-home\" path=\"/home/node/.claude\"`"),
            );
            None
        }
    };
    // Every rewrite must round-trip: two rules with one source or one target are ambiguous.
    let mut rewrites = Vec::new();
    let mut sources: HashMap<String, SourceSpan> = HashMap::new();
    let mut targets: HashMap<String, SourceSpan> = HashMap::new();
    for rw in &s.rewrites {
        if rw.from.is_empty() || rw.to.is_empty() {
            r.err(
                Diag::error("a rewrite needs a non-empty source and target")
                    .label(at(&rw.span), "empty rewrite"),
            );
            continue;
        }
        for (map, key, side) in [
            (&mut sources, rw.from.to_string(), "source"),
            (&mut targets, rw.to.to_string(), "target"),
        ] {
            if let Some(first) = map.insert(key.clone(), at(&rw.span)) {
                r.err(
                    Diag::error(format!(
                        "two rewrites share the {side} `{key}`, so the rewrite cannot be inverted"
                    ))
                    .label(at(&rw.span), "this rewrite")
                    .label(first, "clashes with this one")
                    .help("each rewrite must map one host prefix to one container prefix"),
                );
            }
        }
        rewrites.push((rw.from.to_string(), rw.to.to_string()));
    }
    // A KDL number (`0o600`) is the mode itself; a string ("0600") is octal text.
    let file_mode = s.file_mode.as_ref().and_then(|fm| {
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
    });
    Some(Sync {
        name,
        span: span(&s.name),
        description: s.description.clone(),
        host: host?,
        target: target?,
        mode: s.mode.unwrap_or(SyncMode::TwoWay),
        ignore: flatten_args(&s.ignore),
        rewrites,
        conflict: s.conflict.unwrap_or(ConflictPolicy::Fail),
        owner: s.owner.clone(),
        file_mode,
        quiet_period: s
            .quiet_period
            .unwrap_or(Duration(std::time::Duration::from_millis(500))),
        on_apply: s.on_apply.unwrap_or(false),
        depends_on,
    })
}

/// Two services may not publish the same host port (same protocol, overlapping address).
fn check_port_clashes(r: &mut Resolver, ports: &[(String, PortSpec, SourceSpan)]) {
    /// Who published a host port first: service, spec, place.
    type Published<'a> = (&'a String, &'a PortSpec, SourceSpan);
    let mut seen: HashMap<(u16, Protocol), Vec<Published>> = HashMap::new();
    for (svc, spec, s) in ports {
        let Some(host) = spec.host else { continue };
        let entry = seen.entry((host, spec.protocol)).or_default();
        let overlap = |a: &Option<String>, b: &Option<String>| {
            let wild =
                |x: &Option<String>| x.as_deref().is_none_or(|ip| ip == "0.0.0.0" || ip == "::");
            wild(a) || wild(b) || a == b
        };
        if let Some((first_svc, _, first_at)) = entry
            .iter()
            .find(|(_, p, _)| overlap(&p.host_ip, &spec.host_ip))
        {
            let msg = if *first_svc == svc {
                format!(
                    "service `{svc}` publishes host port {host}/{} twice",
                    spec.protocol
                )
            } else {
                format!(
                    "services `{first_svc}` and `{svc}` both publish host port {host}/{}",
                    spec.protocol
                )
            };
            r.err(
                Diag::error(msg)
                    .label(*s, "published again here")
                    .label(*first_at, "first published here")
                    .help("give one of them another host port"),
            );
        }
        entry.push((svc, spec, *s));
    }
}
