//! `sanctuary destroy`, `sanctuary status` and `sanctuary logs`. `destroy` is a walk like
//! apply's: a plan of what the engine holds for the project, shown and confirmed, then carried
//! out — containers, then networks; with `--volumes`, a verified backup of every volume a
//! backup node reads before any volume goes, and none of them when a backup fails. `status`
//! and `logs` only read, through [`crate::observe`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;

use super::engine;
use super::Context;
use crate::backend::{ContainerState, HealthState, LogStream};
use crate::engine::{Options, Selection};
use crate::error::{Error, ExitCode, Result};
use crate::supervise::status_file::Seen;

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// Also remove the project's volumes and their data, after a verified backup of each
    /// volume that has a backup node.
    #[arg(long)]
    volumes: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Services to show (all when none).
    services: Vec<String>,
    /// Keep streaming new lines. (No `-f`: that is the global `--file`.)
    #[arg(long)]
    follow: bool,
    /// Only the last N lines of each service.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Only lines written since this time: a duration ago (`10m`, `1h30m`) or a timestamp
    /// (`2026-12-03T09:00:00Z`).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<i64>,
}

/// `--since`: seconds since the epoch, from a duration ago or an RFC 3339 timestamp.
pub(crate) fn parse_since(s: &str) -> std::result::Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    match humantime::parse_duration(s) {
        Ok(d) => {
            Ok(chrono::Utc::now().timestamp() - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
        }
        Err(_) => Err(format!(
            "`{s}` is neither a duration (`10m`, `1h30m`) nor a timestamp (`2026-12-03T09:00:00Z`)"
        )),
    }
}

pub fn destroy(ctx: &Context, args: DestroyArgs) -> Result<ExitCode> {
    let rt = engine::runtime()?;
    let early = crate::engine::connect_early(&rt);
    let m = Arc::new(ctx.load()?.manifest);
    let session = engine::session(Arc::clone(&m), ctx.json, Options::default())?.adopt(early);
    let json = ctx.json;
    rt.block_on(async {
        let _lock = session.lock(&format!("destroy {}", m.project.name))?;
        let selection = Selection::Destroy {
            volumes: args.volumes,
            images: false,
        };
        let plan = crate::engine::plan(&session, &selection).await?;
        if plan.steps.is_empty() {
            session.forget_stack(args.volumes);
            if json {
                println!("{}", serde_json::json!({ "event": "plan", "plan": plan }));
            } else {
                println!("Nothing to destroy for project {}.", m.project.name);
            }
            return Ok(ExitCode::Ok);
        }
        if json {
            println!("{}", serde_json::json!({ "event": "plan", "plan": plan }));
        } else {
            print!("{}", plan.render(false));
        }
        let question = format!("Destroy these objects of project {}?", m.project.name);
        if !engine::confirmed(&question, args.yes, json)? {
            println!("Nothing destroyed.");
            return Ok(ExitCode::Ok);
        }
        let (_, code) = engine::walk(&session, &plan, false, true).await?;
        if code == ExitCode::Ok {
            session.forget_stack(args.volumes);
            if !json {
                let kept = if args.volumes {
                    ""
                } else {
                    " (volumes kept; --volumes removes them)"
                };
                println!("Destroyed {} objects{kept}.", plan.steps.len());
            }
        } else if args.volumes && !json {
            eprintln!("error: volumes kept: not every backup before deleting them succeeded");
        }
        Ok(code)
    })
}

fn health_word(h: HealthState) -> &'static str {
    match h {
        HealthState::None => "-",
        HealthState::Starting => "starting",
        HealthState::Healthy => "healthy",
        HealthState::Unhealthy => "unhealthy",
    }
}

fn state_word(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Removing => "removing",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
        ContainerState::Unknown => "unknown",
    }
}

fn uptime(started: Option<chrono::DateTime<chrono::Utc>>, running: bool) -> String {
    match (started, running) {
        (Some(t), true) => {
            let secs = (chrono::Utc::now() - t).num_seconds().max(0) as u64;
            humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
        }
        _ => "-".to_string(),
    }
}

/// The ports a service publishes: a blue-green service's are its proxy's.
fn ports_of(s: &crate::observe::ServiceStatus) -> Vec<crate::backend::PublishedPort> {
    let holder = match &s.proxy {
        Some(p) => p.container.as_ref(),
        None => s.container.as_ref(),
    };
    holder.map(|c| c.ports.clone()).unwrap_or_default()
}

/// What `status --json` prints, and the MCP `status` tool answers.
pub(crate) fn status_json(
    m: &crate::manifest::Manifest,
    found: &[crate::observe::ServiceStatus],
    on_purpose: &std::collections::BTreeSet<String>,
    supervisor: &Seen,
) -> serde_json::Value {
    let list: Vec<_> = found
        .iter()
        .map(|s| {
            let mut v = match &s.container {
                None => serde_json::json!({"service": s.service, "state": "absent"}),
                Some(i) => serde_json::json!({
                    "service": s.service,
                    "container": i.name,
                    "state": state_word(i.state),
                    "stopped_on_purpose": on_purpose.contains(&s.service),
                    "health": health_word(i.health),
                    "started_at": i.started_at,
                    "image": i.image,
                    "ports": ports_of(s).iter().map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.container_port, p.protocol.as_str())).collect::<Vec<_>>(),
                }),
            };
            if let Some(p) = &s.proxy {
                v["blue_green"] = serde_json::json!({
                    "live": s.live_colour(),
                    "proxy": p.container.as_ref().map(|c| serde_json::json!({
                        "container": c.name, "state": state_word(c.state), "health": health_word(c.health),
                    })),
                    "upstream": p.report.as_ref().ok().and_then(|r| r.upstream.clone()),
                    "open": p.report.as_ref().ok().map(|r| r.open.clone()),
                    "error": p.report.as_ref().err(),
                });
            }
            v
        })
        .collect();
    let supervisor = match &supervisor {
        Seen::None => serde_json::json!({ "state": "none" }),
        Seen::Running(s) => serde_json::json!({
            "state": if s.degraded.is_some() { "degraded" } else { "running" },
            "pid": s.pid, "since": s.started, "heartbeat": s.heartbeat,
            "degraded": s.degraded, "metrics": s.metrics,
        }),
        Seen::Silent(s) => serde_json::json!({
            "state": "silent", "pid": s.pid, "heartbeat": s.heartbeat,
        }),
    };
    serde_json::json!({ "project": m.project.name, "services": list, "supervisor": supervisor })
}

