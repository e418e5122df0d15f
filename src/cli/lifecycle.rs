//! The commands Compose users type to handle running services: `stop`, `start` and
//! `restart [SERVICE…]`, and `exec SERVICE [--] CMD…`. They act on the containers apply made
//! and change nothing else: no container is created, replaced or removed.
//!
//! `stop` records that the service was stopped on purpose ([`crate::state::stopped`]), which
//! `status` shows; `start`, `restart` and an apply that starts the container clear it. Services are stopped dependents first and
//! started dependencies first, and `start` waits for each service with a health check to
//! become healthy before starting what depends on it, as apply does.

use std::sync::Arc;

use super::engine;
use super::Context;
use crate::backend::{names, Backend, ContainerState};
use crate::error::{Error, ExitCode, Result};
use crate::executors::blue_green::proxy_name;
use crate::manifest::{Kind, Manifest, Service};
use crate::state::stopped::mark_stopped;
use crate::state::Lock;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services (all when none).
    services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The service whose container runs the command.
    service: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Never allocate a terminal, even when on one.
    #[arg(short = 'T', long = "no-tty")]
    no_tty: bool,
}

/// The named services (all when none), dependencies first.
fn selected<'m>(m: &'m Manifest, names: &[String]) -> Result<Vec<&'m Service>> {
    for n in names {
        super::service(m, n)?;
    }
    let all: Vec<&Service> = m.services.values().collect();
    let index = |name: &str| all.iter().position(|s| s.name == name);
    let deps: Vec<Vec<usize>> = all
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter(|d| d.node.kind == Kind::Service)
                .filter_map(|d| index(&d.node.name))
                .collect()
        })
        .collect();
    // The manifest validator refuses cycles, so an order exists.
    let order = crate::topo::order(&deps).unwrap_or_else(|| (0..all.len()).collect());
    Ok(order
        .into_iter()
        .map(|i| all[i])
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

fn say(ctx: &Context, service: &str, event: &str, line: &str) {
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({ "event": event, "service": service })
        );
    } else {
        println!("{line}");
    }
}

async fn stop_one(b: &dyn Backend, m: &Manifest, svc: &Service, ctx: &Context) -> Result<()> {
    let name = names::container(&m.project.name, &svc.name);
    let Some(info) = b.inspect_container(&name).await? else {
        say(
            ctx,
            &svc.name,
            "absent",
            &format!("{}: no container (never applied)", svc.name),
        );
        return Ok(());
    };
    if svc.update.is_blue_green() {
        // Its port and name go quiet with it.
        let proxy = proxy_name(&m.project.name, &svc.name);
        if b.inspect_container(&proxy).await?.is_some() {
            b.stop_container(&proxy, std::time::Duration::from_secs(2))
                .await?;
        }
    }
    if info.state == ContainerState::Running || info.state == ContainerState::Paused {
        b.stop_container(&name, svc.stop_timeout.0).await?;
        say(ctx, &svc.name, "stopped", &format!("{}: stopped", svc.name));
    } else {
        say(
            ctx,
            &svc.name,
            "stopped",
            &format!("{}: already stopped", svc.name),
        );
    }
    Ok(())
}

async fn start_one(b: &dyn Backend, m: &Manifest, svc: &Service, ctx: &Context) -> Result<()> {
    let name = names::container(&m.project.name, &svc.name);
    let Some(info) = b.inspect_container(&name).await? else {
        return Err(Error::usage(
            format!("service `{}` has no container to start", svc.name),
            "`sanctuary apply` creates it",
        ));
    };
    match info.state {
        ContainerState::Running => {}
        ContainerState::Paused => b.unpause_container(&name).await?,
        _ => b.start_container(&name).await?,
    }
    if svc.update.is_blue_green() {
        let proxy = proxy_name(&m.project.name, &svc.name);
        if b.inspect_container(&proxy).await?.is_some() {
            b.start_container(&proxy).await?;
        }
    }
    if let Some(h) = &svc.health {
        let probes = tokio::sync::Semaphore::new(2);
        let token = engine::interrupt_token();
        crate::executors::ready::wait_ready(
            b,
            &svc.name,
            &name,
            &h.test,
            svc.ready_timeout.0,
            &probes,
            &token,
        )
        .await
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    }
    let word = if info.state == ContainerState::Running {
        "already running"
    } else {
        "started"
    };
    say(ctx, &svc.name, "started", &format!("{}: {word}", svc.name));
    Ok(())
}

