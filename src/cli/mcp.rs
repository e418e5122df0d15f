//! `sanctuary mcp`: the project as Model Context Protocol tools over stdio, for Claude Code,
//! Claude Desktop and any other MCP client (docs/mcp.md).
//!
//! Every call reads the manifest again, so an edit between calls is seen and a manifest that
//! stopped validating answers with its diagnostics instead of stale data. Each tool answers
//! with structured JSON and a one-line text summary; a failure is a tool error whose text
//! says what went wrong, never the end of the server. Only JSON-RPC reaches stdout: the
//! tools build their answers instead of printing, and diagnostics go to stderr.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{engine, Context};
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::graph::Graph;
use crate::manifest::Kind;

/// The most log lines one `logs` call returns, and the most bytes.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_BYTES: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// The server: where the manifest is, read again on every call.
#[derive(Clone)]
pub struct Server {
    file: Option<std::path::PathBuf>,
    tool_router: ToolRouter<Server>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlanInput {
    /// Nodes to plan for (`web`, `service.web`); the whole stack when empty.
    #[serde(default)]
    pub targets: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogsInput {
    /// The service whose logs to read.
    pub service: String,
    /// How many of the last lines (default 100, at most 1000).
    pub tail: Option<usize>,
    /// Only lines since then: a duration ago (`10m`) or a timestamp.
    pub since: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HistoryInput {
    /// How many of the latest generations (default 20).
    pub last: Option<usize>,
}

/// A tool's answer: structured JSON, with a line for people.
fn answer(summary: impl Into<String>, value: Value) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(summary.into())]);
    r.structured_content = Some(value);
    r
}

/// A tool that ran and failed: the error as the CLI would render it (without colour),
/// secrets masked, and its exit code.
fn failure(e: &Error) -> CallToolResult {
    let text = crate::secrets::mask(&super::output::render(e, false)).into_owned();
    let mut r = CallToolResult::error(vec![ContentBlock::text(text.clone())]);
    r.structured_content = Some(json!({
        "error": crate::secrets::mask(&e.to_string()),
        "exit_code": e.exit_code().code(),
        "rendered": text,
    }));
    r
}

fn done(result: Result<CallToolResult>) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
    Ok(result.unwrap_or_else(|e| failure(&e)))
}

#[tool_router(router = tool_router)]
impl Server {
    pub fn new(file: Option<std::path::PathBuf>) -> Self {
        Server {
            file,
            tool_router: Self::tool_router(),
        }
    }

    fn ctx(&self) -> Context {
        Context {
            file: self.file.clone(),
            json: true,
        }
    }

