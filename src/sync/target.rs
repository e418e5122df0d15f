//! From a manifest `sync` rule to the two sides, the options and the base store of a pass.
//!
//! A `service` target syncs with the service's own container (`<project>-<service>`), which
//! must be running. A `volume` target syncs through a helper container that mounts the
//! volume at `/sync` and runs `sleep` while the sync lasts (Docker's `exec` needs a running
//! container); it is built from `<project>-sanctuary-helper`, an image of the static busybox
//! built once from the host's `/bin/busybox`, and labelled with the project so `destroy`
//! and test cleanups find it. The volume `path=` is read as the path in a service that
//! mounts the volume when one does (`/home/node/.claude` in a volume mounted at
//! `/home/node` is `.claude` in the volume), else as a path inside the volume.
//!
//! A rule syncs a single file (see [`decide_root_kind`]) when the host path is a regular
//! file; when it is missing, when the base recorded a file rule; when the base is empty too,
//! when the container path is a file. Otherwise it syncs a directory. A host path that is a
//! symlink to a directory is that directory (as before); a symlink to anything else is
//! refused, since a file rule replaces its file by rename and would silently turn the link
//! into a plain file.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::base_store::{BaseState, BaseStore, BaseStoreError};
use super::container_side::{ContainerSide, WriteAttrs};
use super::container_tar::Owner;
use super::engine::SyncOptions;
use super::file_side::FileSide;
use super::host_side::HostSide;
use super::model::{ConflictPolicy, EntryKind, Mode, RelPath, RootKind};
use super::rewrite::{RewriteError, Rule, RuleSet};
use super::side::Side;
use crate::backend::names;
use crate::backend::{Backend, BackendError, ContainerSpec, ContainerState};
use crate::backend::{MountSource as BackendMount, MountSpec};
use crate::manifest::{Kind, Manifest, MountSource, NodeId, Sync, SyncTarget};

/// Where the helper container mounts a synced volume.
pub const HELPER_MOUNT: &str = "/sync";