/// `stop`, `start` or `restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Stop,
    Start,
    Restart,
}

pub fn run(ctx: &Context, verb: Verb, args: Args) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    let services = selected(&m, &args.services)?;
    let command = match verb {
        Verb::Stop => "stop",
        Verb::Start => "start",
        Verb::Restart => "restart",
    };
    let _lock = Lock::acquire(
        &m.project.state_dir,
        &format!("{command} {}", m.project.name),
    )?;
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let rt = engine::runtime()?;
    rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let b = backend.as_ref();
        if matches!(verb, Verb::Stop | Verb::Restart) {
            for svc in services.iter().rev() {
                stop_one(b, &m, svc, ctx).await?;
            }
        }
        let record = mark_stopped(&m.project.state_dir, &names, verb == Verb::Stop);
        if let Err(e) = record {
            eprintln!(
                "warning: cannot record which services are stopped in {}: {e}",
                m.project.state_dir.display()
            );
        }
        if matches!(verb, Verb::Start | Verb::Restart) {
            for svc in &services {
                start_one(b, &m, svc, ctx).await?;
            }
        }
        Ok(ExitCode::Ok)
    })
}

/// `exec SERVICE [--] CMD…`: the command runs in the service's running container, through
/// the `docker` CLI so that a terminal (raw mode, resizes, signals) behaves exactly as
/// `docker exec -it` does; its exit code is sanctuary's.
pub fn exec(ctx: &Context, args: ExecArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let m = ctx.load()?.manifest;
    let svc = selected(&m, std::slice::from_ref(&args.service))?[0];
    let name = names::container(&m.project.name, &svc.name);
    let rt = engine::runtime()?;
    let info = rt.block_on(async {
        let backend = crate::engine::connect().await?;
        Ok::<_, Error>(backend.inspect_container(&name).await?)
    })?;
    match info {
        Some(i) if i.state == ContainerState::Running => {}
        Some(_) => {
            return Err(Error::usage(
                format!("service `{}` is not running", svc.name),
                format!("`sanctuary start {}` starts it", svc.name),
            ))
        }
        None => {
            return Err(Error::usage(
                format!("service `{}` has no container", svc.name),
                "`sanctuary apply` creates it",
            ))
        }
    }
    let tty = !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut cmd = std::process::Command::new("docker");
    cmd.arg("exec").arg(if tty { "-it" } else { "-i" });
    cmd.arg(&name).args(&args.command);
    let status = cmd.status().map_err(|e| {
        Error::Infrastructure(format!(
            "cannot run `docker exec` for service `{}`: {e} (exec needs the docker command-line client)",
            svc.name
        ))
    })?;
    Ok(ExitCode::Passthrough(status.code().unwrap_or(128 + 9)))
}

/// `top [SERVICE…]`: the processes of each running service's container, as Docker's `top`
/// lists them.
pub fn top(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = ctx.load()?.manifest;
    let services = selected(&m, &args.services)?;
    let rt = engine::runtime()?;
    rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let b = backend.as_ref();
        for svc in services {
            let name = names::container(&m.project.name, &svc.name);
            let running = b
                .inspect_container(&name)
                .await?
                .is_some_and(|c| c.state == ContainerState::Running);
            if !running {
                if !ctx.json && !args.services.is_empty() {
                    println!("{}: not running", svc.name);
                }
                continue;
            }
            let crate::backend::Processes { titles, rows } = b.top(&name).await?;
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({ "service": svc.name, "titles": titles, "processes": rows })
                );
                continue;
            }
            println!("{}", svc.name);
            let widths: Vec<usize> = (0..titles.len())
                .map(|c| {
                    std::iter::once(&titles)
                        .chain(&rows)
                        .filter_map(|r| r.get(c))
                        .map(|v| v.chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in std::iter::once(&titles).chain(&rows) {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    // The last column (the command) is not padded.
                    .map(|(k, (v, w))| {
                        if k + 1 == row.len() {
                            v.clone()
                        } else {
                            format!("{v:<w$}")
                        }
                    })
                    .collect();
                println!("  {}", cells.join("  "));
            }
        }
        Ok(ExitCode::Ok)
    })
}
