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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::base_store::BaseStore;
use super::container_side::{ContainerSide, WriteAttrs};
use super::container_tar::Owner;
use super::engine::SyncOptions;
use super::host_side::HostSide;
use super::model::{ConflictPolicy, Mode};
use super::rewrite::{RewriteError, Rule, RuleSet};
use crate::backend::{Backend, BackendError, ContainerSpec, ContainerState};
use crate::backend::{MountSource as BackendMount, MountSpec};
use crate::manifest::{Kind, Manifest, MountSource, NodeId, Sync, SyncTarget};
use crate::plan::names;

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

/// A prepared rule: both sides, the options and the base store. Holds the helper container
/// (if any) until [`Prepared::finish`] removes it.
pub struct Prepared {
    /// The rule's name.
    pub name: String,
    /// The host side.
    pub host: HostSide,
    /// The container side.
    pub container: ContainerSide,
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

/// Prepares rule `name` for passes: resolves both sides, starts the helper container for a
/// volume target. Call [`Prepared::finish`] afterwards.
pub async fn prepare(
    backend: Arc<dyn Backend>,
    handle: tokio::runtime::Handle,
    manifest: &Manifest,
    rule: &Sync,
) -> Result<Prepared, SetupError> {
    let name = rule.name.as_str();
    let project = manifest.project.name.as_str();
    let opts = options(rule)?;
    let attrs = write_attrs(rule)?;
    let store = base_store(&manifest.project.state_dir, name);
    let host = HostSide::new(&rule.host);
    let (container, root, helper) = match &rule.target {
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
            let volume = names::volume(project, vol);
            let labels = names::labels(
                project,
                &names::node_label(&NodeId::new(Kind::Volume, vol.clone())),
                None,
            );
            backend
                .ensure_volume(&volume, &labels)
                .await
                .map_err(docker(name, format!("ensuring volume {volume}")))?;
            let image = ensure_helper_image(backend.as_ref(), project, name).await?;
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
                labels: names::labels(project, &format!("sync:{name}"), None),
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
            let root = format!("{HELPER_MOUNT}{}", volume_subpath(manifest, vol, path));
            // The volume is the mount that must exist; a missing directory inside it is just
            // empty (and the engine's emptied-root rule still guards a recorded base).
            let cmd = vec!["mkdir".to_string(), "-p".into(), root.clone()];
            let res = backend
                .exec(&container, &cmd, &BTreeMap::new())
                .await
                .map_err(docker(name, format!("creating {root} in {container}")))?;
            if res.exit_code != 0 {
                let _ = backend.remove_container(&container, true).await;
                return Err(SetupError::HelperCommand {
                    name: name.to_string(),
                    doing: format!("creating {root} in {container}"),
                    output: res.output.trim().to_string(),
                });
            }
            (container.clone(), root, Some(container))
        }
    };
    let container = ContainerSide::new(backend.clone(), handle, container, root, attrs);
    Ok(Prepared {
        name: name.to_string(),
        host,
        container,
        opts,
        store,
        helper,
        backend,
    })
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
}