    /// Load and check the manifest: every error with where it is, and what it declares.
    #[tool(
        name = "validate",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn validate(&self) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        done((|| {
            let loaded = self.ctx().load()?;
            let m = &loaded.manifest;
            let graph = Graph::from_manifest(m);
            let nodes: serde_json::Map<String, Value> = Kind::ALL
                .into_iter()
                .map(|k| (k, graph.nodes().iter().filter(|n| n.kind == k).count()))
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.to_string(), Value::from(n)))
                .collect();
            let warnings: Vec<String> = loaded
                .warnings
                .as_ref()
                .map(|w| w.0.diags.iter().map(|d| d.message.clone()).collect())
                .unwrap_or_default();
            Ok(answer(
                format!(
                    "{}: valid, project {} ({} warning(s))",
                    m.path.display(),
                    m.project.name,
                    warnings.len()
                ),
                json!({
                    "valid": true,
                    "manifest": m.path,
                    "project": m.project.name,
                    "nodes": nodes,
                    "warnings": warnings,
                }),
            ))
        })())
    }

    /// The manifest's nodes: kind, name, description and what each depends on.
    #[tool(
        name = "list",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list(&self) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        done((|| {
            let m = self.ctx().load()?.manifest;
            let graph = Graph::from_manifest(&m);
            let nodes: Vec<Value> = graph
                .nodes()
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let deps: Vec<String> = graph
                        .dependencies(i)
                        .iter()
                        .map(|e| graph.node(e.to).to_string())
                        .collect();
                    json!({
                        "node": id.to_string(),
                        "kind": id.kind,
                        "name": id.name,
                        "depends_on": deps,
                    })
                })
                .collect();
            Ok(answer(
                format!("{} node(s) in project {}", nodes.len(), m.project.name),
                json!({ "project": m.project.name, "nodes": nodes }),
            ))
        })())
    }

    /// Each service's container: state, health, uptime, ports, image; the supervisor.
    #[tool(
        name = "status",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn status(&self) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        done(
            async {
                let m = self.ctx().load()?.manifest;
                let backend = crate::engine::connect().await?;
                let found = crate::observe::services(backend.as_ref(), &m).await?;
                let on_purpose = crate::state::stopped::stopped_on_purpose(&m.project.state_dir);
                let supervisor = crate::supervise::status_file::read(&m.project.state_dir);
                let running = found
                    .iter()
                    .filter(|s| {
                        s.container
                            .as_ref()
                            .is_some_and(|c| c.state == crate::backend::ContainerState::Running)
                    })
                    .count();
                Ok(answer(
                    format!(
                        "project {}: {running} of {} service(s) running",
                        m.project.name,
                        found.len()
                    ),
                    super::stack::status_json(&m, &found, &on_purpose, &supervisor),
                ))
            }
            .await,
        )
    }

    /// What an apply would change, and why, without changing anything. The answer's
    /// `plan_id` names this plan: it stops matching once the manifest or the engine changes.
    #[tool(
        name = "plan",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn plan(
        &self,
        Parameters(input): Parameters<PlanInput>,
    ) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        done(
            async {
                let m = Arc::new(self.ctx().load()?.manifest);
                let targets = super::graph::resolve_targets(&m, &input.targets)?;
                let session = engine::session(Arc::clone(&m), true, Options::default())?;
                let plan = crate::engine::plan(&session, &Selection::Apply { targets }).await?;
                let id = plan_id(&m, &plan);
                Ok(answer(
                    plan.summary_line(),
                    json!({
                        "plan_id": id,
                        "has_changes": plan.has_changes(),
                        "summary": plan.summary_line(),
                        "plan": plan,
                    }),
                ))
            }
            .await,
        )
    }

    /// The recorded generations (applies and rollbacks), newest last.
    #[tool(
        name = "history",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn history(
        &self,
        Parameters(input): Parameters<HistoryInput>,
    ) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        done((|| {
            let m = self.ctx().load()?.manifest;
            let h = crate::history::History::in_state_dir(&m.project.state_dir);
            let all = h.all().map_err(|e| Error::Infrastructure(e.to_string()))?;
            let last = input.last.unwrap_or(20).max(1);
            let shown: Vec<Value> = all
                .iter()
                .skip(all.len().saturating_sub(last))
                .map(|g| {
                    json!({
                        "number": g.number,
                        "time": g.time,
                        "who": g.who,
                        "command": g.command,
                        "outcome": g.outcome,
                        "duration_ms": g.duration_ms,
                        "git": g.git,
                        "rollback_of": g.rollback_of,
                    })
                })
                .collect();
            Ok(answer(
                format!("{} generation(s), {} shown", all.len(), shown.len()),
                json!({ "project": m.project.name, "generations": shown }),
            ))
        })())
    }

    /// The last lines a service's container wrote (bounded: at most 1000 lines, 64 KiB).
    #[tool(
        name = "logs",
        annotations(
            read_only_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn logs(
        &self,
        Parameters(input): Parameters<LogsInput>,
    ) -> std::result::Result<CallToolResult, rmcp::ErrorData> {
        use futures_util::StreamExt;
        done(
            async {
                let m = self.ctx().load()?.manifest;
                super::service(&m, &input.service)?;
                let since = match &input.since {
                    Some(s) => Some(super::stack::parse_since(s).map_err(|e| {
                        Error::usage(
                            format!("since `{s}`: {e}"),
                            "a duration ago (`10m`) or a timestamp",
                        )
                    })?),
                    None => None,
                };
                let tail = input.tail.unwrap_or(100).min(MAX_LOG_LINES);
                let backend = crate::engine::connect().await?;
                let sources = crate::observe::log_sources(
                    backend.as_ref(),
                    &m,
                    std::slice::from_ref(&input.service),
                )
                .await?;
                let mut lines = Vec::new();
                let mut bytes = 0;
                let mut cut = false;
                let mut stream = crate::observe::log_stream(
                    backend.as_ref(),
                    &sources,
                    false,
                    Some(tail),
                    since,
                );
                while let Some((_, line)) = stream.next().await {
                    let line = line?;
                    let text = crate::secrets::mask(&line.line).into_owned();
                    bytes += text.len() + 1;
                    if bytes > MAX_LOG_BYTES {
                        cut = true;
                        break;
                    }
                    let stream = match line.stream {
                        crate::backend::LogStream::Stdout => "stdout",
                        crate::backend::LogStream::Stderr => "stderr",
                    };
                    lines.push(json!({ "stream": stream, "line": text }));
                }
                Ok(answer(
                    format!(
                        "{} line(s) of {}{}",
                        lines.len(),
                        input.service,
                        if cut { " (cut at 64 KiB)" } else { "" }
                    ),
                    json!({ "service": input.service, "lines": lines, "truncated": cut }),
                ))
            }
            .await,
        )
    }
}

/// The id of a plan: the manifest's text and the changes the plan makes. A plan made from
/// another manifest, or against an engine that changed since, has another id.
pub fn plan_id(m: &crate::manifest::Manifest, plan: &crate::plan::Plan) -> String {
    let changes = serde_json::to_string(&plan.changes()).unwrap_or_default();
    let text = format!("{}\n{changes}", m.source);
    crate::plan::desired::sha256_hex(text.as_bytes())[..16].to_string()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            rmcp::model::Implementation::new("sanctuary", env!("CARGO_PKG_VERSION")),
        )
    }
}

pub fn run(ctx: &Context, _args: Args) -> Result<ExitCode> {
    let rt = engine::runtime()?;
    let server = Server::new(ctx.file.clone());
    rt.block_on(async {
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Infrastructure(format!("cannot start the MCP session: {e}")))?;
        // The session ends when the client closes stdin.
        let _ = running.waiting().await;
        Ok::<_, Error>(())
    })?;
    // Stdin's pending read cannot be cancelled; nothing else is left to finish.
    rt.shutdown_background();
    Ok(ExitCode::Ok)
}