pub fn status(ctx: &Context) -> Result<ExitCode> {
    let m = ctx.load()?.manifest;
    let rt = engine::runtime()?;
    let found: Vec<crate::observe::ServiceStatus> = rt.block_on(async {
        let backend = crate::engine::connect().await?;
        Ok::<_, Error>(crate::observe::services(backend.as_ref(), &m).await?)
    })?;
    let on_purpose = crate::state::stopped::stopped_on_purpose(&m.project.state_dir);
    let supervisor = crate::supervise::status_file::read(&m.project.state_dir);
    if ctx.json {
        println!("{}", status_json(&m, &found, &on_purpose, &supervisor));
        return Ok(ExitCode::Ok);
    }
    let state_text = |s: &crate::observe::ServiceStatus, i: &crate::backend::ContainerInfo| {
        if i.state != ContainerState::Running && on_purpose.contains(&s.service) {
            "stopped on purpose".to_string()
        } else {
            state_word(i.state).to_string()
        }
    };
    let blue_green = found.iter().any(|s| s.proxy.is_some());
    let mut table: Vec<[String; 7]> = vec![[
        "SERVICE", "STATE", "HEALTH", "UPTIME", "PORTS", "IMAGE", "LIVE",
    ]
    .map(String::from)];
    for s in &found {
        let live = match &s.proxy {
            None => String::new(),
            Some(p) => match (s.live_colour(), &p.report) {
                (Some(colour), Ok(r)) => format!(
                    "{colour} (proxy {}, {} open)",
                    p.container
                        .as_ref()
                        .map_or("absent", |c| health_word(c.health)),
                    r.open.values().sum::<u64>()
                ),
                (None, Ok(_)) => "proxy points at no live container".into(),
                (_, Err(e)) => format!("proxy: {e}"),
            },
        };
        table.push(match &s.container {
            None => [
                s.service.clone(),
                if m.service_active(&s.service) {
                    "absent".into()
                } else {
                    "absent (profile off)".into()
                },
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                live,
            ],
            Some(i) => {
                // Docker lists a port once per address family; show each mapping once.
                let mut ports: Vec<String> = ports_of(s)
                    .iter()
                    .map(|p| format!("{}->{}", p.host_port, p.container_port))
                    .collect();
                ports.dedup();
                [
                    s.service.clone(),
                    state_text(s, i),
                    health_word(i.health).into(),
                    uptime(i.started_at, i.state == ContainerState::Running),
                    if ports.is_empty() {
                        "-".into()
                    } else {
                        ports.join(",")
                    },
                    i.image.clone(),
                    live,
                ]
            }
        });
    }
    // The LIVE column only when a service is blue-green.
    let columns = if blue_green { 7 } else { 6 };
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row[..columns]
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    match &supervisor {
        Seen::None => {}
        Seen::Running(s) => match &s.degraded {
            None => println!(
                "\nsupervisor: running (pid {}, since {})",
                s.pid,
                s.started.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
            ),
            Some(why) => println!("\nsupervisor: degraded (pid {}): {why}", s.pid),
        },
        Seen::Silent(s) => println!(
            "\nsupervisor: not answering (pid {}, last seen {}); is `sanctuary supervise` still running?",
            s.pid,
            s.heartbeat.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S")
        ),
    }
    Ok(ExitCode::Ok)
}

pub fn logs(ctx: &Context, args: LogsArgs) -> Result<ExitCode> {
    let m = ctx.load()?.manifest;
    for s in &args.services {
        super::service(&m, s)?;
    }
    let services: Vec<String> = if args.services.is_empty() {
        m.services.keys().cloned().collect()
    } else {
        args.services.clone()
    };
    let width = services.iter().map(|s| s.len()).max().unwrap_or(0);
    let rt = engine::runtime()?;
    let json = ctx.json;
    rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let sources = crate::observe::log_sources(backend.as_ref(), &m, &services).await?;
        let mut all =
            crate::observe::log_stream(
            backend.as_ref(),
            &sources,
            args.follow,
            args.tail,
            args.since,
        );
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        while let Some((svc, line)) = all.next().await {
            match line {
                Ok(l) if json => println!(
                    "{}",
                    serde_json::json!({"service": svc, "stream": if l.stream == LogStream::Stderr { "stderr" } else { "stdout" }, "line": l.line})
                ),
                Ok(l) => println!("{svc:<width$} | {}", l.line),
                Err(e) => {
                    errors.insert(svc, e.to_string());
                }
            }
        }
        if let Some((svc, e)) = errors.into_iter().next() {
            return Err(Error::Infrastructure(format!("logs of {svc}: {e}")));
        }
        Ok::<_, Error>(())
    })?;
    Ok(ExitCode::Ok)
}
