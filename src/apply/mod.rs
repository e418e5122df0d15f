//! Apply: converge Docker to the manifest. The scheduler walks the apply graph
//! ([`crate::plan::apply_graph`]); [`ApplyExecutor`] realises each node — build or pull an
//! image, ensure a volume or network, create/replace/start a container and wait until it is
//! ready — deciding afresh from what it observes, so an apply without a saved plan, or after
//! an interruption, converges. Each finished node is recorded in the state store at once.

pub mod ready;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::backend::names;
use crate::backend::{Backend, BackendError, ContainerState};
use crate::exec::{Executor, NodeCtx, Outcome};
use crate::fingerprint::salt::Salt;
use crate::manifest::{Condition, Kind, Manifest, NodeId};
use crate::plan::desired;
use crate::state::{NodeRecord, RecordResult, StateFile};

/// Realises apply-graph nodes against a backend.
pub struct ApplyExecutor {
    pub manifest: Arc<Manifest>,
    pub backend: Arc<dyn Backend>,
    pub salt: Salt,
    /// Runs task nodes (tasks that prepare an image's context).
    pub tasks: Arc<dyn Executor<NodeId>>,
    /// Services something waits for (`healthy`), or all services with a health check.
    pub wait_ready: HashSet<String>,
    /// Services something waits for to exit successfully (`completed`).
    pub wait_complete: HashSet<String>,
    pub state: Mutex<StateFile>,
    pub state_path: PathBuf,
    /// Tags images resolved to in this run, for the services that use them.
    tags: Mutex<BTreeMap<String, String>>,
    /// Serialises ensuring the project's default network.
    default_network: tokio::sync::Mutex<()>,
}

impl ApplyExecutor {
    pub fn new(
        manifest: Arc<Manifest>,
        backend: Arc<dyn Backend>,
        salt: Salt,
        tasks: Arc<dyn Executor<NodeId>>,
        state: StateFile,
        state_path: PathBuf,
    ) -> Self {
        // Apply reports success only for services that are ready: every service with a
        // health check is probed, not only those another service waits for.
        let wait_ready = manifest
            .services
            .values()
            .filter(|s| s.health.is_some())
            .map(|s| s.name.clone())
            .collect();
        let wait_complete = manifest
            .services
            .values()
            .flat_map(|s| s.depends_on.iter())
            .chain(manifest.tasks.values().flat_map(|t| t.depends_on.iter()))
            .filter(|d| d.node.kind == Kind::Service && d.condition == Condition::Completed)
            .map(|d| d.node.name.clone())
            .collect();
        ApplyExecutor {
            manifest,
            backend,
            salt,
            tasks,
            wait_ready,
            wait_complete,
            state: Mutex::new(state),
            state_path,
            tags: Mutex::new(BTreeMap::new()),
            default_network: tokio::sync::Mutex::new(()),
        }
    }

