//! What the supervisor knows, in the Prometheus text format (`supervise --metrics ADDR`):
//! services up, healthy, restarted and available; the last apply; each backup's last
//! success, size and age; each sync rule's last pass and conflicts; the proxies'
//! connections per colour; whether the supervisor itself is degraded.
//!
//! The values are set by the supervisor's loop; the endpoint only encodes them, so a scrape
//! costs no Docker call.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;
type C = Family<Labels, Counter>;

/// The supervisor's series.
pub struct Metrics {
    registry: Registry,
    pub service_up: G,
    pub service_healthy: G,
    pub service_restarts: C,
    pub service_uptime: G,
    pub service_availability: G,
    pub apply_duration: G,
    pub apply_success: G,
    pub apply_time: G,
    pub backup_last_success: G,
    pub backup_size: G,
    pub backup_age: G,
    pub backup_failures: C,
    pub sync_last_pass: G,
    pub sync_conflicts: G,
    pub proxy_connections: G,
    pub degraded: G,
    pub alert_failures: G,
}

/// One label.
pub fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_string(), value.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sanctuary");
        let mut gauge = |name: &str, help: &str| {
            let g = G::default();
            registry.register(name, help, g.clone());
            g
        };
        let service_up = gauge("service_up", "1 while the service's container runs");
        let service_healthy = gauge(
            "service_healthy",
            "1 while the service is healthy (running, for a service without a health check)",
        );
        let service_uptime = gauge(
            "service_uptime_seconds",
            "Seconds since the service's container last started",
        );
        let service_availability = gauge(
            "service_availability_ratio",
            "Share of the availability window the service was healthy, as the supervisor saw it",
        );
        let apply_duration = gauge(
            "apply_last_duration_seconds",
            "How long the last apply took",
        );
        let apply_success = gauge(
            "apply_last_success",
            "1 when the last apply applied everything",
        );
        let apply_time = gauge(
            "apply_last_timestamp_seconds",
            "When the last apply finished, seconds since the epoch",
        );
        let backup_last_success = gauge(
            "backup_last_success_timestamp_seconds",
            "When the newest snapshot of the backup was taken, seconds since the epoch",
        );
        let backup_size = gauge(
            "backup_last_size_bytes",
            "Archive size of the newest snapshot",
        );
        let backup_age = gauge("backup_age_seconds", "Age of the newest snapshot");
        let sync_last_pass = gauge(
            "sync_last_pass_timestamp_seconds",
            "When the rule's last recorded pass finished, seconds since the epoch",
        );
        let sync_conflicts = gauge(
            "sync_conflicts",
            "Conflicts met by the rule's last recorded pass",
        );
        let proxy_connections = gauge(
            "proxy_connections",
            "Connections open through a blue-green service's proxy, per colour",
        );
        let degraded = gauge(
            "supervisor_degraded",
            "1 while the supervisor cannot do all its work (the engine does not answer)",
        );
        let alert_failures = gauge(
            "alert_delivery_failures",
            "Alert deliveries that failed after every retry, per alert",
        );
        let service_restarts = C::default();
        registry.register(
            "service_restarts",
            "Restarts of the service's container by the supervisor",
            service_restarts.clone(),
        );
        let backup_failures = C::default();
        registry.register(
            "backup_failures",
            "Scheduled runs of the backup that failed",
            backup_failures.clone(),
        );
        Metrics {
            registry,
            service_up,
            service_healthy,
            service_restarts,
            service_uptime,
            service_availability,
            apply_duration,
            apply_success,
            apply_time,
            backup_last_success,
            backup_size,
            backup_age,
            backup_failures,
            sync_last_pass,
            sync_conflicts,
            proxy_connections,
            degraded,
            alert_failures,
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Why the metrics endpoint could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` and serves the metrics on every path (`/metrics` by convention) until the
/// task is dropped. Returns the bound address (a port of 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BindError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let body = metrics.encode();
                    async move {
                        hyper::Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_with_the_prefix_and_labelled() {
        let m = Metrics::new();
        m.service_healthy
            .get_or_create(&label("service", "web"))
            .set(1.0);
        m.service_restarts
            .get_or_create(&label("service", "web"))
            .inc();
        let text = m.encode();
        assert!(
            text.contains("sanctuary_service_healthy{service=\"web\"} 1.0"),
            "{text}"
        );
        assert!(
            text.contains("sanctuary_service_restarts_total{service=\"web\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn the_endpoint_answers_and_a_taken_address_is_named() {
        let metrics = Arc::new(Metrics::new());
        metrics.degraded.get_or_create(&vec![]).set(0.0);
        let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics))
            .await
            .unwrap();
        let body = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("sanctuary_supervisor_degraded 0.0"), "{body}");
        let err = serve(addr, metrics).await.unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