/// Preparing a sync rule failed before any pass ran.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The rule's rewrites are not usable.
    #[error("sync `{name}`: invalid rewrite rules")]
    Rules {
        /// The rule.
        name: String,
        /// The cause.
        source: RewriteError,
    },
    /// `owner` is not numeric.
    #[error("sync `{name}`: {message}")]
    Owner {
        /// The rule.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest value does not map onto the engine's (should not happen once validated).
    #[error("sync `{name}`: {message}")]
    Option {
        /// The rule.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The service container is missing or stopped.
    #[error("sync `{name}`: container `{container}` of service `{service}` is {state}; start it with `sanctuary apply`")]
    ServiceNotRunning {
        /// The rule.
        name: String,
        /// The service.
        service: String,
        /// Its container.
        container: String,
        /// "missing" or its state.
        state: String,
    },
    /// The helper image cannot be built without a static busybox on the host.
    #[error("sync `{name}`: cannot build the helper image {tag}: {reason}")]
    HelperImage {
        /// The rule.
        name: String,
        /// The image tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// A command in the helper container failed.
    #[error("sync `{name}`: {doing} failed: {output}")]
    HelperCommand {
        /// The rule.
        name: String,
        /// What was being done.
        doing: String,
        /// The command's output.
        output: String,
    },
    /// The host path is a symlink that does not lead to a directory.
    #[error("sync `{name}`: host path {} is a symbolic link; name the file it points to instead (a sync never follows a link)", .path.display())]
    HostSymlink {
        /// The rule.
        name: String,
        /// The host path.
        path: PathBuf,
    },
    /// The host path could not be inspected.
    #[error("sync `{name}`: cannot inspect host path {}", .path.display())]
    HostPath {
        /// The rule.
        name: String,
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The rule's base could not be read to decide whether it syncs a file.
    #[error("sync `{name}`: cannot read its recorded base")]
    Base {
        /// The rule.
        name: String,
        /// The cause.
        source: BaseStoreError,
    },
    /// A Docker operation failed.
    #[error("sync `{name}`: {doing}")]
    Docker {
        /// The rule.
        name: String,
        /// What was being done.
        doing: String,
        /// The cause.
        source: Box<BackendError>,
    },
}

/// The engine options a rule asks for.
pub fn options(rule: &Sync) -> Result<SyncOptions, SetupError> {
    let bad = |message: String| SetupError::Option {
        name: rule.name.clone(),
        message,
    };
    let mode: Mode = rule
        .mode
        .to_string()
        .parse()
        .map_err(|e| bad(format!("{e}")))?;
    let policy: ConflictPolicy = rule
        .conflict
        .to_string()
        .parse()
        .map_err(|e| bad(format!("{e}")))?;
    let rules = RuleSet::new(
        rule.rewrites
            .iter()
            .map(|(h, c)| Rule::new(h.clone(), c.clone()))
            .collect(),
    )
    .map_err(|source| SetupError::Rules {
        name: rule.name.clone(),
        source,
    })?;
    Ok(SyncOptions {
        mode,
        policy,
        rules,
        ignore: rule.ignore.clone(),
        quiet_period: rule.quiet_period.0,
        ..SyncOptions::default()
    })
}

/// How files written in the container are owned.
pub fn write_attrs(rule: &Sync) -> Result<WriteAttrs, SetupError> {
    let owner = match &rule.owner {
        Some(o) => Some(o.parse::<Owner>().map_err(|message| SetupError::Owner {
            name: rule.name.clone(),
            message,
        })?),
        None => None,
    };
    Ok(WriteAttrs {
        owner,
        file_mode: rule.file_mode,
    })
}

/// Whether a rule's host side moved since its last pass, read from the host alone (no
/// engine): `Some(reason)` when it did, when the rule never ran, or when its host root is
/// gone; `None` when every host entry matches the base. Apply uses it to run an `on-apply`
/// rule only when there is something to carry into the container.
pub fn host_pending(manifest: &Manifest, rule: &Sync) -> Result<Option<String>, String> {
    let store = base_store(&manifest.project.state_dir, &rule.name);
    let base = store.load().map_err(|e| e.to_string())?;
    if base.entries.is_empty() {
        return Ok(Some("never synced".to_string()));
    }
    let opts = options(rule).map_err(|e| e.to_string())?;
    let host: Box<dyn Side> = match base.root {
        RootKind::Dir => Box::new(HostSide::new(&rule.host)),
        RootKind::File => Box::new(
            FileSide::host(&rule.host)
                .ok_or_else(|| format!("host path {} names no file", rule.host.display()))?,
        ),
    };
    if !host.root_exists().map_err(|e| e.to_string())? {
        return Ok(Some(format!("{} is missing", host.describe())));
    }
    let ignore = crate::sync::engine::build_ignore(&opts.ignore).map_err(|e| e.to_string())?;
    let mut cache = base.host_cache.clone();
    let snap = host
        .scan(&ignore, None, &mut cache)
        .map_err(|e| e.to_string())?;
    let changed = snap
        .keys()
        .chain(base.entries.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|p| !crate::sync::model::same_opt(base.entries.get(*p), snap.get(*p)))
        .count();
    Ok(match changed {
        0 => None,
        1 => Some("1 host entry changed since the last pass".to_string()),
        n => Some(format!("{n} host entries changed since the last pass")),
    })
}

/// The directory where a rule's base and last-pass record live.
pub fn rule_dir(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("sync").join(name)
}

/// The base store of a rule (`<state>/sync/<name>/base.json`).
pub fn base_store(state_dir: &Path, name: &str) -> BaseStore {
    BaseStore::at(rule_dir(state_dir, name).join("base.json"))
}

/// The path inside the volume that `path` names: relative to the deepest mount target of
/// `volume` in any service that is a prefix of `path`, else `path` itself. Always returns a
/// `/`-led path without a trailing slash (empty for the volume's root).
pub fn volume_subpath(manifest: &Manifest, volume: &str, path: &str) -> String {
    let mut best: Option<&str> = None;
    for svc in manifest.services.values() {
        for m in &svc.mounts {
            if m.source != MountSource::Volume(volume.to_string()) {
                continue;
            }
            let target = m.target.trim_end_matches('/');
            let inside = path == target
                || target.is_empty()
                || path
                    .strip_prefix(target)
                    .is_some_and(|rest| rest.starts_with('/'));
            if inside && best.is_none_or(|b| target.len() > b.len()) {
                best = Some(target);
            }
        }
    }
    let rest = match best {
        Some(t) => &path[t.len()..],
        None => path,
    };
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        String::new()
    } else {
        format!("/{rest}")
    }
}

use crate::backend::helper::helper_image;

/// The helper container's name for a rule.
pub fn helper_container(project: &str, rule: &str) -> String {
    format!("{project}-sanctuary-sync-{rule}")
}

/// What `--watch` watches on the host for a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWatch {
    /// The directory to watch.
    pub dir: PathBuf,
    /// Watch `dir` recursively (a directory rule) or only its own entries (a file rule).
    pub recursive: bool,
    /// For a file rule, the file: events about other paths in `dir` are ignored.
    pub only: Option<PathBuf>,
}

impl HostWatch {
    /// Whether an event about `paths` concerns the rule.
    pub fn wants(&self, paths: &[PathBuf]) -> bool {
        match &self.only {
            None => true,
            // An event without paths (a rescan request) may concern anything.
            Some(file) => paths.is_empty() || paths.iter().any(|p| p == file),
        }
    }
}

/// A prepared rule: both sides, the options and the base store. Holds the helper container
/// (if any) until [`Prepared::finish`] removes it.
pub struct Prepared {
    /// The rule's name.
    pub name: String,
    /// The host side: a directory, or a single file.
    pub host: Box<dyn Side>,
    /// The container side: a directory, or a single file.
    pub container: Box<dyn Side>,
    /// What `--watch` watches.
    pub watch: HostWatch,
    /// Engine options.
    pub opts: SyncOptions,
    /// Where the base lives.
    pub store: BaseStore,
    helper: Option<String>,
    backend: Arc<dyn Backend>,
}

impl Prepared {
    /// Removes the helper container, if this rule started one.
    pub async fn finish(mut self) -> Result<(), BackendError> {
        match self.helper.take() {
            Some(h) => self.backend.remove_container(&h, true).await,
            None => Ok(()),
        }
    }
}

fn docker(name: &str, doing: impl Into<String>) -> impl FnOnce(BackendError) -> SetupError {
    let (name, doing) = (name.to_string(), doing.into());
    move |source| SetupError::Docker {
        name,
        doing,
        source: Box::new(source),
    }
}

async fn ensure_helper_image(
    backend: &dyn Backend,
    project: &str,
    rule: &str,
) -> Result<String, SetupError> {
    crate::backend::helper::ensure_helper_image(backend, project)
        .await
        .map_err(|reason| SetupError::HelperImage {
            name: rule.to_string(),
            tag: helper_image(project),
            reason,
        })
}

/// What is at a rule's host path, as far as choosing its [`RootKind`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLook {
    /// Nothing.
    Missing,
    /// A regular file.
    File,
    /// A directory, or a symlink to one.
    Dir,
    /// A symlink to something other than a directory (or dangling).
    OtherLink,
    /// A socket, fifo or device.
    Special,
}