    fn record(
        &self,
        id: &NodeId,
        fingerprint: &str,
        spec: serde_json::Value,
        result: RecordResult,
    ) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .record(
                &self.state_path,
                NodeRecord {
                    kind: id.kind.to_string(),
                    name: id.name.clone(),
                    fingerprint: fingerprint.to_string(),
                    spec,
                    finished_at: chrono::Utc::now(),
                    result,
                },
            )
            .map_err(|e| format!("cannot record {id} in the state store: {e}"))
    }

    fn result_of(outcome: &Outcome) -> RecordResult {
        match outcome {
            Outcome::Ran(_) => RecordResult::Ran,
            Outcome::Cached(_) => RecordResult::Cached,
            Outcome::UpToDate(_) => RecordResult::UpToDate,
            Outcome::Failed(m) => RecordResult::Failed { message: m.clone() },
        }
    }

    async fn image(&self, id: &NodeId, ctx: &NodeCtx) -> Result<Outcome, String> {
        let d = desired::image(&self.manifest, &id.name).map_err(|e| e.to_string())?;
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.name.clone(), d.tag.clone());
        let present = self
            .backend
            .inspect_image(&d.tag)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        let outcome = if present {
            Outcome::UpToDate(None)
        } else if let Some(build) = &d.build {
            let sink = |line: &str| ctx.emit(line);
            self.backend
                .build_image(build, &sink)
                .await
                .map_err(|e| e.to_string())?;
            Outcome::Ran(Some(format!("built {}", d.tag)))
        } else {
            ctx.emit(&format!("pulling {}", d.tag));
            self.backend
                .pull_image(&d.tag)
                .await
                .map_err(|e| e.to_string())?;
            Outcome::Ran(Some(format!("pulled {}", d.tag)))
        };
        self.record(
            id,
            &d.fingerprint,
            serde_json::json!({ "tag": d.tag }),
            Self::result_of(&outcome),
        )?;
        Ok(outcome)
    }

    /// Ensures a volume or network exists; both are identified by name alone.
    async fn named_object(&self, id: &NodeId) -> Result<Outcome, String> {
        let project = &self.manifest.project.name;
        let labels = names::labels(project, &id.to_string(), None);
        let (name, ensured) = if id.kind == Kind::Volume {
            let name = names::volume(project, &id.name);
            let ensured = self.backend.ensure_volume(&name, &labels).await;
            (name, ensured)
        } else {
            let name = names::network(project, &id.name);
            let ensured = self.backend.ensure_network(&name, &labels).await;
            (name, ensured)
        };
        let outcome = match ensured.map_err(|e| e.to_string())? {
            crate::backend::Ensured::Created => Outcome::Ran(Some(format!("created {name}"))),
            crate::backend::Ensured::AlreadyExisted => Outcome::UpToDate(None),
        };
        self.record(
            id,
            "",
            serde_json::json!({ "name": name }),
            Self::result_of(&outcome),
        )?;
        Ok(outcome)
    }

    async fn service(&self, id: &NodeId, ctx: &NodeCtx) -> Result<Outcome, String> {
        let m = &self.manifest;
        let svc = &m.services[&id.name];
        let tag = {
            let tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
            desired::image_tag(&svc.image, &tags)
        };
        // The image node ran earlier in this walk unless only the service was targeted.
        let tag = match tag {
            Some(t) => t,
            None => match &svc.image {
                crate::manifest::ImageRef::Declared(n) => {
                    desired::image(m, n).map_err(|e| e.to_string())?.tag
                }
                crate::manifest::ImageRef::External(r) => r.clone(),
            },
        };
        let d = desired::container(m, svc, &tag, &self.salt).map_err(|e| e.to_string())?;
        let name = d.spec.name.clone();
        if d.uses_default_network {
            // Services start in parallel; Docker allows two networks of one name, so two
            // concurrent check-then-create calls would make the name ambiguous.
            let _one_at_a_time = self.default_network.lock().await;
            let net = names::default_network(&m.project.name);
            let labels = names::labels(&m.project.name, "network.default", None);
            self.backend
                .ensure_network(&net, &labels)
                .await
                .map_err(|e| e.to_string())?;
        }
        let observed = self
            .backend
            .inspect_container(&name)
            .await
            .map_err(|e| e.to_string())?;
        // A container left by a failed or interrupted apply is replaced, as the plan says.
        let retry = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            crate::plan::retry_reason(state.get("service", &id.name), &d.fingerprint)
        };
        let mut detail = None;
        match observed {
            Some(c)
                if retry.is_none()
                    && c.labels.get(names::LABEL_FINGERPRINT) == Some(&d.fingerprint) =>
            {
                match c.state {
                    ContainerState::Running => {}
                    ContainerState::Paused => {
                        self.backend
                            .unpause_container(&name)
                            .await
                            .map_err(|e| e.to_string())?;
                        detail = Some("unpaused".to_string());
                    }
                    _ => {
                        self.start(&name, svc).await?;
                        detail = Some("started".to_string());
                    }
                }
            }
            Some(c) => {
                if c.labels.get(names::LABEL_PROJECT) != Some(&m.project.name) {
                    return Err(format!(
                        "a container named {name} exists and does not belong to project {}; remove or rename it",
                        m.project.name
                    ));
                }
                ctx.emit(&format!("replacing {name}"));
                self.backend
                    .stop_container(&name, svc.stop_timeout.0)
                    .await
                    .map_err(|e| e.to_string())?;
                self.backend
                    .remove_container(&name, true)
                    .await
                    .map_err(|e| e.to_string())?;
                self.backend
                    .create_container(&d.spec)
                    .await
                    .map_err(|e| e.to_string())?;
                self.start(&name, svc).await?;
                detail = Some("replaced".to_string());
            }
            None => {
                self.backend
                    .create_container(&d.spec)
                    .await
                    .map_err(|e| e.to_string())?;
                self.start(&name, svc).await?;
                detail = Some("created".to_string());
            }
        }
        if let (Some(h), true) = (&svc.health, self.wait_ready.contains(&svc.name)) {
            ready::wait_ready(
                self.backend.as_ref(),
                &svc.name,
                &name,
                &h.test,
                svc.ready_timeout.0,
                ctx.cancel(),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        if self.wait_complete.contains(&svc.name) {
            let deadline = Instant::now() + svc.ready_timeout.0;
            let code = self
                .backend
                .wait_exit(&name, deadline)
                .await
                .map_err(|e| e.to_string())?;
            if code != 0 {
                return Err(format!("service `{}` exited with code {code}; dependents wait for it to complete successfully", svc.name));
            }
        }
        let outcome = match detail {
            Some(d) => Outcome::Ran(Some(d)),
            None => Outcome::UpToDate(None),
        };
        self.record(
            id,
            &d.fingerprint,
            d.public.clone(),
            Self::result_of(&outcome),
        )?;
        Ok(outcome)
    }

    async fn start(&self, name: &str, svc: &crate::manifest::Service) -> Result<(), String> {
        match self.backend.start_container(name).await {
            Ok(()) => Ok(()),
            Err(BackendError::PortInUse { port, .. }) => {
                // Leave no half-started container behind: the next apply creates it afresh.
                let _ = self.backend.remove_container(name, true).await;
                Err(format!(
                    "service `{}` cannot start: host port {port} is already in use by another process or container",
                    svc.name
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Executor<NodeId> for ApplyExecutor {
    fn execute<'a>(&'a self, node: &'a NodeId, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
        async move {
            let result = match node.kind {
                Kind::Image => self.image(node, ctx).await,
                Kind::Volume | Kind::Network => self.named_object(node).await,
                Kind::Service => self.service(node, ctx).await,
                Kind::Task => return self.tasks.execute(node, ctx).await,
                other => Err(format!("apply does not realise {other} nodes")),
            };
            result.unwrap_or_else(|message| {
                // Keep what was last realised, so the next plan can still say what changed.
                let previous = {
                    let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.get(node.kind.as_str(), &node.name).cloned()
                };
                let (fp, spec) = previous
                    .map(|r| (r.fingerprint, r.spec))
                    .unwrap_or_default();
                let _ = self.record(
                    node,
                    &fp,
                    spec,
                    RecordResult::Failed {
                        message: message.clone(),
                    },
                );
                Outcome::Failed(message)
            })
        }
        .boxed()
    }
}
