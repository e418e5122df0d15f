//! `sanctuary supervise [--metrics ADDR] [--interval D]`: the project's supervisor in the
//! foreground (see [`crate::supervise`] and docs/operating.md), until Ctrl-C or SIGTERM.
//!
//! Exit codes: 0 when stopped by a signal; 2 for a bad argument or manifest; 3 when the
//! metrics address cannot be bound. An engine that does not answer is waited for, never an
//! exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{engine, Context};
use crate::error::{Error, ExitCode, Result};
use crate::supervise::{metrics, Options, Supervisor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Prometheus metrics on this address (`127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// How often to look at everything without an event.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// The window `sanctuary_service_availability_ratio` is measured over.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    availability_window: Duration,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    s.parse::<crate::manifest::Duration>()
        .map(|d| d.0)
        .and_then(|d| {
            if d.is_zero() {
                Err("must be more than zero".into())
            } else {
                Ok(d)
            }
        })
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = Arc::new(loaded.manifest);
    let program = std::env::current_exe().map_err(|source| Error::Io {
        message: "cannot find the sanctuary program to run scheduled work with".into(),
        source,
    })?;
    let options = Options {
        interval: args.interval,
        metrics: args.metrics,
        availability_window: args.availability_window,
        json: ctx.json,
        program,
        global_args: vec!["--file".into(), m.path.display().to_string()],
    };
    let rt = engine::runtime()?;
    rt.block_on(async {
        let token = engine::interrupt_token();
        // The address first: a taken one is an error before anything else is done.
        let metrics = Arc::new(metrics::Metrics::new());
        let _server = match options.metrics {
            Some(addr) => {
                let (bound, task) = metrics::serve(addr, Arc::clone(&metrics))
                    .await
                    .map_err(|e| {
                        Error::Infrastructure(format!(
                            "{e}; is another process listening there? (`ss -ltnp 'sport = :{}'` names it)",
                            addr.port()
                        ))
                    })?;
                if !ctx.json {
                    eprintln!("metrics on http://{bound}/metrics");
                }
                Some(task)
            }
            None => None,
        };
        // An engine that is not there yet is waited for: the supervisor may start first.
        let backend = loop {
            match crate::engine::connect().await {
                Ok(b) => break b,
                Err(e) => {
                    metrics.degraded.get_or_create(&vec![]).set(1.0);
                    eprintln!(
                        "warning: the engine does not answer ({}); trying again",
                        crate::exec::chain(&e)
                    );
                    tokio::select! {
                        _ = token.cancelled() => return Ok(ExitCode::Ok),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        };
        let (sup, done) = Supervisor::new(Arc::clone(&m), backend, metrics, options);
        sup.run(done, token).await;
        Ok(ExitCode::Ok)
    })
}
