//! Blue-green services (`update "blue-green"`): the new container starts beside the old one,
//! is waited for until its health check passes, takes the traffic, and the old one is drained
//! and removed. Traffic reaches the live container through the service's proxy
//! (`<project>-<service>-proxy`, see [`crate::proxy`]), which holds the service's published
//! ports and its name on the project's networks; the service's own containers publish nothing
//! and answer only to their container names.
//!
//! The live container is always named `<project>-<service>`, as for any service, so status,
//! logs, backups and history find it where they always do. The new one starts as
//! `…-next`, and is renamed once the old one is gone (or kept stopped as `…-previous` with
//! `keep-previous`). The proxy's upstream is the truth about which one is live: a run killed
//! between the switch and the rename is finished by the next apply, one killed before the
//! switch has its `-next` removed.

use std::time::{Duration, Instant};

use crate::backend::{
    names, Backend, BackendError, ContainerInfo, ContainerSpec, ContainerState, HealthCheck,
    RestartPolicy,
};
use crate::engine::Walk;
use crate::exec::{Failure, FailureClass, NodeCtx};
use crate::manifest::{Service, Update};
use crate::plan::desired::DesiredContainer;
use crate::proxy::{control, Upstream};

use super::{engine_failure, ready};

/// The colour of a blue-green container, for `status`.
pub const LABEL_COLOUR: &str = "sanctuary.colour";
/// Marks the proxy container of a service.
pub const LABEL_ROLE: &str = "sanctuary.role";
/// What the proxy was made for (ports and networks), so a change recreates it.
const LABEL_PROXY_SPEC: &str = "sanctuary.proxy-spec";

/// How long a new proxy may take to answer on its control socket.
const PROXY_START: Duration = Duration::from_secs(20);

pub fn proxy_name(project: &str, service: &str) -> String {
    format!("{}-proxy", names::container(project, service))
}

fn next_name(project: &str, service: &str) -> String {
    format!("{}-next", names::container(project, service))
}

pub fn previous_name(project: &str, service: &str) -> String {
    format!("{}-previous", names::container(project, service))
}

/// What `sanctuary switch` calls the previous container while it takes over.
pub fn swap_name(project: &str, service: &str) -> String {
    format!("{}-swap", names::container(project, service))
}

/// One blue-green service being converged.
pub struct BlueGreen<'a> {
    pub walk: &'a Walk<'a>,
    pub ctx: &'a NodeCtx,
    pub backend: &'a dyn Backend,
    pub svc: &'a Service,
    pub d: &'a DesiredContainer,
}