/// Looks at the host path without following it, except to tell a linked directory.
pub fn look_at_host(path: &Path) -> io::Result<HostLook> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HostLook::Missing),
        Err(e) => return Err(e),
    };
    let ft = md.file_type();
    Ok(if ft.is_symlink() {
        // A directory root has always been followed once (only entries below it are not).
        match std::fs::metadata(path) {
            Ok(t) if t.is_dir() => HostLook::Dir,
            _ => HostLook::OtherLink,
        }
    } else if ft.is_dir() {
        HostLook::Dir
    } else if ft.is_file() {
        HostLook::File
    } else {
        HostLook::Special
    })
}

/// What the host path and the base say about a rule's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The rule is this kind.
    Kind(RootKind),
    /// Neither tells: the container path decides (see [`root_kind_from_container`]).
    AskContainer,
    /// The host path is a symlink that is not a directory: refused.
    HostIsLink,
}

/// Whether a rule syncs a directory or a file, from what is on the host and in the base.
/// A special file is left to the directory rule, whose "root does not exist" halt names it.
pub fn decide_root_kind(host: HostLook, base: &BaseState) -> Decision {
    match host {
        HostLook::File => Decision::Kind(RootKind::File),
        HostLook::Dir | HostLook::Special => Decision::Kind(RootKind::Dir),
        HostLook::OtherLink => Decision::HostIsLink,
        // A recorded rule keeps its kind: a deleted host file is a deletion to propagate
        // (or not, per mode), never a directory root gone missing.
        HostLook::Missing if base.root == RootKind::File || !base.entries.is_empty() => {
            Decision::Kind(base.root)
        }
        HostLook::Missing => Decision::AskContainer,
    }
}

