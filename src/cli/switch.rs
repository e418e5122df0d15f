//! `sanctuary switch SERVICE`: sends a blue-green service's traffic back to the container it
//! replaced, kept stopped as `<project>-<service>-previous` by `keep-previous true`. The
//! previous container is started, waited for until healthy, made live in the proxy, and the
//! one it replaces is drained and kept as the new previous — so a second switch flips back.
//! It is the operator's instant way back; the next `apply` converges to the manifest again
//! (`rollback` goes back for good). See docs/deploys.md.

use std::sync::Arc;

use super::engine;
use super::Context;
use crate::backend::names;
use crate::error::{Error, ExitCode, Result};
use crate::exec::{Failure, FailureClass};
use crate::executors::blue_green::{self, LABEL_COLOUR};
use crate::manifest::{Service, Update};
use crate::proxy::control;
use crate::state::Lock;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blue-green service to switch back.
    service: String,
}

fn error(f: Failure) -> Error {
    match f.class {
        FailureClass::Infrastructure => Error::Infrastructure(f.message),
        _ => Error::Failed(f.message),
    }
}

/// The service's networks as Docker names them: what the proxy and its containers share.
fn networks(project: &str, svc: &Service) -> Vec<crate::backend::NetworkAttachment> {
    let attach = |network: String| crate::backend::NetworkAttachment {
        network,
        aliases: Vec::new(),
    };
    if svc.networks.is_empty() {
        vec![attach(names::default_network(project))]
    } else {
        svc.networks
            .iter()
            .map(|n| attach(names::network(project, &n.network)))
            .collect()
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let m = Arc::new(ctx.load()?.manifest);
    let svc = super::service(&m, &args.service)?;
    let Update::BlueGreen { drain_timeout, .. } = &svc.update else {
        return Err(Error::usage(
            format!("service `{}` is not blue-green: there is no other colour to switch to", svc.name),
            "`update \"blue-green\"` with `keep-previous true` keeps the replaced container for a switch back",
        ));
    };
    let _lock = Lock::acquire(&m.project.state_dir, &format!("switch {}", svc.name))?;
    let project = m.project.name.clone();
    let live = names::container(&project, &svc.name);
    let previous = blue_green::previous_name(&project, &svc.name);
    let swap = blue_green::swap_name(&project, &svc.name);
    let proxy = blue_green::proxy_name(&project, &svc.name);
    let rt = engine::runtime()?;
    rt.block_on(async {
        let backend = crate::engine::connect().await?;
        let b = backend.as_ref();
        let Some(prev) = b.inspect_container(&previous).await? else {
            return Err(Error::usage(
                format!("service `{}` has no previous container to switch to", svc.name),
                "`keep-previous true` keeps the drained container after each blue-green replace",
            ));
        };
        let current = b.inspect_container(&live).await?;
        // Under its own name while it takes over: a switch killed half-way is recognised
        // (and finished or undone) by the next apply.
        b.rename_container(&previous, &swap).await?;
        b.start_container(&swap).await?;
        let token = engine::interrupt_token();
        let probes = tokio::sync::Semaphore::new(2);
        if let Some(h) = &svc.health {
            let ready = crate::executors::ready::wait_ready(
                b,
                &svc.name,
                &swap,
                &h.test,
                svc.ready_timeout.0,
                &probes,
                &token,
            )
            .await;
            if let Err(e) = ready {
                let _ = b.stop_container(&swap, svc.stop_timeout.0).await;
                let _ = b.rename_container(&swap, &previous).await;
                return Err(Error::Failed(format!(
                    "{e}\n  {previous} was stopped again; {live} keeps serving"
                )));
            }
        }
        let upstream = blue_green::upstream_of(b, &swap, &networks(&project, svc))
            .await
            .map_err(error)?;
        control::switch(b, &proxy, upstream)
            .await
            .map_err(Error::Infrastructure)?;
        let drained = match &current {
            Some(c) => blue_green::drain(b, &proxy, &c.id, drain_timeout.0).await,
            None => "nothing to drain".to_string(),
        };
        blue_green::retire(b, &live, &previous, svc.stop_timeout.0, true)
            .await
            .map_err(error)?;
        b.rename_container(&swap, &live).await?;
        let colour = prev
            .labels
            .get(LABEL_COLOUR)
            .cloned()
            .unwrap_or_else(|| "previous".into());
        if ctx.json {
            println!(
                "{}",
                serde_json::json!({"event": "switched", "service": svc.name, "live": colour, "drain": drained})
            );
        } else {
            println!(
                "{}: switched to {colour} ({drained}); `sanctuary switch {}` flips back, `sanctuary apply` converges to the manifest",
                svc.name, svc.name
            );
        }
        Ok(ExitCode::Ok)
    })
}