impl BlueGreen<'_> {
    fn project(&self) -> &str {
        &self.walk.session.manifest.project.name
    }

    fn live(&self) -> String {
        names::container(self.project(), &self.svc.name)
    }

    fn drain_timeout(&self) -> (Duration, bool) {
        match &self.svc.update {
            Update::BlueGreen {
                drain_timeout,
                keep_previous,
            } => (drain_timeout.0, *keep_previous),
            Update::Recreate => (Duration::ZERO, false),
        }
    }

    /// The service's container as blue-green runs it: named `name`, publishing nothing, and
    /// known on its networks by its container name only — the proxy holds the rest.
    fn container_spec(&self, name: &str, colour: &str) -> ContainerSpec {
        let mut spec = self.d.spec.clone();
        spec.name = name.to_string();
        spec.ports.clear();
        for n in &mut spec.networks {
            n.aliases.clear();
        }
        spec.labels
            .insert(LABEL_COLOUR.to_string(), colour.to_string());
        spec
    }

    /// The proxy's container: the service's ports and network aliases, restarted by Docker
    /// when it dies, with a health check of its own.
    fn proxy_spec(&self, image: &str) -> ContainerSpec {
        let project = self.project();
        let ports: Vec<u16> = self.d.spec.ports.iter().map(|p| p.container_port).collect();
        let mut command = vec!["proxy".to_string(), "serve".to_string()];
        for p in &ports {
            command.push("--port".into());
            command.push(p.to_string());
        }
        let mut labels = names::labels(project, &self.d.node.to_string(), None);
        labels.insert(LABEL_ROLE.to_string(), "proxy".to_string());
        labels.insert(LABEL_PROXY_SPEC.to_string(), self.proxy_identity());
        ContainerSpec {
            name: proxy_name(project, &self.svc.name),
            image: image.to_string(),
            command: Some(command),
            ports: self.d.spec.ports.clone(),
            networks: self.d.spec.networks.clone(),
            restart: RestartPolicy::Always,
            health: Some(HealthCheck {
                cmd: vec![
                    control::BINARY.to_string(),
                    "proxy".to_string(),
                    "check".to_string(),
                ],
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(2),
                retries: 3,
                start_period: Duration::ZERO,
            }),
            labels,
            ..ContainerSpec::default()
        }
    }

    /// A hash of what the proxy serves: its ports and networks. The binary is left out, so a
    /// new sanctuary does not interrupt the published ports to replace a working proxy.
    fn proxy_identity(&self) -> String {
        let v = serde_json::json!({
            "ports": self.d.spec.ports,
            "networks": self.d.spec.networks,
        });
        crate::plan::desired::sha256_hex(v.to_string().as_bytes())[..16].to_string()
    }

    /// Makes sure the proxy runs as declared and answers; returns its live upstream's id.
    async fn ensure_proxy(&self) -> Result<Option<String>, Failure> {
        let b = self.backend;
        let name = proxy_name(self.project(), &self.svc.name);
        let found = b.inspect_container(&name).await.map_err(engine_failure)?;
        let current = found.as_ref().is_some_and(|c| {
            c.labels.get(LABEL_PROXY_SPEC).map(String::as_str) == Some(&*self.proxy_identity())
        });
        match found {
            Some(c) if current => {
                if c.state != ContainerState::Running {
                    self.start_proxy(&name).await?;
                }
            }
            other => {
                if other.is_some() {
                    self.ctx.emit(&format!(
                        "replacing proxy {name}: its ports or networks changed"
                    ));
                    b.remove_container(&name, true)
                        .await
                        .map_err(engine_failure)?;
                }
                let image = crate::proxy::image::ensure(
                    b,
                    self.project(),
                    &self.walk.session.manifest.project.state_dir,
                )
                .await
                .map_err(Failure::infrastructure)?;
                self.ctx.emit(&format!("creating proxy {name}"));
                b.create_container(&self.proxy_spec(&image))
                    .await
                    .map_err(engine_failure)?;
                self.start_proxy(&name).await?;
            }
        }
        // Docker runs the container before the proxy inside listens: wait for its answer.
        let deadline = Instant::now() + PROXY_START;
        loop {
            match control::status(b, &name).await {
                Ok(s) => return Ok(s.upstream.map(|u| u.id)),
                Err(e) if Instant::now() > deadline => {
                    return Err(Failure::infrastructure(format!(
                        "service `{}`: the proxy does not answer: {e}",
                        self.svc.name
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn start_proxy(&self, name: &str) -> Result<(), Failure> {
        match self.backend.start_container(name).await {
            Ok(()) => Ok(()),
            Err(BackendError::PortInUse { port, .. }) => {
                let _ = self.backend.remove_container(name, true).await;
                Err(Failure::infrastructure(format!(
                    "service `{}`: its proxy cannot hold host port {port}: it is already in use by another process or container",
                    self.svc.name
                )))
            }
            Err(e) => Err(engine_failure(e)),
        }
    }

    async fn switch_to(&self, name: &str) -> Result<String, Failure> {
        let upstream = upstream_of(self.backend, name, &self.d.spec.networks).await?;
        let id = upstream.id.clone();
        let proxy = proxy_name(self.project(), &self.svc.name);
        control::switch(self.backend, &proxy, upstream)
            .await
            .map_err(Failure::infrastructure)?;
        Ok(id)
    }

    async fn wait_ready(&self, name: &str) -> Result<(), Failure> {
        let Some(h) = &self.svc.health else {
            return Ok(());
        };
        let s = self.walk.session;
        self.ctx
            .idle(ready::wait_ready(
                self.backend,
                &self.svc.name,
                name,
                &h.test,
                self.svc.ready_timeout.0,
                &s.probes,
                self.ctx.cancel(),
            ))
            .await
            .map_err(|e| Failure::from_error(FailureClass::Infrastructure, &e))
    }

    /// Finishes or undoes what a killed run left: a `-next` the proxy points at becomes the
    /// live container; one it does not point at is removed.
    async fn recover(&self, live_upstream: Option<&str>) -> Result<(), Failure> {
        let b = self.backend;
        let swap = swap_name(self.project(), &self.svc.name);
        if let Some(sw) = b.inspect_container(&swap).await.map_err(engine_failure)? {
            let previous = previous_name(self.project(), &self.svc.name);
            if live_upstream == Some(sw.id.as_str()) {
                self.ctx
                    .emit(&format!("finishing an interrupted switch to {swap}"));
                self.retire_as_previous(&self.live()).await?;
                b.rename_container(&swap, &self.live())
                    .await
                    .map_err(engine_failure)?;
            } else {
                self.ctx.emit(&format!(
                    "putting {swap} back as {previous}: its switch did not happen"
                ));
                b.stop_container(&swap, self.svc.stop_timeout.0)
                    .await
                    .map_err(engine_failure)?;
                let _ = b.remove_container(&previous, true).await;
                b.rename_container(&swap, &previous)
                    .await
                    .map_err(engine_failure)?;
            }
        }
        let next = next_name(self.project(), &self.svc.name);
        let Some(n) = b.inspect_container(&next).await.map_err(engine_failure)? else {
            return Ok(());
        };
        if live_upstream == Some(n.id.as_str()) {
            self.ctx
                .emit(&format!("finishing an interrupted switch to {next}"));
            self.retire(&self.live()).await?;
            b.rename_container(&next, &self.live())
                .await
                .map_err(engine_failure)?;
        } else {
            self.ctx
                .emit(&format!("removing {next}, left by an interrupted apply"));
            b.remove_container(&next, true)
                .await
                .map_err(engine_failure)?;
        }
        Ok(())
    }

    async fn retire_as_previous(&self, name: &str) -> Result<(), Failure> {
        retire(
            self.backend,
            name,
            &previous_name(self.project(), &self.svc.name),
            self.svc.stop_timeout.0,
            true,
        )
        .await
    }

    /// Takes a container out of service after it drained: removed, or stopped and kept as
    /// `-previous` with `keep-previous`.
    async fn retire(&self, name: &str) -> Result<(), Failure> {
        let (_, keep) = self.drain_timeout();
        retire(
            self.backend,
            name,
            &previous_name(self.project(), &self.svc.name),
            self.svc.stop_timeout.0,
            keep,
        )
        .await
    }
}

/// Stops container `name` and removes it, or with `keep` renames it `previous` (replacing
/// an older one). Nothing to do when it does not exist.
pub async fn retire(
    b: &dyn Backend,
    name: &str,
    previous: &str,
    stop_timeout: Duration,
    keep: bool,
) -> Result<(), Failure> {
    if b.inspect_container(name)
        .await
        .map_err(engine_failure)?
        .is_none()
    {
        return Ok(());
    }
    b.stop_container(name, stop_timeout)
        .await
        .map_err(engine_failure)?;
    if keep {
        let _ = b.remove_container(previous, true).await;
        b.rename_container(name, previous)
            .await
            .map_err(engine_failure)
    } else {
        b.remove_container(name, true).await.map_err(engine_failure)
    }
}

impl BlueGreen<'_> {
    fn colour_after(old: Option<&ContainerInfo>) -> &'static str {
        match old
            .and_then(|c| c.labels.get(LABEL_COLOUR))
            .map(String::as_str)
        {
            Some("blue") => "green",
            _ => "blue",
        }
    }

    /// Brings the service up with a new container (none runs, or one not made for
    /// blue-green holds the ports), then points the proxy at it.
    async fn fresh(&self, old: Option<&ContainerInfo>) -> Result<&'static str, Failure> {
        let b = self.backend;
        let live = self.live();
        if old.is_some() {
            // A container made before `update "blue-green"` publishes the ports itself: it
            // goes first, once, so the proxy can take them.
            b.stop_container(&live, self.svc.stop_timeout.0)
                .await
                .map_err(engine_failure)?;
            b.remove_container(&live, true)
                .await
                .map_err(engine_failure)?;
        }
        self.ensure_proxy().await?;
        super::service::write_secrets(self.walk, self.svc, self.d)?;
        b.create_container(&self.container_spec(&live, "blue"))
            .await
            .map_err(engine_failure)?;
        b.start_container(&live).await.map_err(engine_failure)?;
        self.wait_ready(&live).await?;
        self.switch_to(&live).await?;
        Ok(if old.is_some() { "replaced" } else { "created" })
    }

    /// Converges the service: `action` is the decision about its live container.
    pub async fn run(
        &self,
        action: crate::plan::Action,
        observed: Option<&ContainerInfo>,
    ) -> Result<Option<String>, Failure> {
        use crate::plan::Action;
        let b = self.backend;
        let live = self.live();
        // A proxy that does not exist yet has no upstream, and nothing to recover.
        let proxy_exists = b
            .inspect_container(&proxy_name(self.project(), &self.svc.name))
            .await
            .map_err(engine_failure)?
            .is_some();
        // The proxy's upstream, once it is known to run and answer; recovery renames
        // containers but never moves it.
        let mut known = None;
        if proxy_exists {
            let upstream = self.ensure_proxy().await?;
            self.recover(upstream.as_deref()).await?;
            known = Some(upstream);
        }
        // What recovery changed is decided on afresh.
        let observed_now;
        let (action, observed) = if proxy_exists {
            observed_now = b.inspect_container(&live).await.map_err(engine_failure)?;
            let fresh = match &observed_now {
                None => Action::Create,
                Some(c) if c.labels.get(names::LABEL_FINGERPRINT) == Some(&self.d.fingerprint) => {
                    match c.state {
                        ContainerState::Running if action == Action::Replace => Action::Replace,
                        ContainerState::Running => Action::UpToDate,
                        _ => Action::Start,
                    }
                }
                Some(_) => Action::Replace,
            };
            (fresh, observed_now.as_ref())
        } else {
            (action, observed)
        };
        let made_for_blue_green = observed.is_some_and(|c| c.labels.contains_key(LABEL_COLOUR));
        match action {
            Action::UpToDate | Action::Start => {
                if !made_for_blue_green {
                    return self.fresh(observed).await.map(|w| Some(w.to_string()));
                }
                let mut word = None;
                if action == Action::Start {
                    b.start_container(&live).await.map_err(engine_failure)?;
                    word = Some("started".to_string());
                }
                let upstream = match known {
                    Some(u) => u,
                    None => self.ensure_proxy().await?,
                };
                self.wait_ready(&live).await?;
                let id = observed.map(|c| c.id.clone());
                if upstream != id {
                    self.switch_to(&live).await?;
                    word.get_or_insert_with(|| "proxy pointed at the live container".into());
                }
                Ok(word)
            }
            Action::Replace if made_for_blue_green => {
                if known.is_none() {
                    self.ensure_proxy().await?;
                }
                self.replace(observed).await.map(Some)
            }
            _ => self.fresh(observed).await.map(|w| Some(w.to_string())),
        }
    }

    /// The switch itself: next beside live, ready, switched, live drained and retired, next
    /// renamed live. The proxy runs and answers.
    async fn replace(&self, old: Option<&ContainerInfo>) -> Result<String, Failure> {
        let b = self.backend;
        let project = self.project().to_string();
        let live = self.live();
        let next = next_name(&project, &self.svc.name);
        super::service::write_secrets(self.walk, self.svc, self.d)?;
        let colour = Self::colour_after(old);
        self.ctx
            .emit(&format!("starting {next} ({colour}) beside {live}"));
        b.create_container(&self.container_spec(&next, colour))
            .await
            .map_err(engine_failure)?;
        let started = b.start_container(&next).await.map_err(engine_failure);
        let ready = match started {
            Ok(()) => self.wait_ready(&next).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ready {
            let _ = b.remove_container(&next, true).await;
            return Err(Failure::new(
                e.class,
                format!(
                    "{}\n  the new container was removed; {live} keeps serving, untouched",
                    e.message
                ),
            ));
        }
        let new_id = self.switch_to(&next).await?;
        self.ctx
            .emit(&format!("switched traffic to {next} ({colour})"));
        let drained = match old {
            Some(o) if o.id != new_id => {
                let proxy = proxy_name(&project, &self.svc.name);
                drain(b, &proxy, &o.id, self.drain_timeout().0).await
            }
            _ => "drained".to_string(),
        };
        self.retire(&live).await?;
        b.rename_container(&next, &live)
            .await
            .map_err(engine_failure)?;
        Ok(format!("switched to {colour} ({drained})"))
    }
}

/// The upstream container `name` makes: its id and its address on the first of `networks`
/// (the proxy joins the same ones).
pub async fn upstream_of(
    backend: &dyn Backend,
    name: &str,
    networks: &[crate::backend::NetworkAttachment],
) -> Result<Upstream, Failure> {
    let info = backend
        .inspect_container(name)
        .await
        .map_err(engine_failure)?
        .ok_or_else(|| Failure::infrastructure(format!("container {name} disappeared")))?;
    let host = networks
        .iter()
        .find_map(|n| info.ips.get(&n.network))
        .cloned()
        .ok_or_else(|| {
            Failure::infrastructure(format!("container {name} has no address on its networks"))
        })?;
    Ok(Upstream { id: info.id, host })
}

/// Waits until no connection through `proxy` is open to container `id`, up to `timeout`;
/// says how it ended.
pub async fn drain(backend: &dyn Backend, proxy: &str, id: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let open = match control::status(backend, proxy).await {
            Ok(s) => s.open.get(id).copied().unwrap_or(0),
            Err(_) => 0,
        };
        if open == 0 {
            return "drained".to_string();
        }
        if Instant::now() >= deadline {
            return format!(
                "drain timeout: {open} connection{} cut",
                if open == 1 { "" } else { "s" }
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For a service that is recreated now: removes the proxy and the kept previous container
/// it had while it was blue-green, so the ports are free for its own container again.
pub async fn remove_leftovers(
    b: &dyn Backend,
    project: &str,
    service: &str,
) -> Result<(), Failure> {
    let names = [
        proxy_name(project, service),
        previous_name(project, service),
        next_name(project, service),
        swap_name(project, service),
    ];
    let found = futures_util::future::join_all(names.iter().map(|n| b.inspect_container(n))).await;
    for (name, info) in names.iter().zip(found) {
        if info.map_err(engine_failure)?.is_some() {
            b.remove_container(name, true)
                .await
                .map_err(engine_failure)?;
        }
    }
    Ok(())
}