/// The kind of a rule whose host path and base say nothing: a file when the container path is
/// one (so a file that so far exists only in the container can be synced to the host).
pub fn root_kind_from_container(container: Option<EntryKind>) -> RootKind {
    match container {
        Some(EntryKind::File) => RootKind::File,
        _ => RootKind::Dir,
    }
}

/// Splits an absolute container path into its parent directory and its file name.
fn split_file_path(path: &str) -> Option<(String, RelPath)> {
    let (parent, name) = path.trim_end_matches('/').rsplit_once('/')?;
    let name = RelPath::new(name).ok()?;
    let parent = if parent.is_empty() { "/" } else { parent };
    Some((parent.to_string(), name))
}

/// Prints `file`, `dir`, `symlink` or `absent` for `$1`.
const LOOK_SCRIPT: &str = r#"if [ -L "$1" ]; then echo symlink; elif [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo absent; fi"#;

async fn look_in_container(
    backend: &dyn Backend,
    rule: &str,
    container: &str,
    path: &str,
) -> Result<Option<EntryKind>, SetupError> {
    let cmd = vec![
        "sh".to_string(),
        "-c".into(),
        LOOK_SCRIPT.into(),
        "sh".into(),
        path.to_string(),
    ];
    let doing = format!("looking at {path} in {container}");
    let res = backend
        .exec(container, &cmd, &BTreeMap::new())
        .await
        .map_err(docker(rule, doing.clone()))?;
    match (res.exit_code, res.output.trim()) {
        (0, "file") => Ok(Some(EntryKind::File)),
        (0, "dir") => Ok(Some(EntryKind::Dir)),
        (0, "symlink") => Ok(Some(EntryKind::Symlink)),
        (0, "absent") => Ok(None),
        (_, out) => Err(SetupError::HelperCommand {
            name: rule.to_string(),
            doing,
            output: out.to_string(),
        }),
    }
}

/// Prepares rule `name` for passes: decides whether it syncs a directory or a file,
/// resolves both sides, starts the helper container for a volume target. Call
/// [`Prepared::finish`] afterwards.
pub async fn prepare(
    backend: Arc<dyn Backend>,
    handle: tokio::runtime::Handle,
    manifest: &Manifest,
    rule: &Sync,
    stop: CancellationToken,
) -> Result<Prepared, SetupError> {
    let name = rule.name.as_str();
    let project = manifest.project.name.as_str();
    let mut opts = options(rule)?;
    let attrs = write_attrs(rule)?;
    let store = base_store(&manifest.project.state_dir, name);
    let base = store.load().map_err(|source| SetupError::Base {
        name: name.to_string(),
        source,
    })?;
    let look = look_at_host(&rule.host).map_err(|source| SetupError::HostPath {
        name: name.to_string(),
        path: rule.host.clone(),
        source,
    })?;
    let decided = match decide_root_kind(look, &base) {
        Decision::Kind(k) => Some(k),
        Decision::AskContainer => None,
        Decision::HostIsLink => {
            return Err(SetupError::HostSymlink {
                name: name.to_string(),
                path: rule.host.clone(),
            })
        }
    };
    let (container, path, helper) = match &rule.target {
        SyncTarget::Service { name: svc, path } => {
            let container = names::container(project, svc);
            let info = backend
                .inspect_container(&container)
                .await
                .map_err(docker(name, format!("inspecting container {container}")))?;
            let state = match info {
                None => Some("missing".to_string()),
                Some(i) if i.state != ContainerState::Running => Some(format!("{:?}", i.state)),
                Some(_) => None,
            };
            if let Some(state) = state {
                return Err(SetupError::ServiceNotRunning {
                    name: name.to_string(),
                    service: svc.clone(),
                    container,
                    state: state.to_lowercase(),
                });
            }
            (container, path.clone(), None)
        }
        SyncTarget::Volume { name: vol, path } => {
            let container = start_helper(backend.as_ref(), manifest, rule, vol).await?;
            let path = format!("{HELPER_MOUNT}{}", volume_subpath(manifest, vol, path));
            (container.clone(), path, Some(container))
        }
    };
    opts.stop = Some(stop.clone());
    let sides = make_sides(
        &backend,
        (handle, stop),
        rule,
        decided,
        &container,
        &path,
        attrs,
    );
    let (host, container_side, root, watch) = match sides.await {
        Ok(s) => s,
        Err(e) => {
            if let Some(h) = &helper {
                let _ = backend.remove_container(h, true).await;
            }
            return Err(e);
        }
    };
    opts.root = root;
    Ok(Prepared {
        name: name.to_string(),
        host,
        container: container_side,
        watch,
        opts,
        store,
        helper,
        backend,
    })
}

