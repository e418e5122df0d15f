//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, a command exports one trace over OTLP (HTTP with protobuf): a root span for the
//! command, and one span per node the engine walked, with its kind, action, whether it came
//! from the cache, its duration and its result. Nothing is exported otherwise, and nothing is
//! set up: a command without the variable pays nothing.
//!
//! Spans are batched and sent on the exporter's own thread; the HTTP request runs on a small
//! runtime of its own, so no command waits on the collector while it works. Before the
//! process exits the provider is shut down: what is still queued is sent, bounded by the
//! export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s), so a dead or slow collector
//! delays an exit by at most that and never fails a command.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanKind, Status as SpanStatus, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::exec::Status;

/// The variables that switch traces on, in the order the OTLP specification reads them.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

struct Active {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// The command's span, parent of every node's.
    root: Context,
    /// Runs the exporter's HTTP requests (the batch thread has no reactor of its own).
    runtime: tokio::runtime::Runtime,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

/// The export timeout the environment asks for.
fn timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse::<u64>().ok())
    .map(Duration::from_millis)
    .unwrap_or(DEFAULT_TIMEOUT)
}

/// The exporter's HTTP client: the project's reqwest, driven on the traces' own runtime.
#[derive(Debug)]
struct Client {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.handle.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut req = client
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            let mut out = http::Response::builder().status(status.as_u16());
            for (name, value) in &headers {
                out = out.header(name, value);
            }
            Ok::<_, reqwest::Error>(out.body(body))
        });
        match sent.await {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(e))) => Err(Box::new(e)),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// Starts the trace of `command` when the environment asks for one. A setup that fails is
/// a warning: the command runs untraced.
pub fn start(command: &str) {
    if !ENDPOINT_VARS
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|e| !e.trim().is_empty()))
    {
        return;
    }
    if let Ok(p) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL") {
        if p.trim() != "http/protobuf" {
            eprintln!(
                "warning: OTEL_EXPORTER_OTLP_PROTOCOL={p} is not supported; traces are sent as http/protobuf"
            );
        }
    }
    match setup(command) {
        Ok(active) => *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(active),
        Err(why) => eprintln!("warning: traces are off: {why}"),
    }
}

fn setup(command: &str) -> Result<Active, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sanctuary-otlp")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the exporter's runtime: {e}"))?;
    let timeout = timeout();
    let https = ENDPOINT_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .is_some_and(|e| e.trim_start().starts_with("https://"));
    let client = Client {
        client: reqwest::Client::builder()
            .timeout(timeout)
            // Reading the system's CA store costs more than a whole small run; a plain
            // http:// collector (the usual local agent) needs none of it.
            .tls_built_in_root_certs(https)
            .build()
            .map_err(|e| e.to_string())?,
        handle: runtime.handle().clone(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_timeout(timeout)
        .build()
        .map_err(|e| format!("cannot set up the OTLP exporter: {e}"))?;
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("sanctuary")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("sanctuary");
    let span = tracer
        .span_builder(format!("sanctuary {command}"))
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new("sanctuary.command", command.to_string())])
        .start(&tracer);
    let root = Context::current_with_span(span);
    Ok(Active {
        provider,
        tracer,
        root,
        runtime,
    })
}

/// Whether this command is traced.
pub fn enabled() -> bool {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// What a span records about one node.
pub struct NodeSpan<'a> {
    /// The step's label (`web`, `build`, a container's name for an orphan).
    pub node: &'a str,
    /// The node it realises, when it is one of the manifest's.
    pub id: Option<&'a crate::manifest::NodeId>,
    /// What the plan meant to do (`create`, `replace`, `run`…), when there was a plan.
    pub action: Option<&'a str>,
    pub status: &'a Status,
    pub start: SystemTime,
    pub duration: Duration,
}

/// A node's span, child of the command's.
pub fn node(n: NodeSpan<'_>) {
    let guard = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(active) = guard.as_ref() else {
        return;
    };
    let (kind, name) = match n.id {
        Some(id) => (id.kind.as_str(), id.name.as_str()),
        None => ("object", n.node),
    };
    let full = n.id.map_or_else(|| n.node.to_string(), ToString::to_string);
    let (result, cached) = match n.status {
        Status::Ran { .. } => ("ran", false),
        Status::Cached { .. } => ("cached", true),
        Status::UpToDate { .. } => ("up-to-date", false),
        Status::Failed { .. } => ("failed", false),
        Status::Skipped { .. } => ("skipped", false),
        Status::NotRun => ("not-run", false),
        Status::Cancelled => ("cancelled", false),
    };
    let mut attrs = vec![
        KeyValue::new("sanctuary.node", full.clone()),
        KeyValue::new("sanctuary.kind", kind.to_string()),
        KeyValue::new("sanctuary.name", name.to_string()),
        KeyValue::new("sanctuary.result", result),
        KeyValue::new("sanctuary.cached", cached),
        KeyValue::new("sanctuary.duration_ms", n.duration.as_millis() as i64),
    ];
    if let Some(a) = n.action {
        attrs.push(KeyValue::new("sanctuary.action", a.to_string()));
    }
    let mut span = active
        .tracer
        .span_builder(full)
        .with_kind(SpanKind::Internal)
        .with_start_time(n.start)
        .with_attributes(attrs)
        .start_with_context(&active.tracer, &active.root);
    if let Status::Failed { message, .. } = n.status {
        span.set_status(SpanStatus::error(
            crate::secrets::mask(message).into_owned(),
        ));
    }
    span.end_with_timestamp(n.start + n.duration);
}

/// Ends the command's span with its exit code and sends what is queued, bounded by the
/// export timeout. Called once, before the process exits.
pub fn finish(exit_code: i32) {
    let Some(active) = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let span = active.root.span();
    span.set_attribute(KeyValue::new("sanctuary.exit_code", i64::from(exit_code)));
    if exit_code != 0 {
        span.set_status(SpanStatus::error(format!("exit code {exit_code}")));
    }
    span.end();
    drop(active.root);
    if let Err(e) = active
        .provider
        .shutdown_with_timeout(timeout() + Duration::from_secs(1))
    {
        tracing::warn!("traces not all sent: {e}");
        eprintln!("warning: traces not all sent: {e}");
    }
    active.runtime.shutdown_timeout(Duration::from_millis(100));
}
