//! `sanctuary proxy`: what runs inside the proxy container of a blue-green service
//! (`serve`), and the two clients apply and Docker's health check use through `docker exec`
//! (`ctl`, `check`). None of it reads a manifest. See docs/deploys.md.

use std::path::PathBuf;

use crate::error::{Error, ExitCode, Result};
use crate::proxy::{self, Request};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Forward each PORT to the same port of the live upstream until stopped.
    Serve {
        /// A port to listen on (repeat for several).
        #[arg(long = "port", required = true)]
        ports: Vec<u16>,
        #[arg(long, default_value = proxy::STATE_FILE)]
        state: PathBuf,
        #[arg(long, default_value = proxy::CONTROL_SOCKET)]
        control: PathBuf,
    },
    /// Send one JSON request to the control socket and print the answer.
    Ctl {
        /// `{"op":"status"}` or `{"op":"switch","upstream":{"id":…,"host":…}}`.
        request: String,
        #[arg(long, default_value = proxy::CONTROL_SOCKET)]
        control: PathBuf,
    },
    /// Exit 0 when the proxy answers on its control socket (the container's health check).
    Check {
        #[arg(long, default_value = proxy::CONTROL_SOCKET)]
        control: PathBuf,
    },
}

/// One thread: a connection's two halves and its accept stay on it, with no wake-ups across
/// threads — on the small machines these stacks run on, that is what keeps the added
/// latency low (measured in scripts/bench-proxy.sh).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Infrastructure(format!("cannot start the proxy's runtime: {e}")))
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let rt = runtime()?;
    match cmd {
        Command::Serve {
            ports,
            state,
            control,
        } => {
            rt.block_on(proxy::serve(ports, &state, &control))
                .map_err(|e| Error::Infrastructure(format!("sanctuary proxy: {e}")))?;
            Ok(ExitCode::Ok)
        }
        Command::Ctl { request, control } => {
            let req: Request = serde_json::from_str(&request).map_err(|e| {
                Error::usage(
                    format!("not a proxy request: {e}"),
                    r#"write {"op":"status"} or {"op":"switch","upstream":{"id":"…","host":"…"}}"#,
                )
            })?;
            let answer = rt.block_on(proxy::request(&control, &req)).map_err(|e| {
                Error::Infrastructure(format!(
                    "cannot reach the proxy at {}: {e}",
                    control.display()
                ))
            })?;
            println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            Ok(if answer.ok {
                ExitCode::Ok
            } else {
                ExitCode::Failed
            })
        }
        Command::Check { control } => {
            rt.block_on(proxy::request(&control, &Request::Status))
                .map_err(|e| Error::Infrastructure(format!("the proxy does not answer: {e}")))?;
            Ok(ExitCode::Ok)
        }
    }
}
