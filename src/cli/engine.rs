//! What the commands that do work share: a tokio runtime, the Docker connection, the
//! project's salt, the reporter, the Ctrl-C token, and turning a run summary into an exit code.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backend::docker::DockerBackend;
use crate::backend::Backend;
use crate::error::{Error, ExitCode, Result};
use crate::exec::{report, Reporter, Summary};
use crate::fingerprint::Salt;
use crate::manifest::Manifest;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            message: "cannot start the async runtime".into(),
            source,
        })
}

/// Connects to Docker (`DOCKER_HOST` or the default socket); an unreachable daemon is an
/// infrastructure error that says what to do.
pub async fn docker() -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(DockerBackend::connect().await?))
}

pub fn salt(m: &Manifest) -> Result<Salt> {
    Salt::load_or_create(&m.project.state_dir).map_err(|e| Error::Io {
        message: format!(
            "cannot read or create the project salt in {}",
            m.project.state_dir.display()
        ),
        source: std::io::Error::other(e.to_string()),
    })
}

pub fn reporter(json: bool) -> Arc<dyn Reporter> {
    report::make(report::choose_from_env(json))
}

/// A token cancelled by Ctrl-C (SIGINT) or SIGTERM.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let _ = crate::exec::signals::install(token.clone());
    token
}

pub fn jobs(j: Option<usize>) -> usize {
    j.unwrap_or_else(num_cpus::get).max(1)
}

/// 130 when interrupted, 1 when something failed, 0 otherwise.
pub fn exit_of(summary: &Summary, cancel: &CancellationToken) -> ExitCode {
    if cancel.is_cancelled() {
        ExitCode::Interrupted
    } else if summary.is_success() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}