/// Both sides of a rule, its kind and what to watch, once the container is up.
type Sides = (Box<dyn Side>, Box<dyn Side>, RootKind, HostWatch);

async fn make_sides(
    backend_arc: &Arc<dyn Backend>,
    (handle, stop): (tokio::runtime::Handle, CancellationToken),
    rule: &Sync,
    decided: Option<RootKind>,
    container: &str,
    path: &str,
    attrs: WriteAttrs,
) -> Result<Sides, SetupError> {
    let name = rule.name.as_str();
    let backend = backend_arc.as_ref();
    let kind = match decided {
        Some(k) => k,
        None => root_kind_from_container(look_in_container(backend, name, container, path).await?),
    };
    let is_volume = matches!(rule.target, SyncTarget::Volume { .. });
    match kind {
        RootKind::Dir => {
            if is_volume {
                // The volume is the mount that must exist; a missing directory inside it is
                // just empty (and the engine's emptied-root rule still guards a recorded base).
                mkdir_p(backend, name, container, path).await?;
            }
            let host = HostSide::new(&rule.host);
            let side = ContainerSide::new(backend_arc.clone(), handle, container, path, attrs)
                .with_stop(stop);
            let watch = HostWatch {
                dir: rule.host.clone(),
                recursive: true,
                only: None,
            };
            Ok((Box::new(host), Box::new(side), kind, watch))
        }
        RootKind::File => {
            let bad = |message: String| SetupError::Option {
                name: name.to_string(),
                message,
            };
            let host = FileSide::host(&rule.host).ok_or_else(|| {
                bad(format!(
                    "host path {} has no file name to sync",
                    rule.host.display()
                ))
            })?;
            let split = split_file_path(path).filter(|_| !(is_volume && path == HELPER_MOUNT));
            let Some((parent, local)) = split else {
                return Err(bad(format!(
                    "the host path {} is a file, so the container path must name a file, not {}",
                    rule.host.display(),
                    if is_volume { "the volume's root" } else { path }
                )));
            };
            if is_volume {
                mkdir_p(backend, name, container, &parent).await?;
            }
            let inner = ContainerSide::new(
                backend_arc.clone(),
                handle,
                container,
                parent.clone(),
                attrs,
            )
            .with_stop(stop);
            let describe = format!("container file {container}:{path}");
            let shared = host.shared_name().clone();
            let side = FileSide::new(inner, shared, local, describe);
            let dir = rule.host.parent().unwrap_or(Path::new("/")).to_path_buf();
            let watch = HostWatch {
                dir,
                recursive: false,
                only: Some(rule.host.clone()),
            };
            Ok((Box::new(host), Box::new(side), kind, watch))
        }
    }
}

async fn mkdir_p(
    backend: &dyn Backend,
    name: &str,
    container: &str,
    dir: &str,
) -> Result<(), SetupError> {
    let cmd = vec!["mkdir".to_string(), "-p".into(), dir.to_string()];
    let doing = format!("creating {dir} in {container}");
    let res = backend
        .exec(container, &cmd, &BTreeMap::new())
        .await
        .map_err(docker(name, doing.clone()))?;
    if res.exit_code != 0 {
        return Err(SetupError::HelperCommand {
            name: name.to_string(),
            doing,
            output: res.output.trim().to_string(),
        });
    }
    Ok(())
}

