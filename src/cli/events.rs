//! `sanctuary events`: the project's engine events as they happen, one line each (`--json`:
//! one object each), through [`crate::observe::events`]. With `--until` it prints what
//! happened in a window and exits; without, it runs until Ctrl-C, riding out the engine going
//! away and coming back.

use std::io::Write;

use futures_util::StreamExt;

use super::engine;
use super::stack::parse_since;
use super::Context;
use crate::error::{ExitCode, Result};
use crate::observe::events::{self, ProjectEvent, Watched};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the events of these services' containers (all of the project's when none).
    services: Vec<String>,
    /// Start from this time, replaying what the engine kept: a duration ago (`10m`) or a
    /// timestamp (`2026-12-03T09:00:00Z`). Default: now.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<i64>,
    /// Stop at this time (a duration ago, or a timestamp) and exit; default: run until
    /// interrupted.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    until: Option<i64>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = ctx.load()?.manifest;
    for s in &args.services {
        super::service(&m, s)?;
    }
    let wanted: Vec<String> = args
        .services
        .iter()
        .map(|s| format!("service.{s}"))
        .collect();
    let json = ctx.json;
    let rt = engine::runtime()?;
    let watched: Result<ExitCode> = rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let stop = engine::interrupt_token();
        let since = args.since.map(|s| s.saturating_mul(1_000_000_000));
        let mut stream = events::watch(backend, events::ProjectFilter::new(&m), since, args.until);
        if !json && args.until.is_none() {
            eprintln!("Watching the events of {} (Ctrl-C stops).", m.project.name);
        }
        let mut out = std::io::stdout();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = stop.cancelled() => return Ok(ExitCode::Ok),
            };
            let Some(item) = item else {
                return Ok(ExitCode::Ok);
            };
            let line = match item {
                Watched::Event(e) => {
                    let shown =
                        wanted.is_empty() || e.node.as_ref().is_some_and(|n| wanted.contains(n));
                    if !shown {
                        continue;
                    }
                    if json {
                        event_json(&e).to_string()
                    } else {
                        event_line(&e)
                    }
                }
                Watched::Lost(why) if json => {
                    serde_json::json!({"event": "engine-lost", "reason": why}).to_string()
                }
                Watched::Lost(why) => {
                    eprintln!("warning: lost the engine's events ({why}); reconnecting");
                    continue;
                }
                Watched::Back if json => serde_json::json!({"event": "engine-back"}).to_string(),
                Watched::Back => {
                    eprintln!("The engine answers again; resumed from the last event seen.");
                    continue;
                }
            };
            // Each line is flushed as it comes, so a pipe reader sees it at once; a closed
            // pipe ends the watch quietly.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(ExitCode::Ok);
            }
        }
    });
    watched
}

fn time_of(e: &ProjectEvent) -> String {
    chrono::DateTime::from_timestamp_nanos(e.event.time_nano)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `2026-12-03T16:05:01.123Z  service.web  container demo-web  die (exitCode=0)`
fn event_line(e: &ProjectEvent) -> String {
    let details: Vec<String> = e
        .details()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "image" | "execID"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = format!(
        "{}  {}  {} {}  {}",
        time_of(e),
        e.node.as_deref().unwrap_or("-"),
        e.event.kind,
        e.object,
        e.event.action
    );
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    line
}

fn event_json(e: &ProjectEvent) -> serde_json::Value {
    serde_json::json!({
        "event": "engine",
        "time": time_of(e),
        "time_nano": e.event.time_nano,
        "type": e.event.kind,
        "action": e.event.action,
        "object": e.object,
        "id": e.event.id,
        "node": e.node,
        "attributes": e.details(),
    })
}
