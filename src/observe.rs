//! Reading the stack for people: each service's container as the engine reports it
//! (`status`), and their logs merged into one stream (`logs`). Read-only; found by name,
//! as apply names them.

pub mod alerts;
pub mod events;
pub mod traces;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::backend::{names, Backend, BackendError, ContainerInfo, LogLine};
use crate::manifest::Manifest;

/// One service and its container, if there is one.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub service: String,
    pub container: Option<ContainerInfo>,
    /// For a blue-green service, its proxy.
    pub proxy: Option<ProxyStatus>,
}

/// The proxy in front of a blue-green service: its container and what it answers.
#[derive(Debug, Clone)]
pub struct ProxyStatus {
    pub container: Option<ContainerInfo>,
    /// The proxy's own report, or why it could not be had.
    pub report: Result<crate::proxy::Status, String>,
}

impl ServiceStatus {
    /// The colour of the live container when the proxy points at it; `None` otherwise.
    pub fn live_colour(&self) -> Option<&str> {
        let c = self.container.as_ref()?;
        let report = self.proxy.as_ref()?.report.as_ref().ok()?;
        (report.upstream.as_ref()?.id == c.id)
            .then(|| c.labels.get(crate::executors::blue_green::LABEL_COLOUR))
            .flatten()
            .map(String::as_str)
    }
}

async fn proxy_of(backend: &dyn Backend, m: &Manifest, service: &str) -> ProxyStatus {
    let name = crate::executors::blue_green::proxy_name(&m.project.name, service);
    let container = backend.inspect_container(&name).await.ok().flatten();
    let report = match &container {
        None => Err("no proxy container".to_string()),
        Some(_) => crate::proxy::control::status(backend, &name).await,
    };
    ProxyStatus { container, report }
}

/// Every service of the manifest, in manifest order, asked for at once.
pub async fn services(
    backend: &dyn Backend,
    m: &Manifest,
) -> Result<Vec<ServiceStatus>, BackendError> {
    let names: Vec<(String, String)> = m
        .services
        .keys()
        .map(|s| (s.clone(), names::container(&m.project.name, s)))
        .collect();
    let found =
        futures_util::future::join_all(names.iter().map(|(_, c)| backend.inspect_container(c)))
            .await;
    let proxies = futures_util::future::join_all(
        m.services
            .values()
            .filter(|s| s.update.is_blue_green())
            .map(|s| async { (s.name.clone(), proxy_of(backend, m, &s.name).await) }),
    )
    .await;
    let mut proxies: std::collections::BTreeMap<String, ProxyStatus> =
        proxies.into_iter().collect();
    names
        .into_iter()
        .zip(found)
        .map(|((service, _), info)| {
            Ok(ServiceStatus {
                proxy: proxies.remove(&service),
                service,
                container: info?,
            })
        })
        .collect()
}

/// The containers of `services` that exist, as (service, container) pairs.
pub async fn log_sources(
    backend: &dyn Backend,
    m: &Manifest,
    services: &[String],
) -> Result<Vec<(String, String)>, BackendError> {
    let mut out = Vec::new();
    for s in services {
        let name = names::container(&m.project.name, s);
        if backend.inspect_container(&name).await?.is_some() {
            out.push((s.clone(), name));
        }
    }
    Ok(out)
}

/// The log lines of `sources`, each tagged with its service, interleaved as they arrive.
pub fn log_stream<'a>(
    backend: &'a dyn Backend,
    sources: &'a [(String, String)],
    follow: bool,
    tail: Option<usize>,
    since: Option<i64>,
) -> BoxStream<'a, (String, Result<LogLine, BackendError>)> {
    let streams = sources.iter().map(|(service, name)| {
        backend
            .logs_since(name, follow, tail, since)
            .map(move |l| (service.clone(), l))
            .boxed()
    });
    futures_util::stream::select_all(streams).boxed()
}