/// Ensures the volume and starts the helper container that mounts it; its name.
async fn start_helper(
    backend: &dyn Backend,
    manifest: &Manifest,
    rule: &Sync,
    vol: &str,
) -> Result<String, SetupError> {
    let name = rule.name.as_str();
    let project = manifest.project.name.as_str();
    let volume = names::volume(project, vol);
    let labels = names::labels(
        project,
        &names::node_label(&NodeId::new(Kind::Volume, vol.to_string())),
        None,
    );
    backend
        .ensure_volume(&volume, &labels)
        .await
        .map_err(docker(name, format!("ensuring volume {volume}")))?;
    let image = ensure_helper_image(backend, project, name).await?;
    let container = helper_container(project, name);
    // A helper left behind by an interrupted sync is replaced, not reused: its mounts
    // may be stale.
    if backend
        .inspect_container(&container)
        .await
        .map_err(docker(name, format!("inspecting container {container}")))?
        .is_some()
    {
        backend
            .remove_container(&container, true)
            .await
            .map_err(docker(name, format!("removing stale helper {container}")))?;
    }
    let spec = ContainerSpec {
        name: container.clone(),
        image,
        command: Some(vec!["sleep".into(), "2147483".into()]),
        mounts: vec![MountSpec {
            source: BackendMount::Volume(volume.clone()),
            target: HELPER_MOUNT.into(),
            read_only: false,
        }],
        // Owned by this process: an apply meanwhile leaves it alone while it lives.
        labels: names::owned(names::labels(project, &format!("sync:{name}"), None)),
        ..ContainerSpec::default()
    };
    backend.create_container(&spec).await.map_err(docker(
        name,
        format!("creating helper container {container}"),
    ))?;
    backend.start_container(&container).await.map_err(docker(
        name,
        format!("starting helper container {container}"),
    ))?;
    Ok(container)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(kdl: &str) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Sanctuary.kdl");
        std::fs::write(&path, kdl).unwrap();
        crate::manifest::load(&path).unwrap().manifest
    }

    #[test]
    fn volume_paths_are_read_through_the_deepest_service_mount() {
        let m = manifest(
            r#"project "p"
volume "home"
image "i" { reference "busybox:latest"; }
service "a" { image "i"; mount "home" "/home/node"; }
service "b" { image "i"; mount "home" "/home/node/.cache/x"; }
"#,
        );
        assert_eq!(volume_subpath(&m, "home", "/home/node/.claude"), "/.claude");
        assert_eq!(volume_subpath(&m, "home", "/home/node"), "");
        assert_eq!(volume_subpath(&m, "home", "/home/node/.cache/x/y"), "/y");
        // Not under any mount: a path inside the volume.
        assert_eq!(volume_subpath(&m, "home", "/data/x/"), "/data/x");
        assert_eq!(volume_subpath(&m, "home", "/home/nodejs"), "/home/nodejs");
        assert_eq!(volume_subpath(&m, "other", "/"), "");
    }

    #[test]
    fn rule_options_follow_the_manifest() {
        let m = manifest(
            r#"project "p"
volume "v"
sync "s" {
    host "./h"
    volume "v" path="/x"
    mode "to-container"
    conflict "prefer-host"
    ignore "*.log"
    rewrite "/Users/a/" "/home/node/"
    owner "1000:1000"
    file-mode "0600"
    quiet-period "1s"
}
sync "bad" {
    host "./h"
    volume "v"
    owner "node"
}
"#,
        );
        let rule = &m.syncs["s"];
        let o = options(rule).unwrap();
        assert_eq!(o.mode, Mode::ToContainer);
        assert_eq!(o.policy, ConflictPolicy::PreferHost);
        assert_eq!(o.ignore, ["*.log"]);
        assert_eq!(o.rules.rules().len(), 1);
        assert_eq!(o.quiet_period, std::time::Duration::from_secs(1));
        let a = write_attrs(rule).unwrap();
        assert_eq!(
            a.owner,
            Some(Owner {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(a.file_mode, Some(0o600));
        let err = write_attrs(&m.syncs["bad"]).unwrap_err();
        assert!(err.to_string().contains("`node`"), "{err}");
        assert!(base_store(Path::new("/s"), "s")
            .path()
            .ends_with("sync/s/base.json"));
    }

    #[test]
    fn the_host_path_then_the_base_then_the_container_decide_the_kind() {
        let empty = BaseState::default();
        let file_base = BaseState {
            root: RootKind::File,
            ..BaseState::default()
        };
        let mut dir_base = BaseState::default();
        dir_base.entries.insert(
            RelPath::new("a").unwrap(),
            crate::sync::Entry {
                kind: EntryKind::File,
                hash: "h".into(),
                size: 1,
                mode: 0o644,
                mtime: 0,
            },
        );
        let file = Decision::Kind(RootKind::File);
        let dir = Decision::Kind(RootKind::Dir);
        assert_eq!(decide_root_kind(HostLook::File, &empty), file);
        assert_eq!(decide_root_kind(HostLook::File, &dir_base), file);
        assert_eq!(decide_root_kind(HostLook::Dir, &file_base), dir);
        assert_eq!(decide_root_kind(HostLook::Special, &empty), dir);
        assert_eq!(
            decide_root_kind(HostLook::OtherLink, &empty),
            Decision::HostIsLink
        );
        // A deleted host file stays a file rule; a vanished directory stays a directory rule.
        assert_eq!(decide_root_kind(HostLook::Missing, &file_base), file);
        assert_eq!(decide_root_kind(HostLook::Missing, &dir_base), dir);
        assert_eq!(
            decide_root_kind(HostLook::Missing, &empty),
            Decision::AskContainer
        );
        assert_eq!(
            root_kind_from_container(Some(EntryKind::File)),
            RootKind::File
        );
        assert_eq!(
            root_kind_from_container(Some(EntryKind::Dir)),
            RootKind::Dir
        );
        assert_eq!(
            root_kind_from_container(Some(EntryKind::Symlink)),
            RootKind::Dir
        );
        assert_eq!(root_kind_from_container(None), RootKind::Dir);
    }

    #[test]
    fn host_paths_are_looked_at_without_following_links_to_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.json");
        std::fs::write(&f, "{}").unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        let to_file = dir.path().join("lf");
        let to_dir = dir.path().join("ld");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(&f, &to_file).unwrap();
        std::os::unix::fs::symlink(&d, &to_dir).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nope"), &dangling).unwrap();
        assert_eq!(look_at_host(&f).unwrap(), HostLook::File);
        assert_eq!(look_at_host(&d).unwrap(), HostLook::Dir);
        assert_eq!(look_at_host(&to_dir).unwrap(), HostLook::Dir);
        assert_eq!(look_at_host(&to_file).unwrap(), HostLook::OtherLink);
        assert_eq!(look_at_host(&dangling).unwrap(), HostLook::OtherLink);
        assert_eq!(
            look_at_host(&dir.path().join("missing")).unwrap(),
            HostLook::Missing
        );
    }

    #[test]
    fn container_file_paths_split_into_parent_and_name() {
        let (parent, name) = split_file_path("/sync/.claude.json").unwrap();
        assert_eq!((parent.as_str(), name.as_str()), ("/sync", ".claude.json"));
        let (parent, name) = split_file_path("/x").unwrap();
        assert_eq!((parent.as_str(), name.as_str()), ("/", "x"));
        assert!(split_file_path("/").is_none());
        assert!(split_file_path("/a/..").is_none());
    }

    #[test]
    fn a_file_rule_watch_keeps_only_events_about_its_file() {
        let w = HostWatch {
            dir: PathBuf::from("/h"),
            recursive: false,
            only: Some(PathBuf::from("/h/.claude.json")),
        };
        assert!(w.wants(&[PathBuf::from("/h/.claude.json")]));
        assert!(!w.wants(&[PathBuf::from("/h/.bashrc")]));
        assert!(w.wants(&[]));
        let all = HostWatch {
            dir: PathBuf::from("/h"),
            recursive: true,
            only: None,
        };
        assert!(all.wants(&[PathBuf::from("/h/x")]));
    }
}
