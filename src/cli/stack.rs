//! `sanctuary destroy`, `sanctuary status` and `sanctuary logs`: the project's containers,
//! found by label. `destroy --volumes` backs up and verifies every volume with a backup node
//! before it deletes any volume, and keeps them all when that fails.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use super::engine;
use super::Context;
use crate::backend::names;
use crate::backend::{ContainerState, HealthState, LabelFilter, LogStream};
use crate::error::{Error, ExitCode, Result};
use crate::state::{Lock, StateFile};

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// Also remove the project's volumes and their data, after a verified backup of each
    /// volume that has a backup node.
    #[arg(long)]
    volumes: bool,
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
}

fn project_filter(project: &str) -> LabelFilter {
    LabelFilter::new().with(names::LABEL_PROJECT, project)
}

pub fn destroy(ctx: &Context, args: DestroyArgs) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = loaded.manifest;
    let state_dir = m.project.state_dir.clone();
    let _lock = Lock::acquire(&state_dir, &format!("destroy {}", m.project.name))?;
    let state_path = StateFile::path_in(&state_dir);
    let mut state = StateFile::load(&state_path)?;
    let rt = engine::runtime()?;
    let filter = project_filter(&m.project.name);
    let backend = rt.block_on(engine::docker())?;
    let mut removed = rt.block_on(async {
        let mut removed = Vec::new();
        for c in backend.list_containers(&filter, true).await? {
            backend.remove_container(&c.name, true).await?;
            removed.push(format!("container {}", c.name));
        }
        for n in backend.list_networks(&filter).await? {
            backend.remove_network(&n.name).await?;
            removed.push(format!("network {}", n.name));
        }
        Ok::<_, Error>(removed)
    })?;
    if args.volumes {
        let existing = rt.block_on(backend.list_volumes(&filter))?;
        // Data goes only after a fresh, fully verified backup of every volume that has a
        // backup node; the containers are gone by now, so nothing writes meanwhile.
        let runner = crate::backup::runner::Runner {
            manifest: &m,
            backend: Some(backend.clone()),
            rt: &rt,
        };
        for (volume, b) in super::backup::volume_backups(&m) {
            let name = names::volume(&m.project.name, &volume);
            if !existing.iter().any(|v| v.name == name) {
                continue;
            }
            match runner.backup_verified(b, chrono::Utc::now()) {
                Ok(run) if ctx.json => println!(
                    "{}",
                    serde_json::json!({"event": "backup", "backup": b.name, "snapshot": run.report.id(), "verified": true})
                ),
                Ok(run) => println!("backup {}: {} (verified)", b.name, run.report.summary()),
                Err(e) => {
                    return Err(Error::Failed(format!(
                        "volumes kept: backing up volume {volume} before deleting it failed: {}",
                        e.chain()
                    )))
                }
            }
        }
        rt.block_on(async {
            for v in &existing {
                backend.remove_volume(&v.name).await?;
                removed.push(format!("volume {}", v.name));
            }
            Ok::<_, Error>(())
        })?;
    }
    // Forget what no longer exists, so the next plan does not compare against it.
    let kinds: &[&str] = if args.volumes {
        &["service", "network", "volume"]
    } else {
        &["service", "network"]
    };
    let keys: Vec<(String, String)> = state
        .nodes
        .values()
        .filter(|r| kinds.contains(&r.kind.as_str()))
        .map(|r| (r.kind.clone(), r.name.clone()))
        .collect();
    for (kind, name) in keys {
        state.forget(&state_path, &kind, &name)?;
    }
    if ctx.json {
        println!("{}", serde_json::json!({ "removed": removed }));
    } else if removed.is_empty() {
        println!("Nothing to destroy for project {}.", m.project.name);
    } else {
        for r in &removed {
            println!("- {r}");
        }
        let kept = if args.volumes {
            ""
        } else {
            " (volumes kept; --volumes removes them)"
        };
        println!("Destroyed {} objects{kept}.", removed.len());
    }
    Ok(ExitCode::Ok)
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

pub fn status(ctx: &Context) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = loaded.manifest;
    let rt = engine::runtime()?;
    let rows = rt.block_on(async {
        let backend = engine::docker().await?;
        let mut rows = Vec::new();
        for svc in m.services.values() {
            let name = names::container(&m.project.name, &svc.name);
            let info = backend.inspect_container(&name).await?;
            rows.push((svc.name.clone(), info));
        }
        Ok::<_, Error>(rows)
    })?;
    if ctx.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(svc, info)| match info {
                None => serde_json::json!({"service": svc, "state": "absent"}),
                Some(i) => serde_json::json!({
                    "service": svc,
                    "container": i.name,
                    "state": state_word(i.state),
                    "health": health_word(i.health),
                    "started_at": i.started_at,
                    "image": i.image,
                    "ports": i.ports.iter().map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.container_port, p.protocol.as_str())).collect::<Vec<_>>(),
                }),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "project": m.project.name, "services": list })
        );
        return Ok(ExitCode::Ok);
    }
    let mut table: Vec<[String; 6]> =
        vec![["SERVICE", "STATE", "HEALTH", "UPTIME", "PORTS", "IMAGE"].map(String::from)];
    for (svc, info) in &rows {
        table.push(match info {
            None => [
                svc.clone(),
                "absent".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
            Some(i) => {
                // Docker lists a port once per address family; show each mapping once.
                let mut ports: Vec<String> = i
                    .ports
                    .iter()
                    .map(|p| format!("{}->{}", p.host_port, p.container_port))
                    .collect();
                ports.dedup();
                [
                    svc.clone(),
                    state_word(i.state).into(),
                    health_word(i.health).into(),
                    uptime(i.started_at, i.state == ContainerState::Running),
                    if ports.is_empty() {
                        "-".into()
                    } else {
                        ports.join(",")
                    },
                    i.image.clone(),
                ]
            }
        });
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::Ok)
}

pub fn logs(ctx: &Context, args: LogsArgs) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = loaded.manifest;
    for s in &args.services {
        if !m.services.contains_key(s) {
            let help =
                crate::manifest::diagnostic::did_you_mean(s, m.services.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "services: {}",
                            m.services.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    });
            return Err(Error::UnknownTarget {
                what: "service",
                name: s.clone(),
                help,
            });
        }
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
        let backend = engine::docker().await?;
        let mut present = Vec::new();
        for s in &services {
            let name = names::container(&m.project.name, s);
            if backend.inspect_container(&name).await?.is_some() {
                present.push((s.clone(), name));
            }
        }
        let mut streams = Vec::new();
        for (service, name) in &present {
            let service = service.clone();
            streams.push(backend.logs(name, args.follow, args.tail).map(move |l| (service.clone(), l)).boxed());
        }
        let mut all = futures_util::stream::select_all(streams);
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
